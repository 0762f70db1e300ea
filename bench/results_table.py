"""The README results table: each model scored through the served ONNX path on the 300W validation split
and on p1-ytf68 test, with its parameters and MACs at its own input size.

A row is NAME=MODEL where MODEL is anything `sdhrnet evaluate --model` takes (folder, run id, runs:/ID/PATH,
models:/NAME@ALIAS). --json writes every figure (and the per-split reports' summaries) for the model card;
--package-into copies one row's model into a folder (model.onnx, spec.json, model_card.json) and merges the
results and --card-extra (commands, data, seed: a JSON object) into its card.

    SDHRNET_HOME=/work/train-home .venv/bin/python bench/results_table.py \\
        --row "S-HRNet=runs:/<slim run>/model_files" --row "SD-HRNet student 1=runs:/<distill run>/models/s1" \\
        --json results.json --package-into sdhrnet/default_model --served "SD-HRNet student 1" --card-extra extra.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from landmarks.occlusion import Occlusion
from trainer.results import EvalSet, markdown, package, score

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TEST_SETS = [EvalSet("dev", "300w", DATA / "300w", "dev"),
             EvalSet("dev occluded", "300w", DATA / "300w", "dev", Occlusion()),
             EvalSet("p1-ytf68 test", "csv", DATA / "p1-ytf68", "test")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", required=True, help="NAME=MODEL (repeatable, in table order)")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--package-into", type=Path, help="copy the --served row's model here with the results in its card")
    ap.add_argument("--served", help="the row to package")
    ap.add_argument("--card-extra", type=Path, help="JSON object merged into the packaged card")
    args = ap.parse_args()
    specs = [r.split("=", 1) for r in args.row]
    if any(len(s) != 2 for s in specs):
        ap.error("each --row is NAME=MODEL")
    if args.package_into and args.served not in dict(specs):
        ap.error("--package-into needs --served naming one of the rows")
    rows = {}
    for name, uri in specs:
        rows[name] = score(uri, TEST_SETS)
        print(f"{name}: " + " ".join(f"{t.name} {rows[name][t.name]}" for t in TEST_SETS), flush=True)
    print(markdown(rows, TEST_SETS))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.package_into:
        extra = json.loads(args.card_extra.read_text()) if args.card_extra else {}
        package(rows, args.served, args.package_into, extra, TEST_SETS)


if __name__ == "__main__":
    main()

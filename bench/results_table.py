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
import shutil
from pathlib import Path

from trainer.evaluate import evaluate_split, resolve_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SPLITS = {"dev": ("300w", DATA / "300w", "dev"), "p1-ytf68 test": ("csv", DATA / "p1-ytf68", "test")}
PACKAGED = ("model.onnx", "spec.json", "model_card.json")


def score(uri: str) -> dict:
    _, card = resolve_model(uri)
    row = {"model": uri, "params": card.get("params"), "macs": card.get("macs"), "input_size": card.get("input_size"),
           "run_id": card.get("run_id")}
    for name, (dataset, root, split) in SPLITS.items():
        r = evaluate_split(dataset, root, split, model=uri)
        row[name] = {k: round(float(r[k]), 5) for k in ("nme", "fr", "auc")} | {"n": r["n"], "split": split, "dataset": dataset}
    return row


def markdown(rows: dict[str, dict]) -> str:
    sizes = {r["input_size"] for r in rows.values()}
    lines = [f"| model | params | MACs @{'/'.join(map(str, sorted(sizes)))} | dev NME | dev FR | dev AUC "
             "| p1-ytf68 test NME | FR | AUC |", "| --- " * 9 + "|"]
    for name, r in rows.items():
        dev, test = r["dev"], r["p1-ytf68 test"]
        lines.append(f"| {name} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e9:.3f} G | {dev['nme']:.4f} | {dev['fr']:.3f} "
                     f"| {dev['auc']:.3f} | {test['nme']:.4f} | {test['fr']:.3f} | {test['auc']:.3f} |")
    return "\n".join(lines)


def package(rows: dict[str, dict], served: str, into: Path, extra: dict) -> None:
    onnx, _ = resolve_model(rows[served]["model"])
    into.mkdir(parents=True, exist_ok=True)
    for name in PACKAGED:
        shutil.copyfile(onnx.parent / name, into / name)
    card = json.loads((into / "model_card.json").read_text())
    card.update(extra)
    card["evaluation"] = {name: {k: r[k] for k in SPLITS} for name, r in rows.items()}
    card["served_row"] = served
    (into / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")


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
        rows[name] = score(uri)
        print(f"{name}: dev {rows[name]['dev']} test {rows[name]['p1-ytf68 test']}", flush=True)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.package_into:
        extra = json.loads(args.card_extra.read_text()) if args.card_extra else {}
        package(rows, args.served, args.package_into, extra)


if __name__ == "__main__":
    main()

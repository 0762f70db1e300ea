"""The README results table: each model scored through the served ONNX path on the 300W validation split, on the
p1-ytf68 training frames (video: the selection's last tie-break set; the served models never trained on them) and
on p1-ytf68 test, at the boxes of the true points and at the boxes the service's face detector finds (what a
user without boxes gets), and on the validation split shrunk until every face is 64 px across (a video frame's face),
with its parameters and MACs at its own input size.

A row is NAME=MODEL where MODEL is anything `sdhrnet evaluate --model` takes (folder, run id, runs:/ID/PATH,
models:/NAME@ALIAS); --rows-from adds the rows of an earlier --json without scoring them again. --json writes every
figure (with each face's NME) for the model card; --package-into copies one row's model into a folder (model.onnx,
spec.json, model_card.json) and merges the results and --card-extra (commands, data, seed: a JSON object) into its
card. `--served auto` picks that row by landmarks.selection's rule among the rows within the --budget (1 M parameters
unless given; macs=N keeps out larger input sizes): lowest dev NME, and among the rows not worse than it face by
face, those not worse face by face than the lowest dev occluded NME, and among those the lowest NME on the video
frames (each person's frames averaged). A model already in the
--package-into folder stays unless the row beats it as the registry's promotion asks (better face by face on dev or
dev occluded or the video frames, worse on none; --replace packages anyway).

    SDHRNET_HOME=/work/train-home .venv/bin/python bench/results_table.py \\
        --row "S-HRNet=runs:/<slim run>/model_files" --row "SD-HRNet student 1=runs:/<distill run>/models/s1" \\
        --json results.json --package-into sdhrnet/default_model --served auto --card-extra extra.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdhrnet.budgets import SERVED_LIMITS, describe_limits, parse_budget, within_budget
from trainer.results import EvalSet, against_the_packaged, markdown, package, score, tie_breaks, validation_sets
from landmarks.selection import SelectionError, choose_served

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEV, DEV_OCCLUDED = validation_sets("300w", DATA / "300w", "dev")
VIDEO = EvalSet("p1-ytf68 training", "csv", DATA / "p1-ytf68", "training", tie_break=True)
P1_TEST = EvalSet("p1-ytf68 test", "csv", DATA / "p1-ytf68", "test")
TEST_SETS = [DEV, DEV_OCCLUDED, VIDEO, P1_TEST, DEV.at_detected_boxes(), P1_TEST.at_detected_boxes(),
             DEV.at_face_size(64)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", default=[], help="NAME=MODEL (repeatable, in table order)")
    ap.add_argument("--rows-from", action="append", default=[], type=Path,
                    help="a --json of an earlier run: its rows come first, as they were scored")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--package-into", type=Path, help="copy the --served row's model here with the results in its card")
    ap.add_argument("--served", help="the row to package, or 'auto' for the selection rule's pick")
    ap.add_argument("--budget", action="append", default=[], metavar="KIND=VALUE",
                    help="--served auto picks among the rows within every budget given (params=..., macs=...; "
                    "default params=1000000)")
    ap.add_argument("--card-extra", type=Path, help="JSON object merged into the packaged card")
    ap.add_argument("--replace", action="store_true",
                    help="package the --served row even where the folder's model is not beaten")
    args = ap.parse_args()
    specs = [r.split("=", 1) for r in args.row]
    if any(len(s) != 2 for s in specs):
        ap.error("each --row is NAME=MODEL")
    rows = {}
    for path in args.rows_from:
        try:
            rows.update(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            ap.error(f"--rows-from {path}: not a table written by --json ({e})")
    names = [*rows, *(name for name, _ in specs)]
    if not names:
        ap.error("give at least one --row or --rows-from")
    if args.package_into and args.served != "auto" and args.served not in names:
        ap.error("--package-into needs --served naming one of the rows, or auto")
    for name, uri in specs:
        rows[name] = score(uri, TEST_SETS)
        print(f"{name}: " + ", ".join(f"{t.name} NME {rows[name][t.name]['nme']:.5f} FR {rows[name][t.name]['fr']:.3f}"
                                      for t in TEST_SETS), flush=True)
    print(markdown(rows, TEST_SETS))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    extra = json.loads(args.card_extra.read_text()) if args.card_extra else {}
    served = args.served
    try:
        limits = dict(map(parse_budget, args.budget)) or SERVED_LIMITS
    except ValueError as e:
        ap.error(f"--budget: {e}")
    if served == "auto":
        try:
            choice = choose_served(rows, within_budget(rows, list(rows), limits), DEV.name,
                                   tie_breaks=tie_breaks(TEST_SETS))
        except (ValueError, SelectionError) as e:
            ap.error(f"--served auto: {e}")
        print(f"selection rule picks {choice.why}")
        served = choice.served
        extra.setdefault("selection", f"by landmarks.selection among the rows within {describe_limits(limits)} "
                                      f"(ensembles are larger): {choice.why}")
    if args.package_into:
        try:
            packaged = None if args.replace else against_the_packaged(args.package_into, rows[served], TEST_SETS)
        except SelectionError as e:
            ap.error(f"--package-into: {e}")
        if packaged is not None:
            print(f"{'kept' if packaged.kept else 'replacing'} the model in {args.package_into}: "
                  f"{packaged.choice.why}")
            if packaged.kept:
                return
        package(rows, served, args.package_into, extra, TEST_SETS)


if __name__ == "__main__":
    main()

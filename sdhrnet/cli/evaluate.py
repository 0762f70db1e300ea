"""`sdhrnet evaluate`: score a predictions file or a model on a dataset split (NME, FR@0.10, AUC@0.10)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from landmarks import metrics
from landmarks.jsonsafe import read_json_object
from sdhrnet.cli import cannot_write


class UsageError(ValueError):
    """Bad command-line input; reported without a traceback, exit code 2."""


RECROP = ("off", "on", "auto")


def recrop_of(args) -> bool | None:
    """--recrop -> the landmarker's `recrop`: auto is /align's default for detected faces or for boxes sent."""
    from landmarks.answers import default_recrop

    return default_recrop(None if args.recrop == "auto" else args.recrop == "on", args.detected_boxes)


def add_arguments(parser, command=None) -> None:
    parser.add_argument("--dataset", required=True, help="300w | wflw | cofw | csv")
    parser.add_argument("--data-root", required=True, help="dataset folder")
    parser.add_argument("--split", default=None, help="split to score (default: 300w common, or the subsets a 300w "
                        "folder holds when it has no common ones; csv, wflw and cofw test)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="JSON object: sample id -> list of [x, y] in 0-based image pixels")
    source.add_argument("--model", help="model.onnx (with model_card.json beside it), a model folder, an MLflow run id, "
                        "runs:/ID or models:/NAME@ALIAS")
    parser.add_argument("--flip-test", action="store_true", help="with --model: average with the mirrored input")
    parser.add_argument("--occlusion", action="store_true", help="with --model: also score every face partly covered "
                        "by a seeded random occluder (a synthetic Masked-300W test), next to the clean score")
    parser.add_argument("--detected-boxes", action="store_true", help="with --model: crop each face where the "
                        "service's face detector finds it, not at the box of its true points; faces it misses are reported as "
                        "without a prediction (add --recrop for what /align without boxes answers by default)")
    parser.add_argument("--small-faces", action="store_true", help="with --detected-boxes: the detector also "
                        "scans tiles of each photo for faces its one look at the whole photo cannot see (as "
                        "/align?small_faces=true)")
    parser.add_argument("--recrop", nargs="?", const="on", default="off", choices=RECROP, help="with --model: "
                        "`--recrop` (on): a second pass on each face, cropped at the box of its first-pass points, "
                        "averaged with the first; a face tilted by 20 degrees or more is cropped turned upright and "
                        "that answer stands, and a face the first pass is unsure of gets the face detector's tilt (as "
                        "/align?recrop=true). `--recrop auto`: the passes /align runs by default, the second pass on "
                        "detected faces, and on a box sent only where the first pass finds the face tilted or is "
                        "unsure of it (as /evaluate). Default off: one pass at each box")
    parser.add_argument("--face-px", type=int, default=None, metavar="PX", help="with --model: shrink every photo "
                        "until its faces are PX pixels across (the box of their points) before predicting, as in "
                        "video frames or group photos; the points are mapped back to score them")
    parser.add_argument("--occlusion-seed", type=int, default=0, help="seed of the occluders (same seed, same pixels)")
    parser.add_argument("--threshold", type=float, default=metrics.THRESHOLD, help="FR/AUC threshold (default 0.10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", help="also write the full report (per-image NME, CED curve) to this JSON file")


def load_predictions(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"predictions file {p} not found")
    try:
        return read_json_object(p, "a JSON object mapping sample ids to lists of [x, y]")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args) -> dict:
    from trainer.evaluate import evaluate_split

    from landmarks.low_resolution import MIN_FACE_PX, LowResolution
    from landmarks.occlusion import Occlusion

    if args.occlusion and not args.model:
        raise UsageError("--occlusion needs --model: the occluded faces have to be predicted")
    if args.detected_boxes and not args.model:
        raise UsageError("--detected-boxes needs --model: the faces have to be predicted at the detected boxes")
    if args.small_faces and not args.detected_boxes:
        raise UsageError("--small-faces needs --detected-boxes: it is how the faces are detected")
    recrop = recrop_of(args)
    if recrop is not False and not args.model:
        raise UsageError("--recrop needs --model: the second pass runs the model again")
    if args.face_px is not None and not args.model:
        raise UsageError("--face-px needs --model: the shrunk photos have to be predicted")
    if args.face_px is not None and args.face_px < MIN_FACE_PX:
        raise UsageError(f"--face-px must be at least {MIN_FACE_PX} pixels, got {args.face_px}")
    if not (math.isfinite(args.threshold) and args.threshold > 0):  # AUC divides by it; FR counts errors above it
        raise UsageError(f"--threshold must be a positive NME, like the default {metrics.THRESHOLD}")
    if args.out:  # found before a model is run over the split, not after
        if Path(args.out).is_dir():
            raise UsageError(f"cannot write --out {args.out}: it is a folder; name the JSON file to write")
        if not Path(args.out).parent.is_dir():
            raise UsageError(f"cannot write --out {args.out}: there is no folder {Path(args.out).parent}")
    low_resolution = LowResolution(args.face_px) if args.face_px is not None else None
    predictions = load_predictions(args.predictions) if args.predictions else None
    report = evaluate_split(args.dataset, args.data_root, args.split, model=args.model, predictions=predictions,
                            flip_test=args.flip_test, threshold=args.threshold, detected_boxes=args.detected_boxes,
                            recrop=recrop, low_resolution=low_resolution, small_faces=args.small_faces)
    if report["n"] == 0:
        raise UsageError(nothing_scored(report, args))
    if args.occlusion:
        occluded = evaluate_split(args.dataset, args.data_root, args.split, model=args.model, flip_test=args.flip_test,
                                  threshold=args.threshold, occlusion=Occlusion(seed=args.occlusion_seed),
                                  detected_boxes=args.detected_boxes, recrop=recrop,
                                  low_resolution=low_resolution, small_faces=args.small_faces)
        report["occluded"] = _summary(occluded) | {"per_image": occluded["per_image"]}
    return report


def nothing_scored(report: dict, args) -> str:
    """Why a split was scored on no face: an NME of nothing is no result, so the command fails and says what to fix."""
    where = f"{report['dataset']} {report['split']}"
    if args.predictions and not report["unexpected"]:
        return f"no face was scored: the predictions file holds no prediction; key each by a sample id of {where}"
    if args.predictions:
        example = f" (its ids look like {report['missing'][0]!r})" if report["missing"] else ""
        return (f"no face was scored: none of the {len(report['unexpected'])} predictions names a face of "
                f"{where}{example}; key each prediction by its sample id")
    if report.get("boxes") == "detected":
        return (f"no face was scored: the face detector found none of the {len(report['missing'])} faces of {where}; "
                "score at the boxes of the true points (leave out --detected-boxes)")
    return f"no face was scored: {where} holds no face"


def _summary(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in ("per_image", "ced")}
    if "occluded" in out:
        out["occluded"] = _summary(out["occluded"])
    return out


def _fmt(v):
    return "-" if v is None else f"{v:.4f}"


def main(args) -> int:
    try:
        report = run(args)
        if args.out:
            try:
                Path(args.out).write_text(json.dumps(report, indent=1))
            except OSError as exc:
                raise UsageError(cannot_write("--out", args.out, exc)) from None
    except (ValueError, FileNotFoundError, OSError) as exc:  # user mistakes: a message, not a traceback
        print(f"sdhrnet evaluate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_summary(report), indent=1))
        return 0
    print(f"{report['dataset']} {report['split']}: n={report['n']} NME={_fmt(report['nme'])} "
          f"FR@{report['threshold']:.2f}={_fmt(report['fr'])} AUC@{report['threshold']:.2f}={_fmt(report['auc'])}")
    if report.get("recrop"):
        print("  with a second pass at the box of the first pass's points, averaged with the first")
    elif report.get("recrop", False) is None:
        print("  with the passes /align runs on a box sent: a second one where the first finds the face tilted or is "
              "unsure of it")
    if report.get("face_px"):
        print(f"  every photo shrunk until its faces are {report['face_px']} px across")
    if report.get("boxes") == "detected":
        tiles = ", tiles scanned for small faces" if report.get("small_faces") else ""
        print(f"  at the face detector's boxes{tiles}: {report['n']} of {report['n'] + len(report['missing'])} faces "
              "found")
    if "occluded" in report:
        o = report["occluded"]
        print(f"  occluded (seed {o['occlusion']['seed']}, {o['occlusion']['area'][0]:.0%}-{o['occlusion']['area'][1]:.0%} "
              f"of each box): NME={_fmt(o['nme'])} FR={_fmt(o['fr'])} AUC={_fmt(o['auc'])}")
    for name, s in report["subsets"].items():
        print(f"  {name:<16} n={s['n']:<5} NME={_fmt(s['nme'])} FR={_fmt(s['fr'])} AUC={_fmt(s['auc'])}")
    if report["missing_subsets"]:
        print(f"  subsets not found on disk: {', '.join(report['missing_subsets'])}")
    if report["missing"]:
        print(f"  {len(report['missing'])} sample(s) without a prediction, e.g. {report['missing'][0]}")
    if report["unexpected"]:
        print(f"  {len(report['unexpected'])} prediction(s) for unknown ids, e.g. {report['unexpected'][0]}")
    return 0

"""`sdhrnet evaluate`: score a predictions file or a model on a dataset split (NME, FR@0.10, AUC@0.10)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer import metrics


class UsageError(ValueError):
    """Bad command-line input; reported without a traceback, exit code 2."""


def add_arguments(parser, command=None) -> None:
    parser.add_argument("--dataset", required=True, help="300w | wflw | cofw | csv")
    parser.add_argument("--data-root", required=True, help="dataset folder")
    parser.add_argument("--split", default=None, help="split to score (default: 300w common, csv test, wflw/cofw test)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", help="JSON object: sample id -> list of [x, y] in 0-based image pixels")
    source.add_argument("--model", help="model.onnx (with model_card.json beside it) or a folder holding them")
    parser.add_argument("--flip-test", action="store_true", help="with --model: average with the mirrored input")
    parser.add_argument("--threshold", type=float, default=metrics.THRESHOLD, help="FR/AUC threshold (default 0.10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", help="also write the full report (per-image NME, CED curve) to this JSON file")


def resolve_model(uri: str) -> tuple[Path, dict]:
    """Model reference -> (local model.onnx path, model card dict). Handles a .onnx file (card =
    model_card.json beside it, if any) or a folder with model.onnx; other schemes plug in here."""
    path = Path(uri)
    if path.is_dir():
        path = path / "model.onnx"
    if path.suffix != ".onnx" or not path.is_file():
        raise UsageError(f"model {uri!r} not found: give a .onnx file or a folder containing model.onnx")
    card_path = path.with_name("model_card.json")
    card = {}
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{card_path} is not valid JSON: {exc}") from None
    return path, card


def load_predictions(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"predictions file {p} not found")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{p} must hold a JSON object mapping sample ids to lists of [x, y]")
    return data


def predict_with_model(uri: str, info, samples, flip_test: bool) -> tuple[dict, dict]:
    from trainer.evaluate import predict_with_landmarker
    from trainer.landmarker import OnnxLandmarker

    onnx_path, card = resolve_model(uri)
    if card.get("num_landmarks") not in (None, info.num_landmarks):
        raise UsageError(f"model {uri} predicts {card['num_landmarks']} landmarks, {info.name} has {info.num_landmarks}")
    flip_pairs = card.get("flip_pairs") or [list(p) for p in info.flip_pairs]
    landmarker = OnnxLandmarker(onnx_path, input_size=card.get("input_size"), flip_pairs=flip_pairs)
    predictions = predict_with_landmarker(landmarker, samples, flip_test=flip_test)
    return predictions, {"model": str(uri), "onnx": str(onnx_path), "input_size": landmarker.input_size,
                         "flip_test": flip_test}


def run(args) -> dict:
    from trainer.datasets import DEFAULT_TEST_SPLIT, get_info, load_samples
    from trainer.evaluate import score_predictions

    info = get_info(args.dataset)
    split = args.split or DEFAULT_TEST_SPLIT[info.name]
    samples = load_samples(info.name, args.data_root, split)
    extra = {}
    if args.predictions:
        predictions = load_predictions(args.predictions)
    else:
        predictions, extra = predict_with_model(args.model, info, samples, args.flip_test)
    report = score_predictions(samples, info, predictions, threshold=args.threshold)
    report.update({"dataset": info.name, "split": split, "found_subsets": samples.found_subsets,
                   "missing_subsets": samples.missing_subsets, **extra})
    return report


def _summary(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("per_image", "ced")}


def _fmt(v):
    return "-" if v is None else f"{v:.4f}"


def main(args) -> int:
    try:
        report = run(args)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))
    except (ValueError, FileNotFoundError, OSError) as exc:  # user mistakes: a message, not a traceback
        print(f"sdhrnet evaluate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_summary(report), indent=1))
        return 0
    print(f"{report['dataset']} {report['split']}: n={report['n']} NME={_fmt(report['nme'])} "
          f"FR@{report['threshold']:.2f}={_fmt(report['fr'])} AUC@{report['threshold']:.2f}={_fmt(report['auc'])}")
    for name, s in report["subsets"].items():
        print(f"  {name:<16} n={s['n']:<5} NME={_fmt(s['nme'])} FR={_fmt(s['fr'])} AUC={_fmt(s['auc'])}")
    if report["missing_subsets"]:
        print(f"  subsets not found on disk: {', '.join(report['missing_subsets'])}")
    if report["missing"]:
        print(f"  {len(report['missing'])} sample(s) without a prediction, e.g. {report['missing'][0]}")
    if report["unexpected"]:
        print(f"  {len(report['unexpected'])} prediction(s) for unknown ids, e.g. {report['unexpected'][0]}")
    return 0

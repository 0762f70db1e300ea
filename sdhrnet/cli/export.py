"""`sdhrnet export`: write a preset, a spec or a trained checkpoint to ONNX."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import torch

from sdhrnet.cli import cannot_write, multiple_of, positive_int
from trainer.export import export_onnx
from trainer.nets import build_network

SPEC_BESIDE_WEIGHTS = "spec.json"


def add_arguments(parser, command: str) -> None:
    parser.add_argument("--arch", default=None,
                        help="preset or spec JSON (default: spec.json next to --weights)")
    parser.add_argument("--weights", default=None, help="state_dict file (torch.save) to load")
    parser.add_argument("--landmarks", type=positive_int, default=None, help="number of landmarks (default: from "
                        "weights or preset)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--input-size", type=multiple_of(32), default=256, help="square input side, divisible by 32")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy")


def load_state_dict(path) -> dict:
    """A plain state_dict, or a checkpoint dict holding one under 'state_dict' or 'model'."""
    if not Path(path).is_file():
        raise ValueError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError):
        # torch's own words advise weights_only=False, which would run whatever code the file holds
        raise ValueError(f"{path} is not a state_dict torch.load can read as plain tensors; pass the weights.pt of "
                         "a model folder or a checkpoint saved with torch.save") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state_dict")
    return obj


def network_from_args(arch, weights, landmarks):
    state = load_state_dict(weights) if weights else None
    if arch is None:
        if weights is None or not (Path(weights).parent / SPEC_BESIDE_WEIGHTS).is_file():
            raise ValueError("give --arch (preset or spec file), or --weights with a spec.json next to it")
        arch = str(Path(weights).parent / SPEC_BESIDE_WEIGHTS)
    if landmarks is None and state is not None and "head.classifier.weight" in state:
        landmarks = int(state["head.classifier.weight"].shape[0])
    model = build_network(arch, landmarks)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            # the first line only says "Error(s) in loading state_dict for SDHRNet:"; the next says which keys
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            why = lines[1] if len(lines) > 1 else lines[0]
            why = why if len(why) <= 200 else why[:200] + "..."
            raise ValueError(f"weights {weights} do not fit architecture {arch}: {why}") from None
    return model


def main(args) -> int:
    try:
        model = network_from_args(args.arch, args.weights, args.landmarks)
        try:
            path = export_onnx(model, args.out, args.input_size, exporter=args.exporter)
        except OSError as exc:
            raise ValueError(cannot_write("--out", args.out, exc)) from None
    except ValueError as e:
        print(f"sdhrnet export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} (input 'image' N x 3 x {args.input_size} x {args.input_size}, output 'heatmaps')")
    return 0

"""`sdhrnet export`: write a preset, a spec or a trained checkpoint to ONNX."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from trainer.export import export_onnx
from trainer.nets import build_network

SPEC_BESIDE_WEIGHTS = "spec.json"


def add_arguments(parser, command: str) -> None:
    parser.add_argument("--arch", default=None,
                        help="preset or spec JSON (default: spec.json next to --weights)")
    parser.add_argument("--weights", default=None, help="state_dict file (torch.save) to load")
    parser.add_argument("--landmarks", type=int, default=None, help="number of landmarks (default: from weights or preset)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--input-size", type=int, default=256, help="square input side, divisible by 32")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy")


def load_state_dict(path) -> dict:
    """A plain state_dict, or a checkpoint dict holding one under 'state_dict' or 'model'."""
    if not Path(path).is_file():
        raise ValueError(f"weights file {path} does not exist")
    obj = torch.load(path, map_location="cpu", weights_only=True)
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
            raise ValueError(f"weights {weights} do not fit architecture {arch}: {str(e).splitlines()[0]}") from None
    return model


def main(args) -> int:
    try:
        model = network_from_args(args.arch, args.weights, args.landmarks)
        path = export_onnx(model, args.out, args.input_size, exporter=args.exporter)
    except ValueError as e:
        print(f"sdhrnet export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} (input 'image' N x 3 x {args.input_size} x {args.input_size}, output 'heatmaps')")
    return 0

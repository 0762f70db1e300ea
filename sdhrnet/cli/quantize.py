"""`sdhrnet quantize`: an INT8 copy of a model folder, calibrated on faces of a training split."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--model", required=True, help="model folder, run id, runs:/ID[/PATH] or models:/NAME@ALIAS")
    p.add_argument("--dataset", required=True, help="dataset of the calibration faces (300w | wflw | cofw | csv)")
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--split", default="train-dev", help="calibration split (a training split; default train-dev)")
    p.add_argument("--faces", type=int, default=128, help="calibration faces, spread evenly over the split")
    p.add_argument("--out", required=True, type=Path, help="folder for the INT8 model (model.onnx, card, spec)")


def main(args: argparse.Namespace) -> int:
    from trainer.evaluate import resolve_model
    from trainer.quantize import calibration_crops, quantize_model_dir

    try:
        if args.faces < 1:
            raise ValueError("--faces must be at least 1")
        onnx_path, card = resolve_model(args.model)
        if "quantized" in card:
            raise ValueError(f"{args.model} is already quantized")
        if "input_size" not in card:  # a bare .onnx file has no card, and the INT8 folder needs one
            raise ValueError(f"{args.model} comes without a model card giving its input_size; pass a model folder")
        crops = calibration_crops(args.dataset, args.data_root, args.split, int(card["input_size"]), args.faces)
        out = quantize_model_dir(onnx_path.parent, args.out, crops)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"sdhrnet quantize: {exc}", file=sys.stderr)
        return 2
    sizes = {name: p.stat().st_size for name, p in (("fp32", onnx_path), ("int8", out / "model.onnx"))}
    print(json.dumps({"out": str(out), "faces": len(crops), "bytes": sizes}, indent=1))
    return 0

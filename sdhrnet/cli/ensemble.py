"""`sdhrnet ensemble`: one model folder whose ONNX averages the heatmaps of several trained models (a teacher)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("models", nargs="+", help="two or more: model folder, run id, runs:/ID[/PATH] or models:/NAME@ALIAS")
    p.add_argument("--out", required=True, type=Path, help="folder for the ensemble (model.onnx, card, spec)")


def main(args: argparse.Namespace) -> int:
    from trainer.ensemble import write_ensemble

    try:
        card = write_ensemble(args.models, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sdhrnet ensemble: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "members": len(card["members"]), "params": card["params"]}, indent=1))
    return 0

"""`sdhrnet ensemble` and `sdhrnet soup`: one model folder made of several trained models. An ensemble's ONNX runs
them all and averages their heatmaps (a teacher); a soup is one network whose weights are their average."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = {
    "ensemble": "two or more: model folder, run id, runs:/ID[/PATH] or models:/NAME@ALIAS",
    "soup": "two or more of one architecture, fine-tuned from one start: model folder, run id, runs:/ID[/PATH] or "
            "models:/NAME@ALIAS",
}


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("models", nargs="+", help=HELP[command])
    p.add_argument("--out", required=True, type=Path, help=f"folder for the {command} (model.onnx, card, spec)")


def main(args: argparse.Namespace) -> int:
    from trainer.ensemble import write_ensemble
    from trainer.soup import write_soup

    write, counted = {"ensemble": (write_ensemble, "members"), "soup": (write_soup, "ingredients")}[args.command]
    try:
        card = write(args.models, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sdhrnet {args.command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), counted: len(card[counted]), "params": card.get("params")}, indent=1))
    return 0

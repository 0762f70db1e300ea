"""`sdhrnet soup`: one model folder whose weights average several networks fine-tuned from one start."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("models", nargs="+", help="two or more of one architecture, fine-tuned from one start: model "
                                             "folder, run id, runs:/ID[/PATH] or models:/NAME@ALIAS")
    p.add_argument("--out", required=True, type=Path, help="folder for the soup (model.onnx, card, spec)")


def main(args: argparse.Namespace) -> int:
    from trainer.soup import write_soup

    try:
        card = write_soup(args.models, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sdhrnet soup: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "ingredients": len(card["ingredients"]), "params": card.get("params")},
                     indent=1))
    return 0

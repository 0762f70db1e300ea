"""`sdhrnet complexity`: parameters and multiply-adds of presets or spec files."""
from __future__ import annotations

import json
import sys

from sdhrnet.cli import multiple_of, positive_int
from trainer.complexity import complexity
from trainer.nets import PRESETS, build_network


def add_arguments(parser, command: str) -> None:
    parser.add_argument("--arch", default="all",
                        help=f"preset ({', '.join(PRESETS)}), a spec JSON file, or 'all' for a table of every preset")
    parser.add_argument("--input-size", type=multiple_of(32), default=256, help="square input side, divisible by 32")
    parser.add_argument("--landmarks", type=positive_int, default=None,
                        help="number of landmarks (default: the preset's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def measure(arch: str, input_size: int, landmarks: int | None) -> dict:
    model = build_network(arch, landmarks)
    return {"arch": str(arch), "input_size": input_size, "num_landmarks": model.num_landmarks,
            **complexity(model, input_size)}


def format_table(rows: list[dict]) -> str:
    lines = [f"{'arch':<16}{'landmarks':>10}{'params (M)':>12}{'MACs (G)':>10}{'head (G)':>10}{'backbone (G)':>14}"]
    for r in rows:
        lines.append(f"{r['arch']:<16}{r['num_landmarks']:>10}{r['params'] / 1e6:>12.3f}{r['macs'] / 1e9:>10.3f}"
                     f"{r['macs_head'] / 1e9:>10.3f}{r['macs_backbone'] / 1e9:>14.3f}")
    lines.append(f"input {rows[0]['input_size']}x{rows[0]['input_size']}; MACs count conv/linear multiply-adds, "
                 "upsampling is not counted; backbone = total - head")
    return "\n".join(lines)


def main(args) -> int:
    try:
        archs = list(PRESETS) if args.arch == "all" else [args.arch]
        rows = [measure(a, args.input_size, args.landmarks) for a in archs]
    except ValueError as e:
        print(f"sdhrnet complexity: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=1))
    else:
        print(format_table(rows))
    return 0

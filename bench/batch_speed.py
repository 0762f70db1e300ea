"""Faces/s of the served model against batch size (the paper's Figure 4) with ONNX Runtime at 1 and 2 threads,
written as a PNG and a table. Every (threads, batch) point is the median of --rounds calls, the points timed in
alternating rounds so that load from other processes hits them alike. The network alone is timed (crops are
prepared beforehand; bench/inference_speed.py times crop and decode).

    .venv/bin/python bench/batch_speed.py [--model sdhrnet/default_model] [--out bench/batch_speed.png]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime

from trainer.evaluate import resolve_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "sdhrnet" / "default_model"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("batch_speed.png"))
    args = ap.parse_args()

    onnx_path, card = resolve_model(args.model)
    size = int(card["input_size"])
    sessions = {}
    for t in args.threads:
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = t, 1
        sessions[t] = onnxruntime.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sessions[args.threads[0]].get_inputs()[0].name
    x = np.random.default_rng(0).normal(size=(max(args.batches), 3, size, size)).astype(np.float32)
    times = {(t, b): [] for t in args.threads for b in args.batches}
    for s in sessions.values():
        s.run(None, {name: x[:1]})
    for _ in range(args.rounds):
        for t, s in sessions.items():
            for b in args.batches:
                t0 = time.perf_counter()
                s.run(None, {name: x[:b]})
                times[(t, b)].append(time.perf_counter() - t0)
    speed = {k: k[1] / statistics.median(v) for k, v in times.items()}
    print(f"model {args.model} ({card.get('params', 0) / 1e6:.3f} M params, input {size}), median of {args.rounds}\n")
    print("| batch | " + " | ".join(f"faces/s, {t} thread(s)" for t in args.threads) + " |")
    print("| --- " * (1 + len(args.threads)) + "|")
    for b in args.batches:
        print(f"| {b} | " + " | ".join(f"{speed[(t, b)]:.1f}" for t in args.threads) + " |")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for t in args.threads:
        ax.plot(args.batches, [speed[(t, b)] for b in args.batches], marker="o", label=f"{t} thread(s)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (faces per call)")
    ax.set_ylabel("faces / s (ONNX Runtime, CPU)")
    ax.set_title(f"served model, input {size}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"\nplot: {args.out}")


if __name__ == "__main__":
    main()

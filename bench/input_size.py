"""What a larger input costs: the served network (or any SD-HRNet model folder) exported at several input sizes and
timed side by side, ONNX Runtime at batch 1, in alternating rounds so that load from other processes hits every
size alike. Prints MACs and the median network ms per face of each size, and both as ratios to the first size.

    .venv/bin/python bench/input_size.py --sizes 128 160 192 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from trainer.complexity import complexity
from trainer.export import export_onnx
from trainer.model_files import load_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=REPO / "sdhrnet" / "default_model")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192], help="input sizes, multiples of 32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=10, help="calls per size and round")
    args = ap.parse_args()

    import onnxruntime as ort

    model, _ = load_model(args.model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    sessions, macs, inputs = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = export_onnx(model, Path(tmp) / f"model-{size}.onnx", input_size=size)
            sessions[size] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            macs[size] = complexity(model, input_size=size)["macs"]
            inputs[size] = {sessions[size].get_inputs()[0].name:
                            np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)}
        ms = {size: [] for size in args.sizes}
        for _ in range(args.rounds):
            for size in args.sizes:
                start = time.perf_counter()
                for _ in range(args.calls):
                    sessions[size].run(None, inputs[size])
                ms[size].append((time.perf_counter() - start) / args.calls * 1000)
    first = args.sizes[0]
    base = statistics.median(ms[first])
    print(f"{args.model_dir.name}, ONNX Runtime, {args.threads} thread(s), batch 1, median of {args.rounds} rounds")
    print("| input | heatmap | MACs | network ms per face | MACs ratio | ms ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        median = statistics.median(ms[size])
        print(f"| {size} | {size // 4}x{size // 4} | {macs[size] / 1e9:.3f} G | {median:.2f} | "
              f"{macs[size] / macs[first]:.2f}x | {median / base:.2f}x |")


if __name__ == "__main__":
    main()

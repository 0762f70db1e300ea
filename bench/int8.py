"""INT8 against fp32 for one model, side by side: NME on the validation split and ONNX Runtime speed of the
network (faces/s at batch 1 and 16, one thread by default), timed in alternating rounds so that load from other
processes hits both alike.

The INT8 copy is made by trainer.quantize (static, QDQ, per-channel, calibrated on --faces crops of train-dev).

    .venv/bin/python bench/int8.py                                   # the bundled default model
    .venv/bin/python bench/int8.py --model runs:/<id>/model_files --threads 2 --rounds 20
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from trainer.evaluate import evaluate_split, resolve_model
from trainer.quantize import calibration_crops, quantize_model_dir

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "300w"


def session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "sdhrnet" / "default_model"))
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--faces", type=int, default=128, help="calibration faces")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()

    fp32, card = resolve_model(args.model)
    size = int(card["input_size"])
    with tempfile.TemporaryDirectory() as tmp:
        crops = calibration_crops("300w", args.data_root, "train-dev", size, args.faces)
        int8 = quantize_model_dir(fp32.parent, Path(tmp) / "int8", crops) / "model.onnx"
        models = {"fp32": fp32, "int8": int8}
        nme = {k: evaluate_split("300w", args.data_root, "dev", model=str(p.parent))["nme"] for k, p in models.items()}
        sessions = {k: session(p, args.threads) for k, p in models.items()}
        name = sessions["fp32"].get_inputs()[0].name
        times = {(k, b): [] for k in models for b in args.batch}
        for k in models:  # warm-up: the first call builds kernels
            for b in args.batch:
                sessions[k].run(None, {name: crops[:b]})
        for _ in range(args.rounds):
            for k in models:
                for b in args.batch:
                    x = np.ascontiguousarray(np.resize(crops, (b, *crops.shape[1:])))
                    t0 = time.perf_counter()
                    sessions[k].run(None, {name: x})
                    times[(k, b)].append(time.perf_counter() - t0)
        print(f"model {args.model}, input {size}, {args.threads} thread(s), median of {args.rounds} rounds\n")
        print("| | file MB | dev NME | " + " | ".join(f"faces/s @{b}" for b in args.batch) + " |")
        print("| --- " * (3 + len(args.batch)) + "|")
        for k, p in models.items():
            speeds = [b / statistics.median(times[(k, b)]) for b in args.batch]
            print(f"| {k} | {p.stat().st_size / 1e6:.2f} | {nme[k]:.4f} | " + " | ".join(f"{s:.1f}" for s in speeds) + " |")
        ratio = [statistics.median(times[("fp32", b)]) / statistics.median(times[("int8", b)]) for b in args.batch]
        print(f"\nINT8 speed-up: " + ", ".join(f"{r:.2f}x @{b}" for r, b in zip(ratio, args.batch))
              + f"; NME change {100 * (nme['int8'] - nme['fp32']):+.2f} points")


if __name__ == "__main__":
    main()

"""Inference speed of the served model: faces/s and p50 latency of ONNX Runtime against PyTorch eager
(NCHW and channels_last) at batch 1 and 16, measured side by side in one run, with the preprocessing
(landmarker.prepare_faces: crop + normalise) and the decode (landmarker.heatmaps_to_landmarks) timed
separately from the network.

Every call is what /align does for one request of N faces on one photo: prepare_faces -> network ->
heatmaps_to_landmarks. The engines and batch sizes are timed in alternating rounds so that load from other
processes hits them alike; figures are medians over all calls.

Model: --model-dir (a model folder: model.onnx + spec.json + model_card.json [+ weights.pt]), by default
sdhrnet/default_model when it exists; otherwise s-hrnet-300w with random weights at --input-size, exported
to ONNX in a temporary folder (speed does not depend on the weights).
Photo: the first afw face of ../shared/data/300w when present, else a synthetic face.

    .venv/bin/python bench/inference_speed.py
    .venv/bin/python bench/inference_speed.py --quick
    .venv/bin/python bench/inference_speed.py --model-dir path/to/model --threads 2 --batch 1 16 32
    sdhrnet run &  .venv/bin/python bench/inference_speed.py --align-url http://127.0.0.1:8000
        (also /align throughput through the live service, via bench/load_align.py; keep it on 127.0.0.1)
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
import torch

from landmarks.datasets import load_image, load_samples
from trainer.export import export_onnx
from landmarks.landmarker import OnnxLandmarker, heatmaps_to_landmarks, prepare_faces
from trainer.model_files import build_from_arch, load_model
from trainer.model_uri import read_card
from trainer.nets import build_network
from trainer.nets import blocks

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_align  # noqa: E402  (bench/load_align.py: synthetic_face_png, run_level)

DEFAULT_MODEL = REPO / "sdhrnet" / "default_model"
ENGINES = ("onnxruntime", "torch", "torch-cl")


def get_model(args, tmp: Path) -> tuple[Path, torch.nn.Module, int, str]:
    """(onnx path, eval torch model, input size, description)."""
    folder = Path(args.model_dir) if args.model_dir else (DEFAULT_MODEL if DEFAULT_MODEL.is_dir() else None)
    if folder is not None:
        if (folder / "weights.pt").exists():
            model, card = load_model(folder)
        else:  # the bundled default ships ONNX only; PyTorch runs the same architecture (speed ignores weights)
            model, card = build_from_arch(json.loads((folder / "spec.json").read_text())).eval(), read_card(folder)
        return folder / "model.onnx", model, int(card["input_size"]), f"{folder} ({card.get('arch')}, " \
            f"{card.get('params', 0) / 1e6:.2f} M params, input {card['input_size']})"
    torch.manual_seed(0)
    model = build_network("s-hrnet-300w", 68).eval()
    onnx = export_onnx(model, tmp / "model.onnx", input_size=args.input_size)
    params = sum(p.numel() for p in model.parameters())
    return onnx, model, args.input_size, (f"s-hrnet-300w, random weights, {params / 1e6:.2f} M params, input "
                                          f"{args.input_size} (no model folder: exported to a temp dir)")


def get_photo(data_root: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        sample = load_samples("300w", data_root, "afw")[0]
        return load_image(sample), np.asarray(sample.box, np.float64), f"300W {sample.sample_id}"
    except Exception:  # noqa: BLE001 - no data: synthetic face
        png = np.frombuffer(load_align.synthetic_face_png(), np.uint8)
        rgb = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return rgb, np.array([48, 40, 208, 224], np.float64), "synthetic 256x256 face"


def boxes_for(box: np.ndarray, n: int) -> np.ndarray:
    """n boxes around `box`, each shifted by a few px (N faces of one request)."""
    shift = (np.arange(n) % 5 - 2)[:, None] * np.array([1.0, 1.0, 1.0, 1.0])
    return box[None] + shift


class Engine:
    def __init__(self, name: str, onnx: Path, model: torch.nn.Module, size: int, threads: int, max_batch: int):
        self.name = name
        if name == "onnxruntime":
            self.lm = OnnxLandmarker(onnx, input_size=size, threads=threads, batch_size=max_batch)
            self.forward = self.lm.run
        else:
            fmt = torch.channels_last if name == "torch-cl" else torch.contiguous_format
            net = model.to(memory_format=fmt).eval() if name == "torch-cl" else model.eval()

            def forward(batch: np.ndarray) -> np.ndarray:
                blocks.MEMORY_FORMAT = fmt  # the networks convert their input to this format
                with torch.inference_mode():
                    return net(torch.from_numpy(batch).contiguous(memory_format=fmt)).numpy()
            self.forward = forward


def one_call(engine: Engine, image, boxes, size: int) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    batch, transforms = prepare_faces(image, boxes, size)
    t1 = time.perf_counter()
    heat = engine.forward(batch)
    t2 = time.perf_counter()
    heatmaps_to_landmarks(heat, transforms)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help=f"model folder (default {DEFAULT_MODEL} if it exists)")
    parser.add_argument("--input-size", type=int, default=128, help="for the random-weight fallback model")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op and torch threads (default: all cores)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16], help="faces per call")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds over engines and batches")
    parser.add_argument("--faces", type=int, default=64, help="faces per engine, batch size and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per engine and batch size")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 32 faces (~1 minute)")
    parser.add_argument("--data-root", default=str((REPO / ".." / "shared" / "data" / "300w").resolve()))
    parser.add_argument("--align-url", default=None, help="also load-test POST /align of a live service here")
    parser.add_argument("--align-concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--align-duration", type=float, default=10.0, help="seconds per concurrency level")
    parser.add_argument("--align-faces", type=int, nargs="+", default=[1, 16], help="face boxes per request")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.faces, args.warmup = 2, 32, 2
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    cv2.setNumThreads(1)  # the service's preprocessing is single-threaded per request

    with tempfile.TemporaryDirectory() as tmp:
        onnx, model, size, desc = get_model(args, Path(tmp))
        image, box, photo = get_photo(Path(args.data_root))
        engines = [Engine(name, onnx, copy.deepcopy(model) if name == "torch-cl" else model, size,
                          threads, max(args.batch)) for name in args.engines]
        print(f"model: {desc}")
        print(f"photo: {photo} {image.shape[1]}x{image.shape[0]}; torch {torch.__version__}, onnxruntime "
              f"{onnxruntime.__version__}, {threads} threads; {args.rounds} rounds x {args.faces} faces "
              f"per cell; load average {os.getloadavg()[0]:.2f}")
        times = {(e.name, b): [] for e in engines for b in args.batch}
        for e in engines:
            for b in args.batch:
                for _ in range(args.warmup):
                    one_call(e, image, boxes_for(box, b), size)
        for _ in range(args.rounds):
            for b in args.batch:
                boxes = boxes_for(box, b)
                calls = max(1, args.faces // b)
                for e in engines:
                    times[(e.name, b)].extend(one_call(e, image, boxes, size) for _ in range(calls))

    results = []
    print(f"\n{'engine':<12} {'batch':>5} {'calls':>5} {'prep ms':>8} {'net ms':>8} {'decode ms':>9} "
          f"{'p50 ms':>8} {'p90 ms':>8} {'faces/s':>8} {'net faces/s':>11}")
    for b in args.batch:
        for e in engines:
            ts = times[(e.name, b)]
            pre, net, dec = (statistics.median(t[k] for t in ts) for k in range(3))
            total = [sum(t) for t in ts]
            p50, p90 = percentile(total, 50), percentile(total, 90)
            r = {"engine": e.name, "batch": b, "calls": len(ts), "prep_ms": pre * 1e3, "net_ms": net * 1e3,
                 "decode_ms": dec * 1e3, "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "faces_per_s": b / p50,
                 "net_faces_per_s": b / net}
            results.append({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
            print(f"{e.name:<12} {b:>5} {len(ts):>5} {pre * 1e3:>8.2f} {net * 1e3:>8.2f} {dec * 1e3:>9.2f} "
                  f"{p50 * 1e3:>8.2f} {p90 * 1e3:>8.2f} {b / p50:>8.1f} {b / net:>11.1f}")
    by = {(r["engine"], r["batch"]): r for r in results}
    if "onnxruntime" in args.engines and "torch" in args.engines:
        print("\nonnxruntime / torch eager, end-to-end faces/s: " + ", ".join(
            f"batch {b}: {by[('onnxruntime', b)]['faces_per_s'] / by[('torch', b)]['faces_per_s']:.2f}x"
            for b in args.batch))

    align = []
    if args.align_url:
        url = args.align_url.rstrip("/")
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f"\nPOST {url}/align ({photo}), {args.align_duration:.0f} s per level")
        print(f"{'faces/req':>9} {'clients':>7} {'requests':>8} {'faces/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        for nf in args.align_faces:
            body = {"image": base64.b64encode(buf.tobytes()).decode(), "boxes": boxes_for(box, nf).tolist()}
            for level in args.align_concurrency:
                r = asyncio.run(load_align.run_level(url, body, {}, {}, level, args.align_duration, 100_000))
                align.append({"faces_per_request": nf, **r})
                print(f"{nf:>9} {level:>7} {r['requests']:>8} {r['faces_per_s']:>8} {r['p50_ms']:>8} "
                      f"{r['p99_ms']:>8} {sum(r['errors'].values()):>6}", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps({"inference": results, "align": align}, indent=1))


if __name__ == "__main__":
    main()

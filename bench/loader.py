"""Loader throughput on the real 300W data (afw + helen/trainset): samples/s for building the crop cache
(cold: JPEG decode + crop) and for one augmented epoch served from the cache (warm), at input 128 and 256,
with DataLoader num_workers 0 and 2.

    .venv/bin/python bench/loader.py [--data-root ../shared/data/300w] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import torch

from landmarks.datasets import get_info, load_samples
from trainer.torch_data import LandmarkDataset

REPO = Path(__file__).resolve().parents[1]


def cold(samples, info, size: int, threads: int) -> tuple[LandmarkDataset, float]:
    ds = LandmarkDataset(samples, info, size, train=True, seed=0)
    t = time.perf_counter()
    ds.build_cache(threads=threads)
    return ds, len(ds) / (time.perf_counter() - t)


def warm(ds: LandmarkDataset, workers: int, batch_size: int = 16) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=False)
    t = time.perf_counter()
    n = sum(len(batch["index"]) for batch in loader)
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str((REPO / ".." / "shared" / "data" / "300w").resolve()))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N faces")
    parser.add_argument("--sizes", default="128,256")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one OpenCV thread per loader process: the workers are the parallelism
    torch.set_num_threads(1)
    info = get_info("300w")
    samples = load_samples("300w", args.data_root, "afw+helen/trainset")[:args.limit]
    print(f"{len(samples)} faces from {args.data_root} (afw + helen/trainset)")
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for workers in (0, 2):
            ds, cold_rate = cold(samples, info, size, threads=max(1, workers))
            warm_rate = warm(ds, workers)
            mb = ds.cached_bytes() / 2 ** 20
            results.append({"input": size, "workers": workers, "cold_samples_per_s": round(cold_rate, 1),
                            "warm_samples_per_s": round(warm_rate, 1), "cache_mb": round(mb, 1),
                            "cache_px": ds.cache_size})
            print(f"input {size:>3}  workers {workers}  cold cache build {cold_rate:7.1f} samples/s "
                  f"(threads {max(1, workers)})  warm augmented epoch {warm_rate:7.1f} samples/s  "
                  f"cache {mb:6.1f} MB ({ds.cache_size} px crops)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

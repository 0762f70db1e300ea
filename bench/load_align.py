"""Load test of POST /align against a live server: faces/s and p50/p99 latency at several concurrencies.

    sdhrnet run &                      # or any deployment
    python bench/load_align.py --url http://127.0.0.1:8000 --concurrency 1 8 32 --duration 15

Each client sends requests back to back (closed loop), so latency includes queueing in the micro-batcher.
Traffic goes only to the URL given; keep it on this machine (127.0.0.1) unless you own the target.
"""
import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import httpx


def synthetic_face_png(size: int = 256) -> bytes:
    import cv2
    import numpy as np

    image = np.full((size, size, 3), 210, np.uint8)
    c = size // 2
    cv2.ellipse(image, (c, c), (size // 3, size * 2 // 5), 0, 0, 360, (150, 175, 210), -1)
    for dx in (-size // 8, size // 8):
        cv2.circle(image, (c + dx, c - size // 10), size // 28, (40, 40, 40), -1)
    cv2.ellipse(image, (c, c + size // 6), (size // 8, size // 24), 0, 0, 180, (60, 60, 160), 3)
    ok, buf = cv2.imencode(".png", image)
    return buf.tobytes()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def run_level(url: str, body: dict, headers: dict, params: dict, concurrency: int, duration: float,
                    max_requests: int) -> dict:
    latencies: list[float] = []
    faces = 0  # counted from the answers: without boxes the service decides how many it finds
    errors: dict[int | str, int] = {}
    versions: set[str] = set()
    stop_at = time.perf_counter() + duration
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def one_client():
            nonlocal sent, faces
            while time.perf_counter() < stop_at and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/align", json=body, headers=headers, params=params)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                    answer = r.json()
                    versions.add(answer["model"]["version"])
                    faces += len(answer["faces"])
                else:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

        await client.post("/align", json=body, headers=headers, params=params)  # warm-up: model load, connections
        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "faces_per_s": round(faces / elapsed, 1),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1e3, 1), "p99_ms": round(percentile(latencies, 99) * 1e3, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1e3, 1) if latencies else None,
            "model_versions": sorted(versions)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per concurrency level")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per level, whatever the duration")
    parser.add_argument("--faces", type=int, default=1, help="face boxes per request")
    parser.add_argument("--detect", action="store_true", help="send no boxes: the service finds the faces")
    parser.add_argument("--image", type=Path, help="photo to send (default: a synthetic 256x256 face)")
    parser.add_argument("--box", type=float, nargs=4, default=[48, 40, 208, 224], metavar=("X1", "Y1", "X2", "Y2"))
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--key", default=None, help="X-API-Key, when /align needs one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    image = args.image.read_bytes() if args.image else synthetic_face_png()
    body = {"image": base64.b64encode(image).decode()}
    if not args.detect:
        body["boxes"] = [list(args.box)] * args.faces
    headers = {"X-API-Key": args.key} if args.key else {}
    params = {"dataset": args.dataset} if args.dataset else {}
    url = args.url.rstrip("/")
    results = []
    sent = "no boxes (detected faces)" if args.detect else f"{args.faces} face(s) per request"
    print(f"POST {url}/align, {sent}, {args.duration:.0f} s per level")
    print(f"{'clients':>7} {'requests':>8} {'faces/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>8}")
    for level in args.concurrency:
        result = asyncio.run(run_level(url, body, headers, params, level, args.duration, args.max_requests))
        results.append(result)
        print(f"{level:>7} {result['requests']:>8} {result['faces_per_s']:>8} {result['p50_ms']:>8} "
              f"{result['p99_ms']:>8} {sum(result['errors'].values()):>8}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

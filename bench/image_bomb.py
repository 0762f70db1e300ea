"""What a decompression bomb costs the API: a ~48 KB PNG declaring 20000x20000 pixels sent to POST /align.

    python bench/image_bomb.py --repeat 20

Starts its own `sdhrnet serve` on a free loopback port (no model needed: the image is refused before one is
used), sends a warm-up, then the bomb `--repeat` times one after the other and `--concurrent` at once, and
prints the status codes, the latency (median, max) and the growth of the server's peak resident memory
(VmHWM from /proc, so Linux only). The baseline is the same request with a GIF of the same size (415 after
the body is read): what any 48 KB upload costs on this machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.service_support import png_bomb  # noqa: E402
from tests.services import free_port, wait_until  # noqa: E402

BOX = json.dumps([[20, 10, 140, 110]])


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def post(client: httpx.Client, data: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    r = client.post("/align", files={"image": ("bomb.png", data, "image/png")}, data={"boxes": BOX})
    return r.status_code, (time.perf_counter() - start) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=20000, help="declared width and height")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    bomb = png_bomb(args.side, args.side)
    with tempfile.TemporaryDirectory(prefix="sdhrnet-bomb-") as tmp:
        port = free_port()
        env = {**os.environ, "SDHRNET_HOME": f"{tmp}/home", "SDHRNET_PRELOAD_DATASETS": "",
               "SDHRNET_MODEL_POLL_SECONDS": "0", "PYTHONPATH": str(REPO)}
        api = subprocess.Popen([sys.executable, "-m", "sdhrnet.cli", "serve", "--port", str(port), "--no-access-log"],
                               cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            def live():
                try:
                    return httpx.get(f"{base}/livez", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_until(live, 60, "the API to start")
            with httpx.Client(base_url=base, timeout=120) as client:
                post(client, png_bomb(7000, 7000))  # warm-up: first-request imports are not the bomb's cost
                baseline = [post(client, b"GIF89a" + bytes(len(bomb) - 6))[1] for _ in range(args.repeat)]
                before = peak_rss_mb(api.pid)
                serial = [post(client, bomb) for _ in range(args.repeat)]
                with ThreadPoolExecutor(args.concurrent) as pool:
                    parallel = list(pool.map(lambda _: post(client, bomb), range(args.concurrent)))
                growth = peak_rss_mb(api.pid) - before
        finally:
            api.terminate()
            api.wait(30)
    times = [ms for _, ms in serial]
    print(json.dumps({"bomb_bytes": len(bomb), "declared": f"{args.side}x{args.side}",
                      "statuses": sorted({s for s, _ in serial + parallel}),
                      "serial_ms_median": round(statistics.median(times), 1), "serial_ms_max": round(max(times), 1),
                      "baseline_same_size_415_ms_median": round(statistics.median(baseline), 1),
                      f"concurrent_{args.concurrent}_ms_max": round(max(ms for _, ms in parallel), 1),
                      "peak_rss_growth_mb": round(growth, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-batching, a free event loop during inference, and champion swaps under load."""
import asyncio
import time

import httpx
import numpy as np
import pytest

from sdhrnet.settings import ServiceSettings
from service.app import create_app
from service.batcher import MicroBatcher
from tests.service_support import FakeJobs, FakeRegistry, b64, build_tiny_model, png_bytes

BOX = [20, 10, 140, 110]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [build_tiny_model(root / "v1", seed=1), build_tiny_model(root / "v2", seed=2)]


def test_requests_keep_their_faces_together_and_are_batched():
    sizes = []

    def run(batch):
        sizes.append(len(batch))
        return batch[:, :1] * 2  # identity-like so that each request can check it got its own rows

    async def scenario():
        batcher = MicroBatcher(run, max_batch=8, wait_s=0.05)
        requests = [np.full((n, 3, 4, 4), i, np.float32) for i, n in enumerate([3, 3, 3, 1, 5])]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return requests, results

    requests, results = asyncio.run(scenario())
    for request, result in zip(requests, results):
        assert result.shape[0] == request.shape[0]
        np.testing.assert_array_equal(result, request[:, :1] * 2)
    assert sum(sizes) == 15 and max(sizes) <= 8 and len(sizes) < 5  # batched, never above max_batch


def test_oversized_request_runs_alone_and_loop_stays_free():
    def slow_run(batch):
        time.sleep(0.6)  # a CPU-bound ONNX call stands in here
        return batch

    async def scenario():
        batcher = MicroBatcher(slow_run, max_batch=2, wait_s=0.0)
        gaps, last = [], time.perf_counter()

        async def ticker():
            nonlocal last
            for _ in range(30):
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        result, _ = await asyncio.gather(batcher.submit(np.zeros((5, 1), np.float32)), ticker())
        await batcher.close()
        return result, gaps

    result, gaps = asyncio.run(scenario())
    assert result.shape == (5, 1)
    assert max(gaps) < 0.3, f"the event loop stalled for {max(gaps):.3f} s during inference"


def test_concurrent_align_requests_share_batches(model_dirs):
    settings = ServiceSettings(model_poll_seconds=0, batch_wait_ms=200, max_batch=32, preload_datasets="")
    app = create_app(settings, registry=FakeRegistry({"300w": model_dirs}), jobs=FakeJobs(), api_keys=frozenset())
    body = {"image": b64(png_bytes()), "boxes": [BOX, BOX]}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # one pass each: the tiny model's random points may look tilted, which would add a second
            responses = await asyncio.gather(*(client.post("/align?recrop=false", json=body) for _ in range(8)))
            metrics = (await client.get("/metrics")).text
        await app.state.models.close()
        return responses, metrics

    responses, metrics = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    count = next(float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith('sdhrnet_inference_batch_size_count{dataset="300w"}'))
    total = next(float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith('sdhrnet_inference_batch_size_sum{dataset="300w"}'))
    assert total == 16 and count < 8, f"{count} batches for 8 requests"


def test_champion_swap_under_load_fails_no_request(model_dirs):
    registry = FakeRegistry({"300w": model_dirs})
    settings = ServiceSettings(model_poll_seconds=0.05, batch_wait_ms=2, preload_datasets="300w")
    app = create_app(settings, registry=registry, jobs=FakeJobs(), api_keys=frozenset())
    body = {"image": b64(png_bytes()), "boxes": [BOX]}

    async def scenario():
        versions, statuses = [], []
        async with app.router.lifespan_context(app):  # starts the champion poller
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                async def client_loop(stop_at):
                    while time.perf_counter() < stop_at:
                        r = await client.post("/align", json=body)
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            versions.append(r.json()["model"]["version"])

                async def promote_later():
                    await asyncio.sleep(0.3)
                    registry.promote("300w", 1, who="test")

                stop_at = time.perf_counter() + 1.2
                await asyncio.gather(*(client_loop(stop_at) for _ in range(4)), promote_later())
        return versions, statuses

    versions, statuses = asyncio.run(scenario())
    assert set(statuses) == {200}
    assert versions[0] == "2" and versions[-1] == "1"
    switch = versions.index("1")
    # requests that took the old model before the swap may still finish after the first new answer
    assert versions[switch:].count("2") <= 4

"""Micro-batching of face crops for one loaded model.

Every request submits all its faces at once and they stay in one batch; requests arriving within
`wait_s` of the first are run together. Inference runs on a dedicated thread so the event loop
keeps serving while ONNX Runtime works.
"""
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Item:
    faces: np.ndarray
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, run, *, max_batch: int, wait_s: float, on_batch=None, name: str = "model"):
        self._run = run
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_s)
        self._on_batch = on_batch or (lambda size: None)
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._carry: _Item | None = None  # a request that did not fit in the previous batch
        self._in_flight = 0
        self._idle = asyncio.Event()  # set while no submitted request waits for its answer
        self._idle.set()
        # one thread per model: ONNX Runtime parallelises inside a run, concurrent runs would only contend
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._closed = False

    async def submit(self, faces: np.ndarray) -> np.ndarray:
        if self._closed:
            raise RuntimeError("batcher closed")
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._queue.put(_Item(faces, future))
            return await future
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _next_batch(self) -> list[_Item]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], len(first.faces)
        deadline = time.perf_counter() + self.wait_s
        while size < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if size + len(item.faces) > self.max_batch:
                self._carry = item  # never split a request's faces over two batches
                break
            batch.append(item)
            size += len(item.faces)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            batch = [item for item in batch if not item.future.cancelled()]
            if not batch:
                continue
            faces = np.concatenate([item.faces for item in batch]) if len(batch) > 1 else batch[0].faces
            self._on_batch(len(faces))
            try:
                heatmaps = await loop.run_in_executor(self._executor, self._run, faces)
            except Exception as exc:  # a failing model fails its requests, not the batcher
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            start = 0
            for item in batch:
                n = len(item.faces)
                if not item.future.done():
                    item.future.set_result(heatmaps[start:start + n])
                start += n

    @property
    def idle(self) -> bool:
        return self._in_flight == 0

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Stop after the requests already submitted got their answer (used when a model is swapped out)."""
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            pass  # stop anyway: those requests get a cancelled answer
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

"""Loaded champion models per dataset, their batchers, and following the champion alias."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .batcher import MicroBatcher
from .errors import NoModelError, Problem

if TYPE_CHECKING:  # registry imports MLflow; the service loads it only when the registry is first called
    from registry.served import ServedModel

log = logging.getLogger("sdhrnet.service.models")


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class LoadedModel:
    dataset: str
    name: str
    version: str
    alias: str
    run_id: str
    num_landmarks: int
    input_size: int
    onnx_path: str
    landmarker: object
    batcher: MicroBatcher
    users: int = 0
    card: dict = field(default_factory=dict)
    unused: asyncio.Event = field(default_factory=_set_event, repr=False, compare=False)  # set while users == 0

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "alias": self.alias, "run_id": self.run_id,
                "dataset": self.dataset, "num_landmarks": self.num_landmarks}

    @property
    def metric_labels(self):
        return (self.dataset, self.name, self.version, self.run_id)


def _make_landmarker(onnx_path: str, input_size: int, threads: int, max_batch: int):
    from landmarks.landmarker import OnnxLandmarker

    # the batcher already bounds the batch; let ONNX Runtime take it in one run
    return OnnxLandmarker(onnx_path, input_size, threads=threads, batch_size=max_batch * 2)


def known_dataset(dataset: str) -> None:
    """A dataset the trainer has no reader for can never get a model: the client's mistake, not an outage."""
    from landmarks.datasets import DATASETS

    if dataset not in DATASETS:
        raise Problem(404, f"unknown dataset '{dataset}'; models are trained and served for "
                           f"{', '.join(DATASETS)} (the ?dataset= parameter)", dataset=dataset)


class ModelManager:
    def __init__(self, registry, settings, metrics):
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self._models: dict[str, LoadedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task] = set()

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    def _load_blocking(self, served: ServedModel) -> LoadedModel:
        dataset = served.dataset
        input_size = int(served.input_size or served.card.get("input_size", 256))
        onnx_path = str(served.onnx_path)
        landmarker = _make_landmarker(onnx_path, input_size, self.settings.inference_threads, self.settings.max_batch)
        batcher = MicroBatcher(landmarker.run, max_batch=self.settings.max_batch,
                               wait_s=self.settings.batch_wait_ms / 1000.0, name=dataset,
                               on_batch=self.metrics.batch_size.labels(dataset).observe)
        return LoadedModel(
            dataset=dataset, name=served.name, version=str(served.version), alias=served.alias,
            run_id=served.run_id or "", num_landmarks=int(served.num_landmarks),
            input_size=input_size, onnx_path=onnx_path, landmarker=landmarker, batcher=batcher,
            card=dict(served.card or {}))

    async def _champion(self, dataset: str) -> ServedModel | None:
        try:
            return await self.registry.call("champion", dataset)
        except LookupError:
            return None  # nothing registered under that name: the caller answers 503 with what to do

    async def _load(self, served: ServedModel) -> LoadedModel:
        try:
            return await asyncio.to_thread(self._load_blocking, served)
        except Exception as exc:
            log.warning("could not load %s", served.onnx_path, exc_info=True)
            raise Problem(503, f"the champion model {served.name} v{served.version} "
                               "could not be loaded (the server log says why); promote a working version",
                          headers={"Retry-After": "30"}) from None

    async def get(self, dataset: str) -> LoadedModel:
        model = self._models.get(dataset)
        if model is not None:
            return model
        known_dataset(dataset)
        lock = self._locks.setdefault(dataset, asyncio.Lock())
        async with lock:
            if dataset not in self._models:
                served = await self._champion(dataset)
                if served is None:
                    raise NoModelError(dataset)
                await self._install(dataset, served)
        return self._models[dataset]

    @contextlib.asynccontextmanager
    async def use(self, dataset: str):
        """The model stays alive (its batcher open) until every request that took it is done."""
        model = await self.get(dataset)
        model.users += 1
        model.unused.clear()
        try:
            yield model
        finally:
            model.users -= 1
            if model.users == 0:
                model.unused.set()

    async def _install(self, dataset: str, served: ServedModel) -> LoadedModel:
        new = await self._load(served)
        old = self._models.get(dataset)
        self._models[dataset] = new  # one assignment: requests see either the old or the new model
        self.metrics.set_loaded(*new.metric_labels, previous=old.metric_labels if old else None)
        if old is not None:
            self.metrics.model_swaps.labels(dataset).inc()
            log.info("dataset %s: now serving %s v%s (was v%s)", dataset, new.name, new.version, old.version)
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        else:
            log.info("dataset %s: serving %s v%s", dataset, new.name, new.version)
        return new

    async def _retire(self, old: LoadedModel) -> None:
        try:  # the requests that took the old model finish on it (30 s at most)
            await asyncio.wait_for(old.unused.wait(), 30)
        except TimeoutError:
            pass
        await old.batcher.close()

    async def refresh(self, dataset: str) -> bool:
        """Load the current champion if it differs from the served one. True when a swap happened."""
        lock = self._locks.setdefault(dataset, asyncio.Lock())
        async with lock:
            served = await self._champion(dataset)
            if served is None:
                return False
            current = self._models.get(dataset)
            if current is not None and str(served.version) == current.version and served.name == current.name:
                return False
            await self._install(dataset, served)
            return True

    async def poll_forever(self) -> None:
        while True:
            for dataset in sorted(set(self._models) | set(self.settings.preload_list)):
                try:
                    await self.refresh(dataset)
                except Problem as exc:  # the registry is away (/readyz says so) or the champion is unusable
                    log.warning("could not refresh the champion of %s: %s", dataset, exc.detail)
                except Exception:  # a flaky registry must not kill the follower
                    log.warning("could not refresh the champion of %s", dataset, exc_info=True)
            await asyncio.sleep(self.settings.model_poll_seconds)

    async def close(self) -> None:
        # forgotten as they close: an app started again in the same process loads them anew, not closed batchers
        models, self._models = list(self._models.values()), {}
        for model in models:
            await model.batcher.close(drain_timeout=5)
        for task in list(self._retiring):
            task.cancel()

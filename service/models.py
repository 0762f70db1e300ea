"""Loaded champion models per dataset, their batchers, and following the champion alias."""
import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from .batcher import MicroBatcher
from .errors import NoModelError, Problem

log = logging.getLogger("sdhrnet.service.models")


def field_of(obj, name, default=None):
    """Registry objects may be dataclasses or dicts; read both."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


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

    def _load_blocking(self, served) -> LoadedModel:
        dataset = str(field_of(served, "dataset"))
        input_size = int(field_of(served, "input_size") or field_of(field_of(served, "card", {}), "input_size", 256))
        onnx_path = str(field_of(served, "onnx_path"))
        landmarker = _make_landmarker(onnx_path, input_size, self.settings.inference_threads, self.settings.max_batch)
        batcher = MicroBatcher(landmarker.run, max_batch=self.settings.max_batch,
                               wait_s=self.settings.batch_wait_ms / 1000.0, name=dataset,
                               on_batch=self.metrics.batch_size.labels(dataset).observe)
        return LoadedModel(
            dataset=dataset, name=str(field_of(served, "name", f"sdhrnet-{dataset}")),
            version=str(field_of(served, "version", "")), alias=str(field_of(served, "alias", "champion")),
            run_id=str(field_of(served, "run_id", "") or ""), num_landmarks=int(field_of(served, "num_landmarks")),
            input_size=input_size, onnx_path=onnx_path, landmarker=landmarker, batcher=batcher,
            card=dict(field_of(served, "card", {}) or {}))

    async def _champion(self, dataset: str):
        try:
            return await self.registry.call("champion", dataset)
        except LookupError:
            return None  # nothing registered under that name: the caller answers 503 with what to do

    async def _load(self, served) -> LoadedModel:
        try:
            return await asyncio.to_thread(self._load_blocking, served)
        except Exception as exc:
            log.warning("could not load %s", field_of(served, "onnx_path"), exc_info=True)
            raise Problem(503, f"the champion model {field_of(served, 'name')} v{field_of(served, 'version')} "
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
        try:
            yield model
        finally:
            model.users -= 1

    async def _install(self, dataset: str, served) -> LoadedModel:
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
        for _ in range(600):
            if old.users == 0:
                break
            await asyncio.sleep(0.05)
        await old.batcher.close()

    async def refresh(self, dataset: str) -> bool:
        """Load the current champion if it differs from the served one. True when a swap happened."""
        lock = self._locks.setdefault(dataset, asyncio.Lock())
        async with lock:
            served = await self._champion(dataset)
            if served is None:
                return False
            current = self._models.get(dataset)
            if current is not None and str(field_of(served, "version")) == current.version \
                    and str(field_of(served, "name", current.name)) == current.name:
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

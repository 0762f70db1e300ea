"""The training loop shared by the teacher, slimming and distillation stages.

Determinism is what makes resume exact: the batch order of an epoch comes from (seed, epoch), the
augmentation of a sample from (seed, epoch, index), random erasing from (seed, epoch, step); a checkpoint
stores the epoch and the step inside it, so a resumed run replays the same batches from there on.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trainer.checkpoint import load_checkpoint, save_checkpoint
from sdhrnet.settings import get_settings
from sdhrnet.train_config import TrainConfig
from landmarks.datasets import DATASETS, DatasetInfo, Sample, load_samples, parse_source
from trainer.torch_data import LandmarkDataset
from landmarks.scoring import score_predictions
from landmarks.landmarker import heatmaps_to_landmarks

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a training loop when the job's cancel flag is seen."""


@dataclass
class JobHooks:
    job_id: str | None = None
    progress: Callable[[dict[str, Any]], None] = lambda info: None
    should_cancel: Callable[[], bool] = lambda: False


def setup_torch(cfg: TrainConfig, device: str) -> torch.device:
    threads = cfg.threads or get_settings().threads
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    # the Gaussian tails of the targets underflow into denormals, which slow CPU arithmetic (~15% per step)
    torch.set_flush_denormal(True)
    dev = torch.device(device)
    if dev.type == "cuda":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not gpus:
            raise ValueError(f"device {device!r} was asked for but CUDA is not available on this machine; use cpu")
        if (dev.index or 0) >= gpus:
            raise ValueError(f"device {device!r} was asked for but this machine has {gpus} GPU(s): "
                             + ", ".join(f"cuda:{i}" for i in range(gpus)))
        # training batches all have one shape, so cuDNN's one-off search for the fastest convolution pays for
        # itself; the algorithms it picks may differ between runs, so a GPU run is not bit-reproducible anyway
        torch.backends.cudnn.benchmark = True
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" where the device computes bfloat16 natively, else "fp32"; the others as given."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _native_cpu_bf16() else "fp32"


def _native_cpu_bf16() -> bool:
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        # oneDNN also says yes on AVX-512 CPUs without BF16 instructions, where it emulates bfloat16: on such a Xeon
        # a distillation step took 1.43x as long as in fp32 (bench/train_speed.py --precisions fp32 bf16)
        if torch.cpu._is_avx512_supported():
            return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return True
    except (AttributeError, RuntimeError):  # a build without the probes: stay exact
        return False


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The training step's autocast: bf16 forward passes, or nothing."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class ThreadsFile:
    """Torch threads that follow a number in a file (SDHRNET_THREADS_FILE), looked at once per step: a stat
    when nothing changed. A missing or unreadable file leaves the threads as they are."""

    def __init__(self, path: Path | None):
        self.path, self._seen = path, None

    def follow(self) -> None:
        if self.path is None:
            return
        try:
            stamp = self.path.stat().st_mtime_ns
            if stamp == self._seen:
                return
            self._seen = stamp
            wanted = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return
        if wanted >= 1 and wanted != torch.get_num_threads():
            log.info("threads %d -> %d (%s)", torch.get_num_threads(), wanted, self.path.name)
            torch.set_num_threads(wanted)


@dataclass
class Data:
    info: DatasetInfo
    train: LandmarkDataset
    val: LandmarkDataset
    val_samples: list[Sample]


def _subset(samples: list[Sample], limit: int | None) -> list[Sample]:
    if limit is None or limit >= len(samples):
        return samples
    # evenly spaced rather than the first N, so that a small subset still spans the subsets of the split
    idx = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return [samples[i] for i in idx]


def load_data(dataset: str, data_root: str | Path, cfg: TrainConfig, need_train: bool = True) -> Data:
    info = DATASETS[dataset]
    val_samples = _subset(load_samples(dataset, data_root, cfg.val_split), cfg.max_val_samples)
    if not val_samples:
        raise ValueError(f"split {cfg.val_split!r} of {dataset} under {data_root} is empty")
    train_samples = []
    if need_train:
        train_samples = list(load_samples(dataset, data_root, cfg.train_split))
        for source in cfg.extra_train:
            extra, root, split = parse_source(source)
            if DATASETS[extra].num_landmarks != info.num_landmarks:
                raise ValueError(f"extra_train {source!r} has {DATASETS[extra].num_landmarks} landmarks, "
                                 f"{dataset} has {info.num_landmarks}")
            train_samples += load_samples(extra, root, split)
        train_samples = _subset(train_samples, cfg.max_train_samples)
    if need_train and len(train_samples) < 2:
        raise ValueError(f"split {cfg.train_split!r} of {dataset} under {data_root} has {len(train_samples)} samples; need at least 2")
    train = LandmarkDataset(train_samples, info, cfg.input_size, train=True, seed=cfg.seed,
                            augment_config={"shift": cfg.box_shift})
    val = LandmarkDataset(val_samples, info, cfg.input_size, train=False, seed=cfg.seed)
    return Data(info, train, val, val_samples)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    bs = min(batch_size, n)
    # drop the ragged tail: batch norm misbehaves on a batch of one
    return [perm[i:i + bs] for i in range(0, n - bs + 1, bs)]


def iterate(ds: LandmarkDataset, cfg: TrainConfig, epoch: int, start_step: int,
            pin_memory: bool = False) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    ds.set_epoch(epoch)
    batches = epoch_batches(len(ds), cfg.batch_size, cfg.seed, epoch)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batches[start_step:], num_workers=cfg.num_workers,
                                         pin_memory=pin_memory)
    yield from enumerate(loader, start=start_step)


def steps_per_epoch(ds: LandmarkDataset, cfg: TrainConfig) -> int:
    return max(1, len(ds) // min(cfg.batch_size, len(ds)))


def degradation_generator(cfg: TrainConfig, epoch: int, step: int, which: int) -> torch.Generator:
    return torch.Generator().manual_seed(((cfg.seed * 1000 + epoch) * 100_000 + step) * 4 + which)


@torch.no_grad()
def predict_heatmaps(model: nn.Module, ds: LandmarkDataset, device: torch.device, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    heatmaps, transforms = [], []
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        images = torch.stack([torch.as_tensor(it["image"]) for it in items]).to(device)
        heatmaps.append(model(images).float().cpu().numpy())
        transforms.extend(np.asarray(it["transform"]) for it in items)
    return np.concatenate(heatmaps), np.stack(transforms)


def evaluate_model(model: nn.Module, data: Data, device: torch.device) -> dict[str, Any]:
    """Score a network on the validation split through the same decode and metric code as serving."""
    heatmaps, transforms = predict_heatmaps(model, data.val, device)
    landmarks, _ = heatmaps_to_landmarks(heatmaps, transforms)
    predictions = {s.sample_id: landmarks[i] for i, s in enumerate(data.val_samples)}
    report = score_predictions(data.val_samples, data.info, predictions)
    report["predictions"] = predictions  # for pictures; not part of the logged report
    return report


@dataclass
class TrainState:
    """What a checkpoint holds besides RNG state."""
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    epoch: int = 0
    step: int = 0  # next step inside `epoch`
    global_step: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "best": self.best, "extra": self.extra,
        }

    def restore(self, saved: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(saved["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(saved["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(saved["schedulers"][k])
        self.epoch, self.step, self.global_step = saved["epoch"], saved["step"], saved["global_step"]
        self.best, self.extra = saved["best"], saved["extra"]


def quiet() -> bool:
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


class Loop:
    """Runs epochs of `step_fn`, validating, checkpointing, reporting progress and honouring cancel."""

    def __init__(self, *, stage: str, cfg: TrainConfig, data: Data, state: TrainState, checkpoint: Path,
                 tracker, hooks: JobHooks, device: torch.device):
        self.stage, self.cfg, self.data, self.state = stage, cfg, data, state
        self.checkpoint, self.tracker, self.hooks, self.device = checkpoint, tracker, hooks, device
        self.steps = steps_per_epoch(data.train, cfg)
        self._last_save = time.monotonic()
        self._last_log = time.monotonic()
        self._threads = ThreadsFile(get_settings().threads_file)
        self._precision = resolve_precision(cfg.precision, device)  # probed once, not per step
        log.info("%s: %s forward passes on %s", stage, self._precision, device)

    def resume(self) -> bool:
        saved = load_checkpoint(self.checkpoint)
        if saved is None:
            return False
        self.state.restore(saved)
        log.info("resumed %s at epoch %d step %d from %s", self.stage, self.state.epoch, self.state.step, self.checkpoint)
        return True

    def save(self) -> None:
        save_checkpoint(self.checkpoint, self.state.to_dict())
        self._last_save = time.monotonic()

    def report(self, **info: Any) -> None:
        self.hooks.progress({"stage": self.stage, "epochs": self.cfg.epochs, "steps": self.steps,
                             "run_id": self.tracker.run_id, "best_nme": self.state.best.get("nme"), **info})

    def run(self, step_fn: Callable[[dict[str, torch.Tensor], int, int], dict[str, float]],
            validate_fn: Callable[[], dict[str, float]]) -> None:
        try:
            self._epochs(step_fn, validate_fn)
        except KeyboardInterrupt:
            # a stopped stage resumes at the step it reached, not at the last periodic checkpoint
            self.save()
            log.info("%s stopped at epoch %d step %d; checkpoint %s", self.stage, self.state.epoch + 1, self.state.step,
                     self.checkpoint)
            raise

    def _epochs(self, step_fn: Callable[[dict[str, torch.Tensor], int, int], dict[str, float]],
                validate_fn: Callable[[], dict[str, float]]) -> None:
        cfg, st = self.cfg, self.state
        while st.epoch < cfg.epochs:
            epoch = st.epoch
            for m in st.modules.values():
                m.train()
            # running sums live in the state so that a resumed epoch reports the same averages
            sums: dict[str, float] = st.extra.setdefault("epoch_sums", {})
            t0, timed = time.perf_counter(), 0
            bar = tqdm(total=self.steps, initial=st.step, desc=f"{self.stage} {epoch + 1}/{cfg.epochs}", disable=quiet(), leave=False)
            # pinned batches make the copy to a GPU asynchronous (the non_blocking below)
            for step, batch in iterate(self.data.train, cfg, epoch, st.step, pin_memory=self.device.type == "cuda"):
                if self.hooks.should_cancel():
                    raise JobCancelled(f"{self.stage} cancelled at epoch {epoch} step {step}")
                self._threads.follow()
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                with autocast(self._precision, self.device):
                    losses = step_fn(batch, epoch, step)
                n = int(batch["image"].shape[0])
                timed += n
                sums["_seen"] = sums.get("_seen", 0.0) + n
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v * n
                st.step, st.global_step = step + 1, st.global_step + 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
                if bar.disable and time.monotonic() - self._last_log > 60:  # a heartbeat in logs without a terminal
                    self._last_log = time.monotonic()
                    log.info("%s epoch %d/%d step %d/%d %s", self.stage, epoch + 1, cfg.epochs, step + 1, self.steps,
                             " ".join(f"{k}={v:.4g}" for k, v in losses.items()))
                self.report(epoch=epoch + 1, step=step + 1, losses=losses)
                every = cfg.checkpoint_every_steps
                if (every and st.global_step % every == 0) or time.monotonic() - self._last_save > cfg.checkpoint_minutes * 60:
                    self.save()
            bar.close()
            elapsed = time.perf_counter() - t0
            seen = sums.pop("_seen", 0.0)
            metrics = {f"train_{k}": v / max(seen, 1.0) for k, v in sums.items()}
            st.extra["epoch_sums"] = {}
            metrics["samples_per_s"] = timed / elapsed if elapsed > 0 else 0.0
            metrics["epoch_seconds"] = elapsed
            for name, opt in st.optimizers.items():
                metrics[f"lr_{name}"] = opt.param_groups[0]["lr"]
            for s in st.schedulers.values():
                s.step()
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                metrics.update(validate_fn())
            st.epoch, st.step = epoch + 1, 0
            self.tracker.log_metrics(metrics, step=epoch + 1)
            log.info("%s epoch %d/%d done: %s", self.stage, epoch + 1, cfg.epochs,
                     " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
            self.report(epoch=epoch + 1, step=self.steps, losses={k: v for k, v in metrics.items() if k.startswith("train_")})
            self.save()


def mark_best(state: TrainState, key: str, nme: float, payload: Any = None) -> bool:
    """Keep the lowest validation NME seen; NaN never wins."""
    best = state.best.get("nme")
    if math.isnan(nme) or (best is not None and nme >= best):
        return False
    state.best.update({"nme": nme, "which": key, "epoch": state.epoch + 1})
    if payload is not None:
        state.extra["best_weights"] = payload
    return True

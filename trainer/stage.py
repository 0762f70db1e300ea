"""What a training stage receives and hands back. The stage modules (trainer.slim, teacher, distill, sweep and
trainer.reporting) import these from here, so that trainer.jobs can import the stages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdhrnet.train_config import TrainConfig
from trainer.engine import JobHooks
from trainer.run_store import RunTracker


@dataclass
class RunContext:
    kind: str
    dataset: str
    data_root: Path
    cfg: TrainConfig
    tracker: RunTracker
    hooks: JobHooks
    device: Any
    checkpoint: Path
    params: dict[str, Any]
    workdir: Path


@dataclass
class StageOutput:
    """What a stage hands back: the model folder it wrote (see trainer.model_files)."""
    model_dir: Path
    card: dict[str, Any]

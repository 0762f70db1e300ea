"""Training configuration: one validated model, presets per dataset, `--set key=value` overrides.

The `paper` preset holds the settings of the paper (METHOD.md); `cpu` is what produces the shipped 300W
model on a 2-core machine from the shared 68-point data (each stage has its own schedule); `tiny` runs
slim -> distill end to end in well under a minute for the tests.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Preset = Literal["paper", "cpu", "tiny"]
HeatmapLoss = Literal["mse", "awing"]  # implemented in trainer.losses.HEATMAP_LOSSES
KdLoss = Literal["kl", "heatmap"]  # a distillation term: the paper's spatial-softmax KL, or the heatmap loss
PRESETS: tuple[str, ...] = ("paper", "cpu", "tiny")


class TrainConfig(BaseModel):
    # NaN passes every range check (all its comparisons are false) and infinity passes the one-sided ones, so
    # neither reaches a range validator: refused here as non-numbers, for the API's overrides and `--set` alike
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # data
    train_split: str = "train"
    val_split: str = "common"
    input_size: int = 256
    # more training data, each "DATASET:ROOT:SPLIT" with the dataset's landmark count (e.g. the p1-ytf68 frames
    # for a 300W model); validation stays on val_split
    extra_train: tuple[str, ...] = ()
    # Training crops are centred on the box of the true landmarks, a box no user has: a detector's box, or the
    # box of a first pass's points, sits a few percent off. Each training crop's centre moves by up to this
    # fraction of the crop side along each axis (uniform); 0 keeps the benchmarks' centred crops.
    box_shift: float = 0.0
    max_train_samples: int | None = None  # None = all
    max_val_samples: int | None = None
    num_workers: int = 0
    # optimisation (weights)
    epochs: int = 60
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 4e-5
    lr_steps: tuple[int, ...] = (40, 50)
    lr_factor: float = 0.1
    # the supervised term of every stage: "mse" (the paper) or "awing" (Adaptive Wing, trainer.losses.adaptive_wing)
    heatmap_loss: HeatmapLoss = "mse"
    # slimming
    lr_alpha: float = 1.8e-4
    l1_lambda: float = 5e-5
    alpha_every: int = 2  # one alpha update every `alpha_every` batches, weight updates on the others
    prune_threshold: float = 0.0017
    # BN after every fusion makes the net invariant to a common scale of the alphas, so on a short schedule
    # L1 can shrink them all together; a threshold relative to the largest |alpha| prunes by importance.
    prune_relative: bool = False
    # A parameter budget: when the threshold leaves more parameters than this, it rises to the smallest |alpha|
    # that meets the budget (or as far as a path through every stage survives), so a short schedule whose
    # alphas have not separated still yields a small network.
    prune_max_params: int | None = None
    # Budgets in other terms (trainer.budget): multiply-adds at input_size, and ms per face measured with ONNX
    # Runtime at batch 1 on the machine that runs the job, with the threads it will serve with.
    prune_max_macs: int | None = None
    prune_max_ms: float | None = None
    prune_latency_threads: int = 1
    # sweep: also an INT8 copy of every network (ONNX Runtime static quantization calibrated on training crops),
    # scored and timed next to its fp32 original; kept as a model where it loses at most int8_max_loss NME
    sweep_int8: bool = False
    int8_max_loss: float = 0.001
    # distillation
    lambda_peer: float = 4.0
    lambda_teacher: float = 1.0
    use_teacher: bool = True
    use_peer: bool = True
    masked_inputs: bool = True
    erase_p: float = 0.5
    # The students' inputs also come, with probability lowres_p, from a lower resolution (trainer.augment.
    # random_downscale, down to lowres_min_scale of the input side): the 300W crops are all sharper than the input,
    # while a video frame's face often has fewer pixels than it; the teacher sees the sharp crop.
    lowres_p: float = 0.0
    lowres_min_scale: float = 0.35
    # ... and, with probability noise_p, with Gaussian pixel noise of up to noise_max_grey grey levels (trainer.augment.
    # random_noise): a dim phone or webcam photo is noisier than any 300W crop
    noise_p: float = 0.0
    noise_max_grey: float = Field(16.0, gt=0, le=64)
    # the teacher term: "kl" (the paper's spatial-softmax KL) or "heatmap" (heatmap_loss against the teacher's
    # heatmaps; at T 1 the KL is ~1e-4, far below an Adaptive Wing term of ~0.1, so with "awing" it does nothing)
    teacher_loss: KdLoss = "kl"
    # the peer term likewise (its lambda_peer of 4 was set for the KL's scale: with "heatmap" use about 0.25; at 1 it
    # slowed the students, docs/results-by-round.md, ninth round)
    peer_loss: KdLoss = "kl"
    # the teacher's heatmaps from the flip test (averaged with those of the mirrored image, mirrored back), as
    # `?flip=true` serves them: the served model scores 0.0313 dev that way against 0.0316, so in a self-distillation
    # round the teacher is better than the student it starts; two teacher passes per batch. Off in every preset: it
    # gained nothing on dev, in a third self-distillation round or from scratch (docs/results-by-round.md, fourteenth
    # round)
    teacher_flip: bool = False
    # Each student also has an exponential moving average of its weights (and BN statistics), updated after every step
    # with this decay (0: none), scored and checkpointed beside it as `<student>_ema`: a running soup of one
    # trajectory, where averaging the final students of two runs had taken occluded NME down by 4% (README,
    # nineteenth round). 0.995 averages about the last 200 steps.
    ema_decay: float = 0.0
    # Sharpness-aware minimisation of the distillation students (trainer.sharpness): each step's gradient is taken at
    # weights moved this far (L2, per student) up the gradient; 0 is off, 0.05 the usual value; two student passes
    # per batch.
    sam_rho: float = Field(0.0, ge=0, le=1)
    kd_temperature: float = 1.0  # the paper's softmax over raw heatmap values; see trainer.losses.kd_loss
    kd_rampup_epochs: float = 0.0  # KD terms ramped in over these first epochs (0: the paper, full from the start)
    # run control
    seed: int = 0
    eval_every: int = 1  # epochs
    checkpoint_minutes: float = 5.0
    checkpoint_every_steps: int | None = None  # extra step-based checkpoints (tests)
    threads: int | None = None
    flip_test: bool = False
    # Forward passes under bfloat16 autocast (losses, optimiser state and evaluation stay fp32). "auto" takes bf16
    # where the device runs it natively (oneDNN on CPUs with AVX-512, CUDA GPUs with bf16), else fp32.
    precision: Literal["fp32", "bf16", "auto"] = "fp32"

    @field_validator("prune_max_params", "prune_max_macs", "prune_max_ms")
    @classmethod
    def _positive_budget(cls, v):
        if v is not None and not v > 0:
            raise ValueError(f"a budget must be a positive number or null, got {v}")
        return v

    @field_validator("extra_train")
    @classmethod
    def _sources(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from landmarks.datasets import parse_source

        for text in v:
            parse_source(text)
        return v

    @field_validator("box_shift")
    @classmethod
    def _shift_range(cls, v: float) -> float:
        if not 0 <= v <= 0.25:
            raise ValueError(f"box_shift must be between 0 and 0.25 (a fraction of the crop side), got {v}")
        return v

    @field_validator("lowres_p", "noise_p")
    @classmethod
    def _probability(cls, v: float, info) -> float:
        if not 0 <= v <= 1:
            raise ValueError(f"{info.field_name} is a probability between 0 and 1, got {v}")
        return v

    @field_validator("ema_decay")
    @classmethod
    def _decay_range(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError(f"ema_decay must be at least 0 (off) and below 1, e.g. 0.995; got {v}")
        return v

    @field_validator("lowres_min_scale")
    @classmethod
    def _downscale_range(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"lowres_min_scale must be above 0 and at most 1 (a fraction of the input side), got {v}")
        return v

    @field_validator("kd_temperature")
    @classmethod
    def _positive_temperature(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"kd_temperature must be a positive number, got {v}")
        return v

    @field_validator("input_size")
    @classmethod
    def _divisible_by_32(cls, v: int) -> int:
        if v < 32 or v % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {v}")
        return v

    @field_validator("epochs", "batch_size", "alpha_every", "eval_every", "prune_latency_threads")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1, got {v}")
        return v


# Per-dataset settings of the paper (METHOD.md, "Slimming" and "Triple knowledge distillation").
# The splits come from the dataset's declaration (landmarks.datasets).
_PAPER = {
    "300w": dict(lr_alpha=1.8e-4, lr=1e-4, batch_size=16, prune_threshold=0.0017, lambda_peer=4.0, lambda_teacher=1.0),
    "wflw": dict(lr_alpha=1.8e-4, lr=2e-4, batch_size=32, prune_threshold=0.002, lambda_peer=0.3, lambda_teacher=0.1),
    "cofw": dict(lr_alpha=3.5e-4, lr=1e-4, batch_size=16, prune_threshold=0.0042, lambda_peer=3.0, lambda_teacher=0.1),
}

# CPU preset: what produces the shipped 300W model on a 2-core machine. 128x128 inputs (32x32 heatmaps), the
# 300W train-dev / dev split of the shared data, Adam 1e-3. The teacher trains 60 epochs with x0.1 steps at 42 and
# 54 (students 120, _CPU_STAGES): the published S-HRNet-300W trained so from scratch reached 3.77% dev NME
# (4.93% at epoch 40, so shorter schedules leave it undertrained), HRNetV2-W18 3.47%. Measured at one thread:
# S-HRNet ~33 samples/s, the teacher ~16, so ~30 and ~70 minutes per 1100-face run. Slimming only has to rank the fusion edges (its
# weights are retrained by distillation), so it keeps 24 epochs (~110 s each). With ~50x fewer alpha updates than
# the paper, alpha learns 10x faster under a 4x stronger L1, and pruning is relative (edges under 10% of the
# largest |alpha|): with lr 5e-3 and L1 5e-4 all alphas collapsed together in 8 epochs. The 1 M parameter budget
# (the size of the published S-HRNet-300W) makes it prune even when the alphas have not separated. bf16 autocast
# where the CPU has it: a training step 1.6x (teacher) and 1.5x (S-HRNet) faster at one thread on AVX-512 (Zen 4).
# Adaptive Wing instead of the paper's MSE (the published S-HRNet-300W, 60 epochs, seeds 0 and 1: dev NME 0.0349 and
# 0.0348 against 0.0372 and 0.0382 for MSE, DARK decoding), with the teacher term in the same loss (teacher_loss,
# see TrainConfig).
# Slimming keeps MSE: its L1 strength was tuned against the MSE's scale, and it only ranks the edges.
# The peer term in the same loss at lambda 0.25: the paper's KL peer term at T 1 moves nothing next to Adaptive Wing,
# and in heatmap form lambda 1 slowed the students (docs/results-by-round.md, ninth round) while 0.25 costs nothing on
# clean faces. The teacher term at lambda 4: at 1 it hardly moved the students toward the teacher, and triple KD from
# scratch gained only off the training distribution; at 4 it also gains on clean dev (docs/results-by-round.md, twelfth
# and thirteenth rounds).
_CPU = dict(input_size=128, epochs=60, batch_size=16, lr=1e-3, lr_steps=(42, 54), num_workers=0,
            lr_alpha=2e-3, l1_lambda=2e-4, prune_threshold=0.1, prune_relative=True, checkpoint_minutes=5.0,
            prune_max_params=1_000_000, precision="auto", heatmap_loss="awing", teacher_loss="heatmap",
            peer_loss="heatmap", lambda_peer=0.25, lambda_teacher=4.0)
# a sweep only fine-tunes each pruned network briefly from the supernet's weights (the frontier's shape, not each
# network's best): not yet measured against longer schedules
# Students train twice as long as the teacher: with Adaptive Wing the published S-HRNet-300W reached dev NME 0.0349
# at 60 epochs, 0.0332 at 90 (x0.1 at 63, 81) and 0.0324 at 120 (x0.1 at 84, 108), the served model; the teacher
# stays at 60 (50 s per epoch at one thread, against 23 s for the student).
# Self-distillation rounds (trainer.pipeline): triple KD that starts from a trained student and has it as the teacher,
# at Adam 1e-4; the served model is the KD-off student after two such rounds (docs/results-by-round.md, eleventh round),
# which had the teacher term at lambda 1. A third round at Adam 1e-4, at lambda 1 or 4, left dev level
# (docs/results-by-round.md, fourteenth round); a third round that restarts at 1e-3 for 8 of 24 epochs (x0.1 at 8 and
# 18, lambda 4) leaves dev level too but takes occluded NME down by 7% in each of four seeds (p1-ytf68 -0.3%, not
# significant; fifteenth round). The same restart once more on top of it took occluded dev NME down by another 11% in
# one of two seeds, dev and p1-ytf68 level (sixteenth round), and a third time by another 4.9%, with dev at its lowest
# yet (seventeenth round): the served model.
_WARM_RESTART = dict(epochs=24, lr=1e-3, lr_steps=(8, 18), lambda_teacher=4.0)
_SELF_KD_STAGES = {"self-kd-1": dict(epochs=16, lr=1e-4, lr_steps=(12,), lambda_teacher=1.0),
                   "self-kd-2": dict(epochs=12, lr=1e-4, lr_steps=(9,), lambda_teacher=1.0),
                   "self-kd-3": _WARM_RESTART, "self-kd-4": _WARM_RESTART, "self-kd-5": _WARM_RESTART}
_CPU_STAGES = {"slim": dict(epochs=24, lr_steps=(16, 21), heatmap_loss="mse"), "sweep": dict(epochs=6, lr_steps=(4,)),
               "distill": dict(epochs=120, lr_steps=(84, 108)), **_SELF_KD_STAGES}
_STAGES = {"cpu": _CPU_STAGES, "paper": _SELF_KD_STAGES}  # tiny: one schedule for every stage
_CPU_SPLITS = {"300w": dict(train_split="train-dev", val_split="dev")}

_TINY = dict(input_size=64, epochs=2, batch_size=8, lr=1e-3, lr_alpha=5e-3, lr_steps=(1,), max_train_samples=32,
             max_val_samples=16, prune_threshold=0.5, num_workers=0, checkpoint_minutes=60.0)
_TINY_SPLITS = {"300w": dict(train_split="train-dev", val_split="dev")}


def preset_values(preset: str, dataset: str, kind: str | None = None) -> dict[str, Any]:
    """The preset's values for a dataset; `kind` (teacher, slim, distill) picks a stage's own schedule."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    from landmarks.datasets import DATASETS

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    # a dataset the paper does not cover trains with the 300W settings (the CSV data is 68-point 300W-style)
    values: dict[str, Any] = {**_PAPER.get(dataset, _PAPER["300w"]), "train_split": info.train_split,
                              "val_split": info.test_split}
    if preset == "cpu":
        values.update(_CPU, **_CPU_SPLITS.get(dataset, {}))
    elif preset == "tiny":
        values.update(_TINY, **_TINY_SPLITS.get(dataset, {}))
    values.update(stage_values(preset, kind))
    return values


def stage_values(preset: str, stage: str | None) -> dict[str, Any]:
    """A preset's own schedule for one stage (a job kind, or a pipeline stage such as self-kd-1), on top of the
    preset's common values."""
    return dict(_STAGES.get(preset, {}).get(stage or "", {}))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`key=value` strings -> dict; values are read as JSON when they parse, else kept as strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def make_config(preset: str, dataset: str, overrides: dict[str, Any] | None = None, kind: str | None = None) -> TrainConfig:
    from landmarks.datasets import DatasetError, check_split

    values = preset_values(preset, dataset, kind)
    unknown = sorted(set(overrides or {}) - set(TrainConfig.model_fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(TrainConfig.model_fields))}")
    values.update(overrides or {})
    cfg = TrainConfig(**values)
    for key in ("train_split", "val_split"):
        try:
            check_split(dataset, getattr(cfg, key))
        except DatasetError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return cfg

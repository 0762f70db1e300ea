"""Triple knowledge distillation: two peer students on independently masked inputs, a frozen teacher."""
from __future__ import annotations

import copy
import itertools
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from landmarks.landmarker import merge_flipped
from trainer.augment import random_downscale, random_erasing, random_noise
from trainer.engine import Loop, TrainState, degradation_generator, evaluate_model, iterate, load_data, mark_best
from trainer.stage import RunContext, StageOutput
from trainer.losses import kd_rampup, student_loss
from trainer.model_files import SDHRNET_ARCH, has_torch_weights, load_model
from trainer.onnx_import import calibrate_batchnorm
from trainer.onnx_teacher import OnnxTeacher
from trainer.model_uri import read_card, resolve_model_dir
from trainer.nets import build_network
from trainer.nets.sdhrnet import SDHRNet
from trainer.nets.spec import SPEC_PRESETS, SUPERNET
from trainer.reporting import finish_stage, log_side_models
from trainer.sharpness import ascended

STUDENTS = ("s1", "s2")
CALIBRATION_BATCHES = 20  # training batches that set the BN statistics of students rebuilt from ONNX


def load_students(slim_ref: str, num_landmarks: int, count: int,
                  calibration: Callable[[], list[torch.Tensor]] | None = None) -> tuple[list[SDHRNet], dict]:
    """`count` students: the slimmed network of a slim run (each a copy of the weights carried from the supernet; their
    masks set them apart), a trained SD-HRNet model folder to train on (the served default model: ONNX only, its BN
    statistics then taken from `calibration()`'s training batches), or a published architecture by name
    (`s-hrnet-300w`, ...), each initialised on its own.
    Peers must differ from the start: two copies of one network on the same unmasked batches stay identical, their
    ensemble is each of them, and the peer term is exactly 0 (seen in a run without masks)."""
    if slim_ref in SPEC_PRESETS and slim_ref != SUPERNET:
        return [build_network(slim_ref, num_landmarks) for _ in range(count)], {"arch": slim_ref}
    folder = resolve_model_dir(slim_ref)
    model, card = load_model(folder)
    if not has_torch_weights(folder) and calibration is not None:
        calibrate_batchnorm(model, calibration())
    if not isinstance(model, SDHRNet):
        raise ValueError(f"{slim_ref} is not a slimmed SD-HRNet (its card says arch={card.get('arch')}); "
                         f"pass a slim run or one of {', '.join(p for p in SPEC_PRESETS if p != SUPERNET)}")
    if model.num_landmarks != num_landmarks:
        raise ValueError(f"{slim_ref} predicts {model.num_landmarks} landmarks, the dataset has {num_landmarks}")
    return [model] + [copy.deepcopy(model) for _ in range(count - 1)], card


class FlipTestTeacher(torch.nn.Module):
    """A teacher whose heatmaps are its flip test's (cfg.teacher_flip): one pass over the images and their mirrors."""

    def __init__(self, teacher: torch.nn.Module, flip_pairs):
        super().__init__()
        self.teacher = teacher
        self.flip_pairs = [tuple(p) for p in flip_pairs]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        direct, mirrored = self.teacher(torch.cat([images, images.flip(-1)])).chunk(2)
        return merge_flipped(direct, mirrored, self.flip_pairs)


def load_teacher(ref: str | None, cfg, num_landmarks: int, device: torch.device = torch.device("cpu"),
                 flip_pairs=None):
    """The frozen teacher. An ONNX-only folder teaches through ONNX Runtime on a CPU (1.7x faster there than the
    same network in PyTorch) and as the PyTorch network rebuilt from its ONNX on an accelerator, so that the teacher
    is not a CPU step inside every GPU step. An ensemble (trainer.ensemble) always runs through ONNX Runtime.
    With cfg.teacher_flip it teaches by its flip test, mirroring with the dataset's `flip_pairs`."""
    if not cfg.use_teacher:
        return None
    if not ref:
        raise ValueError("distillation with a teacher needs teacher_run (a teacher run id or model URI); "
                         "or set use_teacher=false for the ablation without one")
    folder = resolve_model_dir(ref)
    card = read_card(folder)
    rebuildable = card.get("arch") == SDHRNET_ARCH and (folder / "model.onnx").exists()  # not an ensemble's graph
    if has_torch_weights(folder) or (device.type != "cpu" and rebuildable):
        teacher, _ = load_model(folder)
    elif (folder / "model.onnx").exists():
        teacher = OnnxTeacher(folder / "model.onnx", card["input_size"])
    else:
        raise ValueError(f"teacher {ref} has neither weights.pt nor model.onnx")
    if card["num_landmarks"] != num_landmarks:
        raise ValueError(f"teacher {ref} predicts {card['num_landmarks']} landmarks, the dataset has {num_landmarks}")
    if card["input_size"] != cfg.input_size:
        raise ValueError(f"teacher {ref} was trained at input {card['input_size']}, distillation runs at {cfg.input_size}; "
                         f"set input_size={card['input_size']}")
    for p in teacher.parameters():
        p.requires_grad_(False)
    if cfg.teacher_flip:
        if flip_pairs is None:
            raise ValueError("teacher_flip needs the dataset's flip_pairs")
        teacher = FlipTestTeacher(teacher, flip_pairs)
    return teacher.eval()


def student_input(images: torch.Tensor, cfg, generator: torch.Generator) -> torch.Tensor:
    """A student's degraded copy of the batch (the teacher sees it as it is): a lower resolution with cfg.lowres_p,
    sensor noise with cfg.noise_p, then an erased rectangle with cfg.erase_p when cfg.masked_inputs."""
    if cfg.lowres_p > 0:
        images = random_downscale(images, p=cfg.lowres_p, min_scale=cfg.lowres_min_scale, generator=generator)
    if cfg.noise_p > 0:
        images = random_noise(images, p=cfg.noise_p, max_grey=cfg.noise_max_grey, generator=generator)
    return random_erasing(images, p=cfg.erase_p, generator=generator) if cfg.masked_inputs else images


def moving_average(student: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the student's weights and BN statistics (cfg.ema_decay)."""
    return AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def degrades_inputs(cfg) -> bool:
    return cfg.masked_inputs or cfg.lowres_p > 0 or cfg.noise_p > 0


def distill_step(students, optimizers, teacher, images, heatmaps, cfg, generators: list[torch.Generator] | None,
                 kd_weight: float = 1.0):
    """One joint update of the students; with `generators` (one per student) each sees its own degraded copy of the
    batch (student_input). The peer term needs two students; without it one student is trained (the ablation rows
    and the KD-off control).
    `kd_weight` scales both KD terms (trainer.losses.kd_rampup); with cfg.sam_rho the update takes the gradient at
    the sharpness-aware point (trainer.sharpness), two student passes per batch."""
    inputs = [student_input(images, cfg, g) for g in generators] if generators else [images] * len(students)
    with torch.no_grad():
        target_t = teacher(images) if teacher is not None else None

    def backward() -> dict[str, torch.Tensor]:
        preds = [s(x) for s, x in zip(students, inputs)]
        ensemble = (sum(preds) / len(preds)).detach() if cfg.use_peer else None
        losses, out = [], {}
        for name, pred in zip(STUDENTS, preds):
            loss, parts = student_loss(pred, heatmaps, ensemble, target_t, kd_weight * cfg.lambda_peer,
                                       kd_weight * cfg.lambda_teacher, cfg.kd_temperature, cfg.heatmap_loss,
                                       cfg.teacher_loss, cfg.peer_loss)
            losses.append(loss)
            out.update({f"{name}_{k}": v for k, v in parts.items()})
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        return out

    out = backward()  # the losses logged are those at the weights themselves
    if cfg.sam_rho:
        with ascended(students, cfg.sam_rho):
            backward()
    for opt in optimizers:
        opt.step()
    # read once, after the whole step is queued, so a GPU never waits on the host in mid-step
    return dict(zip(out, torch.stack([v.float() for v in out.values()]).tolist()))


def distill_stage(ctx: RunContext) -> StageOutput:
    cfg, dev = ctx.cfg, ctx.device
    data = load_data(ctx.dataset, ctx.data_root, cfg)

    def calibration() -> list[torch.Tensor]:
        return [batch["image"] for _, batch in itertools.islice(iterate(data.train, cfg, 0, 0), CALIBRATION_BATCHES)]

    students, _ = load_students(ctx.params["slim_run"], data.info.num_landmarks, 2 if cfg.use_peer else 1,
                                calibration)
    names = STUDENTS[:len(students)]
    teacher = load_teacher(ctx.params.get("teacher_run"), cfg, data.info.num_landmarks, dev, data.info.flip_pairs)
    students = [s.to(dev) for s in students]
    if teacher is not None:
        teacher = teacher.to(dev)
    opts = [torch.optim.Adam(s.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay) for s in students]
    scheds = [torch.optim.lr_scheduler.MultiStepLR(o, list(cfg.lr_steps), cfg.lr_factor) for o in opts]
    by_name = dict(zip(names, students))
    averages = {f"{name}_ema": moving_average(s, cfg.ema_decay) for name, s in by_name.items()} if cfg.ema_decay else {}
    # what is scored each epoch and kept at the end: the students and their averages
    scored = {**by_name, **{name: a.module for name, a in averages.items()}}
    state = TrainState({**by_name, **averages}, dict(zip(names, opts)), dict(zip(names, scheds)))
    loop = Loop(stage="distill", cfg=cfg, data=data, state=state, checkpoint=ctx.checkpoint, tracker=ctx.tracker,
                hooks=ctx.hooks, device=dev)
    loop.resume()

    def step(batch, epoch, i):
        images = batch["image"]
        generators = ([degradation_generator(cfg, epoch, i, k) for k in range(len(students))]
                      if degrades_inputs(cfg) else None)
        losses = distill_step(students, opts, teacher, images, batch["heatmaps"], cfg, generators,
                              kd_rampup(epoch, cfg.kd_rampup_epochs))
        for s, average in zip(students, averages.values()):
            average.update_parameters(s)
        return losses

    def validate():
        out = {}
        for name, s in scored.items():
            r = evaluate_model(s, data, dev)
            out.update({f"val_nme_{name}": r["nme"], f"val_fr_{name}": r["fr"], f"val_auc_{name}": r["auc"]})
            mark_best(state, name, r["nme"], copy.deepcopy(s.state_dict()))
        out["val_nme"] = min(out[f"val_nme_{name}"] for name in scored)
        return out

    loop.run(step, validate)
    reports = {name: evaluate_model(s, data, dev) for name, s in scored.items()}
    log_side_models(ctx, data, {name: (s, reports[name]) for name, s in scored.items()})
    best = copy.deepcopy(students[0])
    if "best_weights" in state.extra:
        best.load_state_dict(state.extra["best_weights"])
    return finish_stage(ctx, best, data, extra_reports={f"final {k}": v for k, v in reports.items()},
                        extra_card={"best_student": state.best.get("which"), "best_epoch": state.best.get("epoch"),
                                    "students": {k: {m: float(v[m]) for m in ("nme", "fr", "auc")} for k, v in reports.items()},
                                    "teacher_run": ctx.params.get("teacher_run"), "slim_run": ctx.params["slim_run"],
                                    "ablation": {"teacher": teacher is not None, "peer": cfg.use_peer, "masked": cfg.masked_inputs}})

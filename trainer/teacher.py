"""The HRNetV2-W18 teacher, trained from scratch on the heatmap MSE (no ImageNet weights exist here)."""
from __future__ import annotations

import copy

import torch

from trainer.engine import Loop, TrainState, evaluate_model, load_data, mark_best
from trainer.stage import RunContext, StageOutput
from trainer.losses import heatmap_loss
from trainer.model_files import TEACHER_ARCH
from trainer.nets import build_network
from trainer.reporting import finish_stage


def supervised_step(model, images, heatmaps, opt, loss_kind: str = "mse") -> dict[str, float]:
    loss = heatmap_loss(model(images), heatmaps, loss_kind)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {loss_kind: loss.item()}


def teacher_stage(ctx: RunContext) -> StageOutput:
    cfg, dev = ctx.cfg, ctx.device
    data = load_data(ctx.dataset, ctx.data_root, cfg)
    model = build_network(TEACHER_ARCH, data.info.num_landmarks).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_steps), cfg.lr_factor)
    state = TrainState({"teacher": model}, {"weights": opt}, {"weights": sched})
    loop = Loop(stage="teacher", cfg=cfg, data=data, state=state, checkpoint=ctx.checkpoint, tracker=ctx.tracker,
                hooks=ctx.hooks, device=dev)
    loop.resume()

    def step(batch, epoch, i):
        images = batch["image"]
        return supervised_step(model, images, batch["heatmaps"], opt, cfg.heatmap_loss)

    def validate():
        r = evaluate_model(model, data, dev)
        mark_best(state, "teacher", r["nme"], copy.deepcopy(model.state_dict()))
        return {"val_nme": r["nme"], "val_fr": r["fr"], "val_auc": r["auc"]}

    loop.run(step, validate)
    if "best_weights" in state.extra:
        model.load_state_dict(state.extra["best_weights"])
    return finish_stage(ctx, model, data, extra_card={"best_epoch": state.best.get("epoch")})

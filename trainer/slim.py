"""Slimming: train the supernet with alternating weight / alpha updates and L1 on alpha, then prune."""
from __future__ import annotations

import csv
import dataclasses
import io

import torch

from trainer.budget import Budget
from trainer.complexity import complexity
from trainer.engine import Loop, TrainState, evaluate_model, load_data
from trainer.stage import RunContext, StageOutput
from trainer.losses import heatmap_loss
from trainer.nets.prune import build, prune, threshold_for_budget
from trainer.nets.sdhrnet import SDHRNet
from trainer.nets.spec import supernet_spec
from trainer.plots import alpha_heatmap
from trainer.reporting import finish_stage, log_side_models, summary


def make_optimizers(model: SDHRNet, cfg) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    opt_w = torch.optim.Adam(model.weight_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_a = torch.optim.Adam(model.alpha_parameters(), lr=cfg.lr_alpha)
    return opt_w, opt_a


def slimming_step(model: SDHRNet, images: torch.Tensor, heatmaps: torch.Tensor, opt_w, opt_a, update_alpha: bool,
                  l1_lambda: float, loss_kind: str = "mse") -> dict[str, float]:
    """One alternating update: the alphas (heatmap loss + lambda * L1) or the weights (heatmap loss), never both at
    once."""
    pred = model(images)
    loss = heatmap_loss(pred, heatmaps, loss_kind)
    opt_w.zero_grad(set_to_none=True)
    opt_a.zero_grad(set_to_none=True)
    if update_alpha:
        l1 = model.alpha_l1()
        (loss + l1_lambda * l1).backward()
        opt_a.step()
        return {loss_kind: loss.item(), "alpha_l1": l1.item()}
    loss.backward()
    opt_w.step()
    return {loss_kind: loss.item()}


def alpha_rows(model: SDHRNet) -> list[dict]:
    return [{"stage": st, "branch": br, "input": src, "alpha": float(p.detach())} for st, br, src, p in model.named_alphas()]


def effective_threshold(model: SDHRNet, cfg, measure_latency: bool = True) -> float:
    """The pruning threshold: absolute or relative to the largest |alpha|, raised until the budget holds.
    `measure_latency=False` leaves a latency limit out (the per-epoch preview: each latency probe exports and
    times a network)."""
    threshold = cfg.prune_threshold
    if cfg.prune_relative:
        threshold *= max(abs(float(p.detach())) for p in model.alpha_parameters())
    budget = Budget.from_config(cfg)
    if not measure_latency:
        budget = dataclasses.replace(budget, max_ms=None)
    if budget.active:
        threshold = threshold_for_budget(model, budget.fits, floor=threshold)
    return threshold


def slim_stage(ctx: RunContext) -> StageOutput:
    cfg, dev = ctx.cfg, ctx.device
    data = load_data(ctx.dataset, ctx.data_root, cfg)
    model = SDHRNet(supernet_spec(data.info.num_landmarks)).to(dev)
    opt_w, opt_a = make_optimizers(model, cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt_w, list(cfg.lr_steps), cfg.lr_factor)
    state = TrainState({"supernet": model}, {"weights": opt_w, "alpha": opt_a}, {"weights": sched})
    loop = Loop(stage="slim", cfg=cfg, data=data, state=state, checkpoint=ctx.checkpoint, tracker=ctx.tracker,
                hooks=ctx.hooks, device=dev)
    loop.resume()

    def step(batch, epoch, i):
        images = batch["image"]
        return slimming_step(model, images, batch["heatmaps"], opt_w, opt_a,
                             update_alpha=i % cfg.alpha_every == cfg.alpha_every - 1, l1_lambda=cfg.l1_lambda,
                             loss_kind=cfg.heatmap_loss)

    def validate():
        r = evaluate_model(model, data, dev)
        threshold = effective_threshold(model, cfg, measure_latency=False)
        return {"val_nme": r["nme"], "val_fr": r["fr"], "val_auc": r["auc"], "prune_threshold": threshold,
                "alpha_below_threshold": sum(abs(a["alpha"]) < threshold for a in alpha_rows(model))}

    loop.run(step, validate)

    rows = alpha_rows(model)
    supernet_report = evaluate_model(model, data, dev)
    threshold = effective_threshold(model, cfg)
    spec = prune(model, threshold)
    slimmed = build(spec, source=model).to(dev)
    before = complexity(model.cpu(), cfg.input_size)
    after = complexity(slimmed.cpu(), cfg.input_size)
    budget = Budget.from_config(cfg)
    achieved = {k: v for k, v in budget.cost(slimmed).items() if k == "ms"}  # re-measured on the final network
    model.to(dev), slimmed.to(dev)
    kept = sum(len(inputs) for branches in spec.stages.values() for inputs in branches.values())
    ctx.tracker.log_metrics({"supernet_params": before["params"], "supernet_macs": before["macs"],
                             "slim_params": after["params"], "slim_macs": after["macs"], "edges_kept": kept,
                             "edges_total": len(rows), "supernet_nme": supernet_report["nme"],
                             **{f"slim_{k}": v for k, v in achieved.items()}}, step=cfg.epochs)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["stage", "branch", "input", "alpha", "kept"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "kept": r["input"] in spec.stages.get(r["stage"], {}).get(r["branch"], {})})
    alphas_dir = ctx.workdir / "alphas"
    alphas_dir.mkdir()
    (alphas_dir / "alphas.csv").write_text(buf.getvalue())
    alpha_heatmap(rows, threshold, alphas_dir / "alphas.png")
    model.current_spec().save(alphas_dir / "supernet_spec.json")
    ctx.tracker.log_artifacts(alphas_dir, "alphas")
    log_side_models(ctx, data, {"supernet": (model, supernet_report)})
    return finish_stage(ctx, slimmed, data, extra_reports={"supernet": supernet_report},
                        extra_card={"supernet": {**before, **summary(supernet_report, cfg.val_split)}, "edges_kept": kept,
                                    "prune_threshold": threshold,
                                    "budget": {"asked": budget.describe(), **after, **achieved}})

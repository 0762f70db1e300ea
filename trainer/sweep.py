"""Sweep: one trained supernet pruned at several budgets, each network fine-tuned briefly and scored, so that
the accuracy-cost frontier (the paper's Figure 6: NME against cost) is measured on our data and our CPU."""
from __future__ import annotations

import csv
import json
import math
from typing import Any

import torch

from sdhrnet.budgets import budget_label, parse_budgets
from sdhrnet.job_kinds import supernet_run
from trainer.budget import Budget, measure_ms, onnx_ms
from trainer.complexity import complexity
from trainer.engine import Loop, TrainState, evaluate_model, load_data
from trainer.stage import RunContext, StageOutput
from trainer.model_files import load_model
from trainer.model_uri import resolve_model_dir
from trainer.nets.prune import build, prune, threshold_for_budget
from trainer.nets.sdhrnet import SDHRNet
from trainer.plots import frontier_plot
from trainer.reporting import finish_stage, log_side_models, summary
from trainer.teacher import supervised_step

def make_budget(kind: str, value: float, cfg) -> Budget:
    limit = value if kind == "ms" else int(value)
    return Budget(**{f"max_{kind}": limit}, input_size=cfg.input_size, threads=cfg.prune_latency_threads)


def supernet_ref(slim_run: str) -> str:
    """The supernet a slim run keeps next to its result (trainer.slim logs it as models/supernet)."""
    return f"runs:/{supernet_run(slim_run)}/models/supernet"


class _Prefixed:
    """The run's tracker with metric keys prefixed by the budget, so the fine-tunes do not overwrite each
    other's curves in the one run."""

    def __init__(self, tracker, prefix: str):
        self._tracker, self._prefix = tracker, prefix
        self.run_id = tracker.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._tracker.log_metrics({f"{self._prefix}/{k}": v for k, v in metrics.items()}, step)


def fine_tune(ctx: RunContext, data, net: SDHRNet, label: str) -> SDHRNet:
    """The config's supervised schedule; each budget has its own checkpoint, so an interrupted sweep resumes
    inside the budget it stopped in and a finished budget's weights come back from its checkpoint."""
    cfg = ctx.cfg
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_steps), cfg.lr_factor)
    state = TrainState({label: net}, {"weights": opt}, {"weights": sched})
    loop = Loop(stage=f"sweep {label}", cfg=cfg, data=data, state=state, checkpoint=ctx.checkpoint.with_name(f"{label}.pt"),
                tracker=_Prefixed(ctx.tracker, label), hooks=ctx.hooks, device=ctx.device)
    loop.resume()

    def step(batch, epoch, i):
        return supervised_step(net, batch["image"], batch["heatmaps"], opt, cfg.heatmap_loss)

    def validate():
        r = evaluate_model(net, data, ctx.device)
        return {"val_nme": r["nme"], "val_fr": r["fr"], "val_auc": r["auc"]}

    loop.run(step, validate)
    return net


def add_int8_points(ctx: RunContext, rows: list[dict[str, Any]]) -> None:
    """An INT8 copy of each network written by log_side_models, scored through the served ONNX path next to its
    fp32 original (both on the whole validation split, so the change is the quantization's alone) and timed the
    same way; a copy that loses at most `int8_max_loss` NME is logged as `models/<label>-int8`."""
    from trainer.evaluate import evaluate_split
    from trainer.quantize import calibration_crops, quantize_model_dir

    cfg = ctx.cfg
    crops = calibration_crops(ctx.dataset, ctx.data_root, cfg.train_split, cfg.input_size)
    for row in rows:
        fp32 = ctx.workdir / "models" / row["label"]
        int8 = quantize_model_dir(fp32, ctx.workdir / "models" / f"{row['label']}-int8", crops)
        nme = {name: evaluate_split(ctx.dataset, ctx.data_root, cfg.val_split, model=str(folder))["nme"]
               for name, folder in (("fp32", fp32), ("int8", int8))}
        row.update(onnx_nme=nme["fp32"], int8_nme=nme["int8"],
                   int8_ms=onnx_ms(int8 / "model.onnx", cfg.input_size, cfg.prune_latency_threads),
                   int8_kept=nme["int8"] - nme["fp32"] <= cfg.int8_max_loss)
        ctx.tracker.log_metrics({f"{row['label']}/{k}": float(row[k]) for k in ("onnx_nme", "int8_nme", "int8_ms")},
                                step=cfg.epochs)
        if row["int8_kept"]:
            ctx.tracker.log_artifacts(int8, f"models/{row['label']}-int8")


def sweep_stage(ctx: RunContext) -> StageOutput:
    cfg, dev = ctx.cfg, ctx.device
    budgets = parse_budgets(ctx.params["budgets"])
    data = load_data(ctx.dataset, ctx.data_root, cfg)
    supernet, _ = load_model(resolve_model_dir(supernet_ref(ctx.params["slim_run"])))
    if not isinstance(supernet, SDHRNet) or supernet.num_landmarks != data.info.num_landmarks:
        raise ValueError(f"{ctx.params['slim_run']} does not hold an SD-HRNet supernet for {data.info.num_landmarks} landmarks")
    supernet.eval()
    ctx.tracker.log_params({"budgets": ",".join(f"{k}={v:g}" for k, v in budgets)})
    rows: list[dict[str, Any]] = []
    nets: dict[str, tuple[SDHRNet, dict[str, Any]]] = {}
    for kind, value in budgets:
        label = budget_label(kind, value)
        budget = make_budget(kind, value, cfg)
        threshold = threshold_for_budget(supernet, budget.fits, floor=0)
        spec = prune(supernet, threshold)
        net = fine_tune(ctx, data, build(spec, source=supernet).to(dev), label)
        report = evaluate_model(net, data, dev)
        net.cpu()
        # every cost is measured for every budget (not only the limited one), for the three panels of the plot
        counts = complexity(net, cfg.input_size)
        cost = {"params": counts["params"], "macs": counts["macs"],
                "ms": measure_ms(net, cfg.input_size, cfg.prune_latency_threads)}
        net.to(dev)
        met = cost[kind] <= value  # threshold_for_budget returns the smallest network when none meets the budget
        rows.append({"label": label, "budget": budget.describe(), "kind": kind, "limit": value, "met": met,
                     "threshold": threshold, "edges_kept": len(spec.edge_set()), **cost,
                     **{k: v for k, v in summary(report, cfg.val_split).items() if k in ("nme", "fr", "auc")}})
        nets[label] = (net, report)
        ctx.tracker.log_metrics({f"{label}/{k}": float(rows[-1][k]) for k in ("nme", "params", "macs", "ms", "threshold")},
                                step=cfg.epochs)
    best = min(rows, key=lambda r: math.inf if math.isnan(r["nme"]) else r["nme"])  # a diverged fine-tune never wins
    # each network's card names its budget and the latency measured above, for the registry's cost tags
    cards = {r["label"]: {"budget": r["label"], "ms": round(r["ms"], 3), "sweep_run": ctx.tracker.run_id} for r in rows}
    log_side_models(ctx, data, nets, cards)
    if cfg.sweep_int8:
        add_int8_points(ctx, rows)
    out = ctx.workdir / "sweep"
    out.mkdir()
    (out / "frontier.json").write_text(json.dumps(rows, indent=1))
    with open(out / "frontier.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    frontier_plot(rows, out / "frontier.png", f"sweep on {ctx.dataset} {cfg.val_split} ({cfg.epochs} fine-tune epochs)")
    ctx.tracker.log_artifacts(out, "sweep")
    return finish_stage(ctx, nets[best["label"]][0], data,
                        extra_reports={r["label"]: nets[r["label"]][1] for r in rows if r is not best},
                        extra_card={"slim_run": ctx.params["slim_run"], "best_budget": best["label"], "sweep": rows,
                                    **cards[best["label"]]})

"""End of a stage: final validation, pictures and the model folder, all logged to the run."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.engine import Data, evaluate_model
from trainer.stage import RunContext, StageOutput
from landmarks.datasets import load_image
from trainer.model_files import write_model_files
from trainer.plots import ced_plot, predictions_grid
from trainer.results import write_face_scores

PICTURE_SAMPLES = 8


def summary(report: dict[str, Any], split: str) -> dict[str, Any]:
    return {"nme": float(report["nme"]), "fr": float(report["fr"]), "auc": float(report["auc"]), "split": split, "n": int(report["n"])}


def log_pictures(ctx: RunContext, data: Data, reports: dict[str, dict[str, Any]], chosen: str) -> None:
    plots = ctx.workdir / "plots"
    plots.mkdir(exist_ok=True)
    curves = {name: (np.asarray(r["ced"]["x"]), np.asarray(r["ced"]["y"])) for name, r in reports.items()}
    ctx.tracker.log_artifact(ced_plot(curves, plots / "ced.png", f"{ctx.kind} on {ctx.dataset} {ctx.cfg.val_split}"), "plots")
    samples = data.val_samples[:PICTURE_SAMPLES]
    per_image = reports[chosen]["predictions"]
    images = [load_image(s) for s in samples]
    preds = [np.asarray(per_image[s.sample_id]) for s in samples]
    truths = [s.landmarks for s in samples]
    ctx.tracker.log_artifact(predictions_grid(images, preds, truths, plots / "predictions.png"), "plots")


def log_side_models(ctx: RunContext, data: Data, models: dict[str, tuple[nn.Module, dict[str, Any]]],
                    cards: dict[str, dict[str, Any]] | None = None) -> None:
    """Networks a stage trains besides its result (the supernet, each student), as model folders under
    `models/<name>` of the run, so each can be evaluated later with `--model runs:/<run id>/models/<name>`;
    `cards[name]` adds to that folder's model card."""
    for name, (net, report) in models.items():
        out = ctx.workdir / "models" / name
        write_model_files(out, net, dataset=ctx.dataset, info=data.info, input_size=ctx.cfg.input_size,
                          config=ctx.cfg.model_dump(mode="json"), metrics=summary(report, ctx.cfg.val_split),
                          kind=f"{ctx.kind}/{name}", run_id=ctx.tracker.run_id, extra_card=(cards or {}).get(name))
        write_face_scores(out, data.info, data.val_samples, ctx.cfg.val_split, threads=torch.get_num_threads())
        ctx.tracker.log_artifacts(out, f"models/{name}")


def finish_stage(ctx: RunContext, model: nn.Module, data: Data, extra_reports: dict[str, dict[str, Any]] | None = None,
                 extra_card: dict[str, Any] | None = None) -> StageOutput:
    report = evaluate_model(model, data, ctx.device)
    metrics = summary(report, ctx.cfg.val_split)
    ctx.tracker.log_metrics({"final_nme": metrics["nme"], "final_fr": metrics["fr"], "final_auc": metrics["auc"]}, step=ctx.cfg.epochs)
    log_pictures(ctx, data, {"model": report, **(extra_reports or {})}, "model")
    out = ctx.workdir / "model_files"
    card = write_model_files(out, model, dataset=ctx.dataset, info=data.info, input_size=ctx.cfg.input_size,
                             config=ctx.cfg.model_dump(mode="json"), metrics=metrics, kind=ctx.kind,
                             run_id=ctx.tracker.run_id, extra_card={"job_id": ctx.hooks.job_id, **(extra_card or {})})
    write_face_scores(out, data.info, data.val_samples, ctx.cfg.val_split, threads=torch.get_num_threads())
    ctx.tracker.log_metrics({"params": card["params"], "macs": card["macs"]}, step=ctx.cfg.epochs)
    return StageOutput(out, card)

"""Why the KD terms weigh more than their values say: the gradient each loss term sends into the student's heatmaps,
measured on real training crops for a pair of peer students (a distillation checkpoint).

The terms are the ones the run's config trains with (`cpu` preset plus --set overrides): the supervised heatmap loss
(`heatmap_loss`), lambda_peer times the peer term against the two students' mean (`peer_loss`) and, with --teacher,
lambda_teacher times the teacher term (`teacher_loss`). Per term this prints its value and the norm of its gradient
with respect to the student's output heatmaps and to its weights, lambda included, and the ratio of each to the
supervised term's. Two cases where value and pull part ways:
- MSE is a mean over every heatmap position (32x32 per landmark at 128 px), so its gradient per position carries a
  1/1024 factor, while the KL of spatial softmaxes is a mean over landmarks only;
- Adaptive Wing behaves like |error|^(2.1 - y) and weighs the foreground 11x: near a peak (y ~ 1) its gradient
  hardly shrinks as the error does, so a peer term that is small in value keeps pulling toward the peers' mean.
The crops are unmasked and the KD ramp-up is not applied (measure a checkpoint past it). The earlier MSE / KL
figures in the README: --set heatmap_loss=mse --set peer_loss=kl --set kd_temperature=0.1 (or 1).

    .venv/bin/python bench/kd_gradients.py --checkpoint $SDHRNET_HOME/checkpoints/<run id>/last.pt \\
        --data-root ../shared/data/300w --set peer_loss=heatmap --set lambda_peer=1 [--teacher sdhrnet/default_model]
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from sdhrnet.train_config import make_config, parse_overrides
from trainer.distill import STUDENTS, load_teacher
from trainer.engine import iterate, load_data
from trainer.losses import heatmap_loss, kd_term
from trainer.nets import build_network


def gradient_norms(student, images, terms) -> dict[str, tuple[float, float, float]]:
    """term name -> (value, |d term / d heatmaps|, |d term / d weights|); `terms` maps a name to a loss of the
    student's heatmaps."""
    out = {}
    for name, loss_of in terms.items():
        student.zero_grad(set_to_none=True)
        pred = student(images)
        pred.retain_grad()
        loss = loss_of(pred)
        loss.backward()
        weights = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in student.parameters() if p.grad is not None))
        out[name] = (loss.item(), pred.grad.norm().item(), weights.item())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a distillation checkpoint with students s1, s2")
    parser.add_argument("--arch", default="s-hrnet-300w")
    parser.add_argument("--dataset", default="300w")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--teacher", default=None, help="teacher run id or model folder: also measure its term")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable), as the run had them: peer_loss, lambda_peer, ...")
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()

    cfg = make_config("cpu", args.dataset, {**parse_overrides(args.overrides), "use_teacher": bool(args.teacher)})
    data = load_data(args.dataset, args.data_root, cfg)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    students = []
    for name in [n for n in STUDENTS if n in state["modules"]]:  # one student where the run had no peer term
        net = build_network(args.arch, data.info.num_landmarks)
        net.load_state_dict(state["modules"][name])
        students.append(net.train())
    teacher = load_teacher(args.teacher, cfg, data.info.num_landmarks)
    batches = [b for _, b in itertools.islice(iterate(data.train, cfg, 0, 0), args.batches)]
    print(f"checkpoint {args.checkpoint.name}: epoch {state['epoch']}; supervised {cfg.heatmap_loss}, peer "
          f"{cfg.peer_loss} x {cfg.lambda_peer if len(students) > 1 else 0}, teacher {cfg.teacher_loss} x "
          f"{cfg.lambda_teacher if teacher is not None else 0}, "
          f"T {cfg.kd_temperature}; {len(batches)} batches of {cfg.batch_size} training crops")
    sums: dict[str, list[float]] = {}
    for batch in batches:
        images, gt = batch["image"], batch["heatmaps"]
        with torch.no_grad():
            ensemble = sum(s(images) for s in students) / len(students)
            target_t = teacher(images) if teacher is not None else None
        terms = {"supervised": lambda p: heatmap_loss(p, gt, cfg.heatmap_loss)}
        if len(students) > 1:
            terms["peer"] = lambda p: cfg.lambda_peer * kd_term(p, ensemble, cfg.peer_loss, cfg.heatmap_loss,
                                                                cfg.kd_temperature)
        if target_t is not None:
            terms["teacher"] = lambda p: cfg.lambda_teacher * kd_term(p, target_t, cfg.teacher_loss,
                                                                      cfg.heatmap_loss, cfg.kd_temperature)
        for term, values in gradient_norms(students[0], images, terms).items():
            sums[term] = [a + b / len(batches) for a, b in zip(sums.get(term, [0.0] * 3), values)]
    base = sums["supervised"]
    print(f"{'term':10} {'value':>10} {'|dL/dheatmap|':>14} {'|dL/dweights|':>14} {'value ratio':>12} "
          f"{'heatmap ratio':>14} {'weights ratio':>14}")
    for term, (value, g_map, g_w) in sums.items():
        print(f"{term:10} {value:>10.3g} {g_map:>14.3g} {g_w:>14.3g} {value / base[0]:>12.3g} "
              f"{g_map / base[1]:>14.3g} {g_w / base[2]:>14.3g}")


if __name__ == "__main__":
    main()

"""Why the KD terms weigh more than their values say: the gradient each loss term sends into the student's heatmaps,
measured on real training crops for a pair of peer students (a distillation checkpoint), at several temperatures.

The heatmap MSE is a mean over every heatmap position (32x32 per landmark at 128 px), so its gradient per
position carries a 1/1024 factor; the KL of spatial softmaxes is a mean over landmarks only and, once the heatmaps
have peaks, puts its gradient on the few positions near them. A term that is 1% of the loss value can then pull
harder than the MSE. This prints, per term, its value and the norm of its gradient with respect to the student's
output heatmaps and to the student's weights (lambda included), and the ratio of each to the MSE's.

    .venv/bin/python bench/kd_gradients.py --checkpoint $SDHRNET_HOME/checkpoints/<run id>/last.pt \\
        --arch s-hrnet-300w --data-root ../shared/data/300w --temperatures 1 0.1
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from sdhrnet.train_config import make_config
from trainer.distill import STUDENTS
from trainer.engine import iterate, load_data
from trainer.losses import heatmap_mse, kd_loss
from trainer.nets import build_network


def gradient_norms(student, images, heatmaps, ensemble, lam, temperature):
    """Value and gradient norms (w.r.t. output heatmaps and weights) of the MSE and of lam * KD(ensemble || student)."""
    out = {}
    for term in ("mse", "kd_peer"):
        student.zero_grad(set_to_none=True)
        pred = student(images)
        pred.retain_grad()
        loss = heatmap_mse(pred, heatmaps) if term == "mse" else lam * kd_loss(ensemble, pred, temperature)
        loss.backward()
        weights = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in student.parameters() if p.grad is not None))
        out[term] = (loss.item(), pred.grad.norm().item(), weights.item())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a distillation checkpoint with students s1, s2")
    parser.add_argument("--arch", default="s-hrnet-300w")
    parser.add_argument("--dataset", default="300w")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()

    cfg = make_config("cpu", args.dataset, {})
    data = load_data(args.dataset, args.data_root, cfg)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    students = []
    for name in STUDENTS:
        net = build_network(args.arch, data.info.num_landmarks)
        net.load_state_dict(state["modules"][name])
        students.append(net.train())
    print(f"checkpoint {args.checkpoint.name}: epoch {state['epoch']}, lambda_peer {cfg.lambda_peer}, "
          f"{args.batches} batches of {cfg.batch_size} training crops")
    print(f"{'T':>5} {'term':8} {'value':>10} {'|dL/dheatmap|':>14} {'|dL/dweights|':>14} {'heatmap ratio':>14} {'weights ratio':>14}")
    batches = [b for _, b in itertools.islice(iterate(data.train, cfg, 0, 0), args.batches)]
    for t in args.temperatures:
        sums: dict[str, list[float]] = {}
        for batch in batches:
            with torch.no_grad():
                ensemble = sum(s(batch["image"]) for s in students) / len(students)
            for term, values in gradient_norms(students[0], batch["image"], batch["heatmaps"], ensemble,
                                               cfg.lambda_peer, t).items():
                sums.setdefault(term, [0.0, 0.0, 0.0])
                sums[term] = [a + b / len(batches) for a, b in zip(sums[term], values)]
        mse = sums["mse"]
        for term, (value, g_map, g_w) in sums.items():
            print(f"{t:>5g} {term:8} {value:>10.3g} {g_map:>14.3g} {g_w:>14.3g} {g_map / mse[1]:>14.3g} {g_w / mse[2]:>14.3g}")


if __name__ == "__main__":
    main()

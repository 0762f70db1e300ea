"""Does a model's dev NME depend on the state of its batch-norm running statistics? Scores a trained model as
saved, then again after its BN statistics are recomputed as a plain average over N batches of training crops
(augmented as in training, or clean), the check behind the Adaptive Wing teacher's epoch-to-epoch swings (README).

    SDHRNET_HOME=... .venv/bin/python bench/bn_recalibration.py --model-dir <cache>/<run id>/model_files \
        --data-root ../shared/data/300w [--batches 40]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdhrnet.train_config import make_config
from trainer.engine import evaluate_model, iterate, load_data
from trainer.model_files import load_model
from trainer.torch_data import LandmarkDataset


@torch.no_grad()
def recalibrate(model: torch.nn.Module, batches) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over every batch seen
    model.train()
    for images in batches:
        model(images)
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True, help="a model folder with weights.pt")
    ap.add_argument("--data-root", type=Path, required=True, help="the 300W folder")
    ap.add_argument("--batches", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = make_config("cpu", "300w")
    data = load_data("300w", args.data_root, cfg)
    cpu = torch.device("cpu")
    model, _ = load_model(args.model_dir)
    print(f"as saved: dev NME {evaluate_model(model, data, cpu)['nme']:.4f}", flush=True)

    def augmented():
        for i, batch in iterate(data.train, cfg, 0, 0):
            if i >= args.batches:
                return
            yield batch["image"]

    clean_ds = LandmarkDataset(data.train.samples, data.info, cfg.input_size, train=False, seed=cfg.seed)

    def clean():
        n = min(args.batches, len(clean_ds) // cfg.batch_size)
        for i in range(n):
            yield torch.stack([torch.as_tensor(clean_ds[j]["image"])
                               for j in range(i * cfg.batch_size, (i + 1) * cfg.batch_size)])

    for name, batches in (("augmented", augmented), ("clean", clean)):
        model, _ = load_model(args.model_dir)
        recalibrate(model, batches())
        print(f"BN statistics from {args.batches} {name} training batches: dev NME "
              f"{evaluate_model(model, data, cpu)['nme']:.4f}", flush=True)


if __name__ == "__main__":
    main()

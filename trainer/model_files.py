"""The model folder every run produces and every consumer (registry, service, evaluate) reads.

    model.onnx        ONNX export, input "image" (N,3,S,S), output "heatmaps" (N,M,S/4,S/4)
    weights.pt        PyTorch state dict
    spec.json         the architecture: an SD-HRNet ArchSpec, or {"arch": "hrnetv2-w18", ...}
    config.json       the training configuration
    model_card.json   dataset, landmarks, input size, metrics, complexity and measured ms per face, provenance
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.budget import onnx_ms
from trainer.complexity import complexity
from trainer.export import export_onnx
from trainer.model_uri import read_card
from trainer.nets import build_network
from trainer.nets.hrnet import HRNetV2
from trainer.nets.sdhrnet import SDHRNet
from trainer.nets.spec import ArchSpec

TEACHER_ARCH = "hrnetv2-w18"
SDHRNET_ARCH = "sdhrnet"  # the card's "arch" of every SD-HRNet (student, slimmed or supervised)


def arch_of(model: nn.Module) -> dict[str, Any]:
    if isinstance(model, SDHRNet):
        return model.current_spec().to_dict()
    if isinstance(model, HRNetV2):
        return {"arch": TEACHER_ARCH, "num_landmarks": model.num_landmarks}
    raise TypeError(f"unsupported network type {type(model).__name__}")


def build_from_arch(arch: dict[str, Any]) -> nn.Module:
    if arch.get("arch") == TEACHER_ARCH:
        return build_network(TEACHER_ARCH, arch["num_landmarks"])
    return build_network(ArchSpec.from_dict(arch))


def write_model_files(out: Path, model: nn.Module, *, dataset: str, info, input_size: int, config: dict[str, Any],
                      metrics: dict[str, Any], kind: str, run_id: str | None, extra_card: dict[str, Any] | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()  # the caller's network stays on its device (CUDA runs go on)
    arch = arch_of(model)
    torch.save(model.state_dict(), out / "weights.pt")
    (out / "spec.json").write_text(json.dumps(arch, indent=1))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    export_onnx(model, out / "model.onnx", input_size=input_size)
    cx = complexity(model, input_size=input_size)
    # measured where the model was trained, with the threads latency budgets use: what promote-within-budget reads
    # (a caller that has just timed this network, like the sweep, passes its figure in extra_card instead)
    threads = int(config.get("prune_latency_threads") or 1)
    ms = (extra_card or {}).get("ms") or onnx_ms(out / "model.onnx", input_size, threads)
    card = {
        "format": "sdhrnet-model", "version": 1,
        "dataset": dataset, "num_landmarks": info.num_landmarks, "input_size": input_size,
        "heatmap_size": input_size // 4,
        "arch": TEACHER_ARCH if arch.get("arch") == TEACHER_ARCH else SDHRNET_ARCH,
        "flip_pairs": [list(p) for p in info.flip_pairs],
        "metrics": metrics, "params": cx["params"], "macs": cx["macs"], "macs_head": cx["macs_head"],
        "ms": round(ms, 3), "ms_threads": threads,
        "kind": kind, "run_id": run_id, **(extra_card or {}),
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    return card


def has_torch_weights(folder: Path) -> bool:
    """False for a folder that ships only ONNX (the served default model): load_model then rebuilds the network
    from model.onnx, whose BN layers are folded away (trainer.onnx_import.calibrate_batchnorm before training it)."""
    return (Path(folder) / "weights.pt").exists()


def load_model(folder: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    folder = Path(folder)
    if not has_torch_weights(folder) and (folder / "model.onnx").exists():
        from trainer.onnx_import import load_onnx_sdhrnet  # onnx is needed on this path alone

        return load_onnx_sdhrnet(folder).to(device).eval(), read_card(folder)
    arch = json.loads((folder / "spec.json").read_text())
    model = build_from_arch(arch)
    model.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    return model.to(device).eval(), read_card(folder)

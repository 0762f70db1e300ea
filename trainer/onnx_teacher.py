"""A frozen teacher that exists only as ONNX model files, such as the served default model (it ships without
PyTorch weights). Distillation needs nothing from a teacher but its heatmaps, so ONNX Runtime computes them."""
from __future__ import annotations

from pathlib import Path

import torch

from landmarks.landmarker import OnnxLandmarker


class OnnxTeacher(torch.nn.Module):
    """`teacher(images)` -> heatmaps as a tensor on the images' device; no parameters, no gradients."""

    def __init__(self, onnx_path: Path, input_size: int, threads: int | None = None):
        super().__init__()
        # the landmarker checks the model's input size and batches the calls; its decoding is not used here
        self.runner = OnnxLandmarker(onnx_path, input_size=input_size, threads=threads or torch.get_num_threads())

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        heatmaps = self.runner.run(images.detach().float().cpu().numpy())
        return torch.from_numpy(heatmaps).to(images.device)

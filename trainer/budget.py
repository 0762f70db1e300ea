"""Resource budgets for pruning, in the user's own terms: parameters, multiply-adds at the training input size, or
milliseconds per face measured with ONNX Runtime on the machine that runs the job.

A budget holds when every limit that is set holds. Latency is measured, not modelled: the network is exported
to ONNX and timed at batch 1 with the threads it will be served with, because MACs predict CPU time poorly for
depthwise convolutions and fusion-heavy graphs (the reason a latency budget exists at all).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn


@dataclass(frozen=True)
class Budget:
    max_params: int | None = None
    max_macs: int | None = None
    max_ms: float | None = None
    input_size: int = 128
    threads: int = 1

    @classmethod
    def from_config(cls, cfg) -> "Budget":
        return cls(cfg.prune_max_params, cfg.prune_max_macs, cfg.prune_max_ms, cfg.input_size, cfg.prune_latency_threads)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_macs, self.max_ms))

    def cost(self, net: nn.Module) -> dict[str, float]:
        """What the set limits measure (params always; MACs and ms only when limited, ms being slow)."""
        from trainer.complexity import complexity, count_params

        out: dict[str, float] = {"params": count_params(net)}
        if self.max_macs is not None:
            out["macs"] = complexity(net, self.input_size)["macs"]
        if self.max_ms is not None:
            out["ms"] = measure_ms(net, self.input_size, self.threads)
        return out

    def fits(self, net: nn.Module) -> bool:
        c = self.cost(net)
        return ((self.max_params is None or c["params"] <= self.max_params)
                and (self.max_macs is None or c["macs"] <= self.max_macs)
                and (self.max_ms is None or c["ms"] <= self.max_ms))

    def describe(self) -> str:
        parts = [f"<= {self.max_params:,} params" if self.max_params is not None else "",
                 f"<= {self.max_macs / 1e6:.0f} M MACs @{self.input_size}" if self.max_macs is not None else "",
                 f"<= {self.max_ms:g} ms/face ({self.threads} thread(s))" if self.max_ms is not None else ""]
        return ", ".join(p for p in parts if p) or "no budget"


def measure_ms(net: nn.Module, input_size: int, threads: int = 1, calls: int = 20) -> float:
    """Median ONNX Runtime latency of one face (batch 1) in milliseconds, after warm-up calls."""
    from trainer.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        return onnx_ms(export_onnx(net, Path(tmp) / "model.onnx", input_size), input_size, threads, calls)


def onnx_ms(path: Path, input_size: int, threads: int = 1, calls: int = 20) -> float:
    """Median latency of one face (batch 1) of an exported model in milliseconds, after warm-up calls."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).normal(size=(1, 3, input_size, input_size)).astype(np.float32)
    for _ in range(3):
        session.run(None, {name: x})
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)

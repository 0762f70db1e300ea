"""PyTorch weights back from a model folder that ships only ONNX, such as the served default model.

Our exporter folds every BatchNorm into the convolution before it, so the ONNX graph holds one weight and one bias
per convolution and no BN at all. The architecture is in spec.json; building it and walking its convolutions in the
order the forward pass calls them gives the same sequence as the graph's Conv nodes (the TorchScript exporter records
them in call order), and shapes are checked pair by pair. A folded pair is written back as the conv's weight and a BN
that adds the bias: exact in eval mode for any running statistics, and `calibrate_batchnorm` later gives them the
values of real data so that training (batch statistics) starts from the same function. The result is compared with
ONNX Runtime before it is returned, so an ONNX file from another architecture fails loudly, not silently.
"""
from __future__ import annotations

import json
from pathlib import Path
import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from trainer.model_uri import read_card
from trainer.nets import build_network
from trainer.nets.spec import ArchSpec
from trainer.onnx_weights import one_weight_per_use

MAX_ABS_DIFF = 1e-3  # heatmap peaks are ~1; float32 reassociation differences stay below 1e-5


def _conv_calls(model: nn.Module, example: torch.Tensor) -> tuple[list[nn.Conv2d], dict[nn.Conv2d, nn.BatchNorm2d]]:
    """The convolutions in call order, and the BN that normalises each one's output where there is one."""
    order: list[nn.Conv2d] = []
    produced_by: dict[int, nn.Conv2d] = {}
    bn_of: dict[nn.Conv2d, nn.BatchNorm2d] = {}

    def on_conv(module, _inputs, output):
        order.append(module)
        produced_by[id(output)] = module

    def on_bn(module, inputs, _output):
        conv = produced_by.get(id(inputs[0]))
        if conv is not None:
            bn_of[conv] = module

    hooks = [m.register_forward_hook(on_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(on_bn) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return order, bn_of


def _onnx_convs(graph: onnx.GraphProto) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], dict[str, np.ndarray]]:
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            if any(name and name not in init for name in node.input[1:]):
                raise ValueError("model.onnx computes its convolution weights (a quantized model?): only float "
                                 "exports can be loaded back into PyTorch")
            bias = init[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            convs.append((init[node.input[1]], bias))
    return convs, init


def load_onnx_sdhrnet(folder: Path) -> nn.Module:
    """The SD-HRNet of an ONNX-only model folder as a PyTorch module in eval mode, equal to its ONNX graph."""
    folder = Path(folder)
    arch = json.loads((folder / "spec.json").read_text())
    if arch.get("format") != "sdhrnet-archspec":
        raise ValueError(f"{folder.name}: only SD-HRNet model folders can be loaded from ONNX (spec.json says "
                         f"arch={arch.get('arch')}); this one needs its weights.pt")
    size = int(read_card(folder)["input_size"])
    model = build_network(ArchSpec.from_dict(arch))
    graph = one_weight_per_use(onnx.load(str(folder / "model.onnx"))).graph
    convs, init = _onnx_convs(graph)
    order, bn_of = _conv_calls(model, torch.zeros(1, 3, size, size))
    if len(order) != len(convs):
        raise ValueError(f"{folder.name}: model.onnx has {len(convs)} convolutions, spec.json's network "
                         f"{len(order)}: the two files do not describe the same network")
    with torch.no_grad():
        for i, (conv, (weight, bias)) in enumerate(zip(order, convs)):
            if tuple(conv.weight.shape) != weight.shape:
                raise ValueError(f"{folder.name}: convolution {i} is {tuple(conv.weight.shape)} in spec.json's "
                                 f"network and {weight.shape} in model.onnx")
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            bn = bn_of.get(conv)
            shift = torch.from_numpy(bias.copy()) if bias is not None else torch.zeros(weight.shape[0])
            if bn is None:
                if conv.bias is not None:  # else the graph has no bias either; the ONNX check below says if not
                    conv.bias.copy_(shift)
                continue
            if conv.bias is not None:  # the head's first conv keeps a bias before its BN: folded into the shift too
                conv.bias.zero_()
            # eval-mode BN with mean 0 and variance 1 - eps is the identity plus its bias
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(shift)
        state = model.state_dict()
        for name, value in init.items():  # tensors the exporter kept under their own names (fusion weights)
            if name in state:
                state[name].copy_(torch.from_numpy(value.copy()))
    _check_against_onnx(model, folder / "model.onnx", size)
    return model.eval()


def _check_against_onnx(model: nn.Module, onnx_path: Path, size: int) -> None:
    import onnxruntime as ort

    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        got = model.eval()(x).numpy()
    diff = float(np.abs(got - expected).max())
    if diff > MAX_ABS_DIFF:
        raise ValueError(f"{onnx_path.parent.name}: the network rebuilt from model.onnx differs from it by {diff:.3g}")


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Rewrites every conv+BN pair so that its running statistics are the mean and variance of the conv's output on
    `batches`, keeping the eval-mode function unchanged. Training mode normalises with batch statistics, which then
    start close to the running ones, so a network loaded from ONNX trains on from where it was, not from a shifted
    copy of itself."""
    if not batches:
        raise ValueError("BatchNorm calibration needs at least one batch")
    _, bn_of = _conv_calls(model, batches[0][:1])
    count: dict[nn.Conv2d, int] = {}
    total: dict[nn.Conv2d, torch.Tensor] = {}
    squares: dict[nn.Conv2d, torch.Tensor] = {}

    def on_conv(module, _inputs, output):
        out = output.double()
        count[module] = count.get(module, 0) + out.numel() // out.shape[1]
        total[module] = total.get(module, 0) + out.sum((0, 2, 3))
        squares[module] = squares.get(module, 0) + (out * out).sum((0, 2, 3))

    hooks = [conv.register_forward_hook(on_conv) for conv in bn_of]
    try:
        model.eval()
        for images in batches:
            model(images)
    finally:
        for h in hooks:
            h.remove()
    for conv, bn in bn_of.items():
        mean = (total[conv] / count[conv]).to(bn.running_mean)
        var = (squares[conv] / count[conv]).to(bn.running_var) - mean * mean
        var = var.clamp_min(0)
        # (x - m_old) / s_old * w + b  ==  (x - mean) / s_new * w_new + b_new  for every x
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bn.bias.add_(scale * (mean - bn.running_mean))
        bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

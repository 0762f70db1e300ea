"""A model soup (Wortsman et al., 2022): one network whose weights are the average of several networks fine-tuned
from one start. Unlike an ensemble it costs what one member costs to run. Networks from different starts do not
average into anything useful: the soup is for the students of self-distillation rounds that share a start.

The average is taken over the exported ONNX graphs, where every BatchNorm is folded into its convolution: each
member contributes its eval-mode function, so members whose BN statistics were calibrated on different batches
(each distillation seed calibrates its own) still average consistently. The result is an ordinary SD-HRNet model
folder: evaluate, serve, `distill --from-slim` and `--teacher` read it like any other.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from trainer.ensemble import SHARED, agreeing_models
from trainer.model_uri import load_onnx, make_model_folder
from trainer.onnx_weights import one_weight_per_use

SOUP_KIND = "soup"


def _not_one_network(why: str) -> ValueError:
    return ValueError(f"the models are not one architecture ({why}); a soup averages the weights of one network")


def _weights_in_use_order(model: onnx.ModelProto) -> list[str]:
    """Initializer names in the order the nodes first use them: the same for two exports of one architecture even
    where the exporter numbered its tensors differently."""
    names = {t.name for t in model.graph.initializer}
    order: dict[str, None] = {}  # insertion-ordered set
    for node in model.graph.node:
        order.update((n, None) for n in node.input if n in names)
    return list(order)


def _same_graph(first: onnx.ModelProto, other: onnx.ModelProto) -> bool:
    """Same operators in the same order with the same attributes (weights aside)."""
    a, b = first.graph.node, other.graph.node
    return len(a) == len(b) and all(x.op_type == y.op_type and [p.SerializeToString() for p in x.attribute]
                                    == [p.SerializeToString() for p in y.attribute] for x, y in zip(a, b))


def average_weights(models: list[onnx.ModelProto]) -> onnx.ModelProto:
    """The first model's graph with every float weight replaced by the mean over `models`; other initializers
    (shapes, indices) must be equal."""
    models = [one_weight_per_use(m) for m in models]
    first = models[0]
    orders = [_weights_in_use_order(m) for m in models]
    if any(not _same_graph(first, m) or len(o) != len(orders[0]) for m, o in zip(models[1:], orders[1:])):
        raise _not_one_network("their ONNX graphs differ")
    tensors = [{t.name: t for t in m.graph.initializer} for m in models]
    averaged: dict[str, onnx.TensorProto] = {}
    for position, name in enumerate(orders[0]):
        values = [numpy_helper.to_array(t[o[position]]) for t, o in zip(tensors, orders)]
        if any(v.shape != values[0].shape or v.dtype != values[0].dtype for v in values):
            raise _not_one_network("a weight's shape differs")
        if np.issubdtype(values[0].dtype, np.floating):
            mean = np.mean(np.stack(values).astype(np.float64), axis=0).astype(values[0].dtype)
        elif all(np.array_equal(v, values[0]) for v in values):
            mean = values[0]
        else:
            raise _not_one_network("a non-float constant of their graphs differs")
        averaged[name] = numpy_helper.from_array(mean, name)
    soup = onnx.ModelProto()
    soup.CopyFrom(first)
    for t in soup.graph.initializer:
        if t.name in averaged:
            t.CopyFrom(averaged[t.name])
    onnx.checker.check_model(soup)
    return soup


def average_specs(specs: list[Any]) -> Any:
    """The architectures' mean: the same structure and the same values, except floats (an SD-HRNet spec's fusion
    weights, which the network trains), which are averaged as the graph's copies of them are."""
    first = specs[0]
    if isinstance(first, dict) and all(isinstance(s, dict) and s.keys() == first.keys() for s in specs):
        return {k: average_specs([s[k] for s in specs]) for k in first}
    if isinstance(first, float) and all(isinstance(s, (int, float)) for s in specs):
        return float(np.float32(np.mean(specs)))  # rounded as the graph's float32 copies are
    if all(s == first for s in specs):
        return first
    raise _not_one_network("their spec.json differ")


def write_soup(ingredients: list[str], out: Path) -> dict:
    """Writes out/model.onnx, model_card.json and spec.json (the architecture, fusion weights averaged)."""
    folders, cards = agreeing_models(ingredients, "a soup")
    specs = [json.loads((f / "spec.json").read_text()) if (f / "spec.json").exists() else None for f in folders]
    spec = average_specs(specs)
    soup = average_weights([load_onnx(f / "model.onnx") for f in folders])
    make_model_folder(out, folders)
    onnx.save(soup, out / "model.onnx")
    if spec is not None:
        (out / "spec.json").write_text(json.dumps(spec, indent=1))
    first = cards[0]
    card = {
        "format": "sdhrnet-model", "version": 1,
        **{field: first[field] for field in SHARED if field in first},
        **{field: first[field] for field in ("arch", "params", "macs") if field in first},
        "kind": SOUP_KIND, "run_id": None,
        "ingredients": [{"model": m, "run_id": c.get("run_id"), "kind": c.get("kind"), "metrics": c.get("metrics")}
                        for m, c in zip(ingredients, cards)],
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    return card

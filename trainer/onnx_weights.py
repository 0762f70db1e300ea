"""ONNX weights as the network has them: one initializer per use."""
from __future__ import annotations

import onnx


def one_weight_per_use(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` where every use of a weight has a weight of its own. The exporter merges weights that happen to
    hold equal values (two still-zero biases, say) into one, read through Identity nodes or shared by name, so two
    exports of one architecture can differ in their initializers; undone here, they line up use by use."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    weights = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            copy = onnx.TensorProto()
            copy.CopyFrom(weights[node.input[0]])
            copy.name = node.output[0]
            weights[copy.name] = copy
            graph.initializer.append(copy)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    seen: set[str] = set()
    for i, node in enumerate(graph.node):
        for j, name in enumerate(node.input):
            if name not in weights:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(weights[name])
                copy.name = f"{name}.use{i}.{j}"
                graph.initializer.append(copy)
                node.input[j] = copy.name
            seen.add(name)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    remaining = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    return out

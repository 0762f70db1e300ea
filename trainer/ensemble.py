"""A teacher made of several trained models: one ONNX graph that runs them all on the same input and averages
their heatmaps. Averaging cancels part of each member's own errors, so the ensemble lands closer to the ground
truth than any member; that is what a distillation teacher needs when no single larger network beats the student
(on our 1100 training faces HRNetV2-W18 does not). The result is an ordinary ONNX-only model folder: evaluate,
serve and `distill --teacher` read it like any other."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import compose, helper

from trainer.model_uri import load_onnx, make_model_folder, read_card, resolve_model_dir

ENSEMBLE_ARCH = "ensemble"
# card fields every member must agree on: the ensemble is scored and served through them
SHARED = ("dataset", "num_landmarks", "input_size", "heatmap_size", "flip_pairs")


def merged_graph(models: list[onnx.ModelProto], input_name: str, output_name: str) -> onnx.ModelProto:
    """The members side by side on one input, their outputs averaged into one."""
    graph = helper.make_graph([], "ensemble", [models[0].graph.input[0]], [models[0].graph.output[0]])
    outputs = []
    for i, model in enumerate(models):
        member = compose.add_prefix(model, f"m{i}/")
        for node in member.graph.node:
            node.input[:] = [input_name if name == f"m{i}/{input_name}" else name for name in node.input]
        graph.node.extend(member.graph.node)
        graph.initializer.extend(member.graph.initializer)
        graph.value_info.extend(member.graph.value_info)
        outputs.append(f"m{i}/{output_name}")
    graph.node.append(helper.make_node("Mean", outputs, [output_name]))
    merged = helper.make_model(graph, opset_imports=models[0].opset_import, producer_name="sdhrnet ensemble")
    merged.ir_version = models[0].ir_version
    onnx.checker.check_model(merged)
    return merged


def agreeing_models(members: list[str], what: str) -> tuple[list[Path], list[dict]]:
    """The model folders and cards of `members` (anything resolve_model_dir takes), which must agree on every
    SHARED field: what an ensemble or a soup (`what`) of them is scored and served through."""
    if len(members) < 2:
        raise ValueError(f"{what} needs at least two models")
    folders = [resolve_model_dir(m) for m in members]
    cards = [read_card(f) for f in folders]
    for field in SHARED:
        values = {json.dumps(c.get(field)) for c in cards}
        if len(values) > 1:
            raise ValueError(f"the models disagree on {field}; {what} combines models of one dataset, "
                             f"input size and heatmap size")
    return folders, cards


def static_input_size(model: onnx.ModelProto) -> int | None:
    """The side of the square input the graph is fixed to; None where it is left dynamic."""
    side = model.graph.input[0].type.tensor_type.shape.dim[-1:]
    return side[0].dim_value if side and side[0].HasField("dim_value") else None


def write_ensemble(members: list[str], out: Path) -> dict:
    """Writes out/model.onnx, model_card.json and spec.json for the members (anything resolve_model_dir takes)."""
    folders, cards = agreeing_models(members, "an ensemble")
    models = [load_onnx(f / "model.onnx") for f in folders]
    names = {(m.graph.input[0].name, m.graph.output[0].name) for m in models}
    if len(names) > 1 or len(models[0].graph.input) != 1 or len(models[0].graph.output) != 1:
        raise ValueError("every member must be a model folder exported by sdhrnet (one input, one heatmap output)")
    (input_name, output_name), = names
    for folder, model, card in zip(folders, models, cards):
        size = static_input_size(model)
        if size is not None and size != card.get("input_size"):
            raise ValueError(f"the model in {folder} takes {size} px inputs while its card says "
                             f"{card.get('input_size')}; export it again with `sdhrnet export`")
    make_model_folder(out, folders)
    onnx.save(merged_graph(models, input_name, output_name), out / "model.onnx")
    card = {
        "format": "sdhrnet-model", "version": 1,
        **{field: cards[0][field] for field in SHARED if field in cards[0]},
        "arch": ENSEMBLE_ARCH, "kind": ENSEMBLE_ARCH, "run_id": None,
        "params": sum(c.get("params", 0) for c in cards), "macs": sum(c.get("macs", 0) for c in cards),
        "members": [{"model": m, "run_id": c.get("run_id"), "metrics": c.get("metrics")} for m, c in zip(members, cards)],
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    (out / "spec.json").write_text(json.dumps({"arch": ENSEMBLE_ARCH, "members": members}, indent=1))
    return card

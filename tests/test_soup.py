"""A soup folder averages its ingredients' weights, BN folded in, and is again one trainable SD-HRNet."""
import json

import numpy as np
import torch

from landmarks.datasets import get_info
from landmarks.landmarker import OnnxLandmarker
from sdhrnet.cli import main as cli
from trainer.model_files import write_model_files
from trainer.nets import build_network
from trainer.onnx_import import load_onnx_sdhrnet
from tests.service_support import build_tiny_model

SIZE = 64


def _fine_tuned(folder, seed, arch="s-hrnet-300w", move_zeros=True):
    """One start (seed 0) moved a little by `seed`: weights and BN statistics both, as fine-tuning moves them. With
    move_zeros=False the tensors still at 0 stay there, as after a few steps (the tiny preset)."""
    info = get_info("300w")
    torch.manual_seed(0)
    net = build_network(arch, info.num_landmarks)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]:
            if move_zeros or tensor.any():
                tensor.add_(0.05 * (tensor.abs().mean() + 0.01) * torch.randn(tensor.shape, generator=gen))
    write_model_files(folder, net.eval(), dataset="300w", info=info, input_size=SIZE, config={}, metrics={"nme": 0.1},
                      kind="distill", run_id=f"run{seed}")
    return folder


def _heatmaps(folder, x):
    return OnnxLandmarker(folder / "model.onnx", input_size=SIZE).run(x)


def _convs(folder):
    net = load_onnx_sdhrnet(folder)
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


def test_the_soup_is_one_network_whose_folded_weights_are_the_ingredients_mean(tmp_path):
    a, b = _fine_tuned(tmp_path / "a", 1), _fine_tuned(tmp_path / "b", 2)
    out = tmp_path / "soup"
    assert cli(["soup", str(a), str(b), "--out", str(out)]) == 0
    # read back through the ONNX importer, which pairs convolutions by call order, not by the soup's own matching
    for conv_a, conv_b, conv_s in zip(_convs(a), _convs(b), _convs(out), strict=True):
        assert torch.allclose(conv_s.weight, (conv_a.weight + conv_b.weight) / 2, atol=1e-6)
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    heatmaps = _heatmaps(out, x)
    assert not np.allclose(heatmaps, _heatmaps(a, x), atol=1e-4) and not np.allclose(heatmaps, _heatmaps(b, x), atol=1e-4)
    card = json.loads((out / "model_card.json").read_text())
    card_a = json.loads((a / "model_card.json").read_text())
    assert card["kind"] == "soup" and card["arch"] == "sdhrnet" and card["params"] == card_a["params"]
    assert [i["run_id"] for i in card["ingredients"]] == ["run1", "run2"]
    # the spec's fusion weights are the averaged ones too: the network rebuilt from it is the ONNX graph's
    assert load_onnx_sdhrnet(out).current_spec().to_dict() == json.loads((out / "spec.json").read_text())


def test_weights_the_export_merged_because_they_were_equal_are_averaged_use_by_use(tmp_path):
    """Biases still at 0 are equal, so the exporter merges them into one weight read through Identity nodes; the other
    ingredient's export keeps them apart. The soup lines the two up use by use (this failed the tiny pipeline), and the
    ONNX importer reads such an export back."""
    import onnx

    a, b = _fine_tuned(tmp_path / "a", 1, move_zeros=False), _fine_tuned(tmp_path / "b", 2)
    graph_a, graph_b = (onnx.load(str(f / "model.onnx")).graph for f in (a, b))
    assert len(graph_a.initializer) < len(graph_b.initializer), "the export merged a's equal weights"
    out = tmp_path / "soup"
    assert cli(["soup", str(a), str(b), "--out", str(out)]) == 0
    x = np.random.default_rng(2).random((2, 3, SIZE, SIZE), dtype=np.float32)
    one = _heatmaps(out, x)
    assert cli(["soup", str(b), str(a), "--out", str(tmp_path / "reversed")]) == 0
    assert np.allclose(one, _heatmaps(tmp_path / "reversed", x), atol=1e-5), "the order of the ingredients is moot"
    # and the importer reads the merged export back too (it pairs convolutions by call order)
    for conv_a, conv_b, conv_s in zip(_convs(a), _convs(b), _convs(out), strict=True):
        assert torch.allclose(conv_s.weight, (conv_a.weight + conv_b.weight) / 2, atol=1e-6)


def test_a_soup_of_one_network_with_itself_is_that_network(tmp_path):
    a = _fine_tuned(tmp_path / "a", 1)
    assert cli(["soup", str(a), str(a), str(a), "--out", str(tmp_path / "soup")]) == 0
    x = np.random.default_rng(1).random((1, 3, SIZE, SIZE), dtype=np.float32)
    assert np.allclose(_heatmaps(tmp_path / "soup", x), _heatmaps(a, x), atol=1e-5)


def test_networks_of_different_architectures_are_refused(tmp_path, capsys):
    a = _fine_tuned(tmp_path / "a", 1)
    b = _fine_tuned(tmp_path / "b", 1, arch="s-hrnet-wflw")
    assert cli(["soup", str(a), str(b), "--out", str(tmp_path / "soup")]) == 2
    assert "not one architecture" in capsys.readouterr().err
    assert not (tmp_path / "soup").exists()


def test_one_network_is_not_a_soup(tmp_path, capsys):
    assert cli(["soup", str(_fine_tuned(tmp_path / "a", 1)), "--out", str(tmp_path / "soup")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_the_soup_is_not_written_over_an_ingredient(tmp_path, capsys):
    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b", seed=1)
    before = (a / "model.onnx").read_bytes()
    assert cli(["soup", str(a), str(b), "--out", str(a)]) == 2
    assert "holds a model the new one is made from" in capsys.readouterr().err
    assert (a / "model.onnx").read_bytes() == before, "the ingredient is still itself"

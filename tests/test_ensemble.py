"""An ensemble folder averages its members' heatmaps and teaches like any ONNX-only model."""
import json

import numpy as np
import torch

from landmarks.datasets import get_info
from landmarks.landmarker import OnnxLandmarker
from sdhrnet.cli import main as cli
from sdhrnet.train_config import make_config
from trainer.distill import load_teacher
from trainer.model_files import write_model_files
from trainer.nets import build_network
from trainer.onnx_teacher import OnnxTeacher
from tests.data_helpers import tiny_onnx
from tests.service_support import build_tiny_model

SIZE = 64


def _member(folder, seed, dataset="300w"):
    torch.manual_seed(seed)
    info = get_info(dataset)
    net = build_network("s-hrnet-300w", info.num_landmarks).eval()
    write_model_files(folder, net, dataset=dataset, info=info, input_size=SIZE, config={}, metrics={"nme": 0.1},
                      kind="test", run_id=f"run{seed}")
    return folder


def _heatmaps(folder, x):
    return OnnxLandmarker(folder / "model.onnx", input_size=SIZE).run(x)


def test_the_ensemble_computes_the_mean_of_its_members_heatmaps(tmp_path):
    members = [_member(tmp_path / f"m{i}", seed=i) for i in range(3)]
    out = tmp_path / "ens"
    assert cli(["ensemble", *map(str, members), "--out", str(out)]) == 0
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    expected = np.mean([_heatmaps(m, x) for m in members], axis=0)
    assert np.allclose(_heatmaps(out, x), expected, atol=1e-5)
    card = json.loads((out / "model_card.json").read_text())
    assert card["arch"] == "ensemble" and card["input_size"] == SIZE and card["num_landmarks"] == 68
    assert [m["run_id"] for m in card["members"]] == ["run0", "run1", "run2"]
    assert card["params"] == 3 * json.loads((members[0] / "model_card.json").read_text())["params"]
    # a distillation teacher through ONNX Runtime, also for a GPU run (its graph is not one network to rebuild)
    cfg = make_config("tiny", "300w", {"input_size": SIZE}, kind="distill")
    assert isinstance(load_teacher(str(out), cfg, 68, torch.device("cuda")), OnnxTeacher)
    teacher = load_teacher(str(out), cfg, 68)
    assert isinstance(teacher, OnnxTeacher)
    assert np.allclose(teacher(torch.from_numpy(x)).numpy(), expected, atol=1e-5)


def test_members_of_different_datasets_are_refused(tmp_path, capsys):
    a, b = _member(tmp_path / "a", 0), _member(tmp_path / "b", 1, dataset="wflw")
    assert cli(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
    assert "disagree on dataset" in capsys.readouterr().err
    assert not (tmp_path / "ens").exists()


def test_one_member_is_not_an_ensemble(tmp_path, capsys):
    assert cli(["ensemble", str(_member(tmp_path / "a", 0)), "--out", str(tmp_path / "ens")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_a_member_that_is_not_onnx_is_named_not_traced(tmp_path, capsys):
    a, broken = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "broken")
    for content in (b"not a protobuf", b""):  # an empty file parses as an empty ONNX model
        (broken / "model.onnx").write_bytes(content)
        assert cli(["ensemble", str(a), str(broken), "--out", str(tmp_path / "ens")]) == 2
        err = capsys.readouterr().err
        assert f"{broken / 'model.onnx'} is not an ONNX model" in err and "Traceback" not in err
    assert not (tmp_path / "ens").exists()


def test_the_ensemble_is_not_written_over_a_member_or_a_file(tmp_path, capsys):
    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b", seed=1)
    before = (a / "model.onnx").read_bytes()
    assert cli(["ensemble", str(a), str(b), "--out", str(a)]) == 2
    assert "holds a model the new one is made from" in capsys.readouterr().err
    assert (a / "model.onnx").read_bytes() == before and json.loads((a / "model_card.json").read_text())["arch"] != \
        "ensemble"
    (tmp_path / "taken").write_text("")
    assert cli(["ensemble", str(a), str(b), "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "a file of that name exists" in err and "Traceback" not in err


def test_a_member_whose_graph_and_card_disagree_on_the_input_size_is_named(tmp_path, capsys):
    """The cards are what members are compared by; a graph fixed to another size would fail only at the first run."""
    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b", seed=1)
    tiny_onnx(b / "model.onnx", 68, 128)  # the card still says 64
    assert cli(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err
    assert f"{b} takes 128 px inputs while its card says 64" in err and "Traceback" not in err
    assert not (tmp_path / "ens" / "model.onnx").exists()
    tiny_onnx(b / "model.onnx", 68)  # a graph left dynamic takes what its card says
    assert cli(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 0

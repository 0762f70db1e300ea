from argparse import Namespace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sdhrnet.cli import export as cli_export
from trainer.export import export_onnx
from trainer.nets import build_network

torch.set_num_threads(1)
SIZE = 64


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _assert_parity(net, session, batch):
    x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = net.eval()(x).numpy()
    (got,) = session.run(["heatmaps"], {"image": x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["s-hrnet-300w", "hrnetv2-w18"])
def test_onnx_matches_pytorch_with_dynamic_batch(arch, tmp_path):
    torch.manual_seed(0)
    net = build_network(arch).train()
    path = export_onnx(net, tmp_path / "model.onnx", SIZE)
    assert net.training  # export works on a copy
    session = _session(path)
    assert session.get_inputs()[0].name == "image" and session.get_outputs()[0].name == "heatmaps"
    assert isinstance(session.get_inputs()[0].shape[0], str)  # symbolic batch axis
    for batch in (1, 3):
        _assert_parity(net, session, batch)


def test_cli_export_with_weights_and_spec_beside_them(tmp_path):
    torch.manual_seed(0)
    net = build_network("s-hrnet-cofw", num_landmarks=5)
    with torch.no_grad():
        for p in net.alpha_parameters():
            p.mul_(0.5)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    net.current_spec().save(tmp_path / "spec.json")
    args = Namespace(arch=None, weights=str(tmp_path / "weights.pt"), landmarks=None,
                     out=str(tmp_path / "out.onnx"), input_size=SIZE, exporter="legacy")
    assert cli_export.main(args) == 0
    _assert_parity(net, _session(tmp_path / "out.onnx"), 2)


def test_cli_export_rejects_mismatched_weights(tmp_path, capsys):
    torch.save(build_network("s-hrnet-cofw").state_dict(), tmp_path / "w.pt")
    args = Namespace(arch="s-hrnet-300w", weights=str(tmp_path / "w.pt"), landmarks=None,
                     out=str(tmp_path / "x.onnx"), input_size=SIZE, exporter="legacy")
    assert cli_export.main(args) == 2
    assert "do not fit" in capsys.readouterr().err


def test_cli_export_names_the_keys_that_do_not_fit(tmp_path, capsys):
    torch.save({"a": torch.zeros(2)}, tmp_path / "w.pt")
    args = Namespace(arch="s-hrnet-300w", weights=str(tmp_path / "w.pt"), landmarks=None,
                     out=str(tmp_path / "x.onnx"), input_size=SIZE, exporter="legacy")
    assert cli_export.main(args) == 2
    err = capsys.readouterr().err
    assert "Missing key(s) in state_dict" in err and len(err) < 500  # not torch's header line, not every key


@pytest.mark.parametrize("content", [b"", b"not a pickle"])
def test_cli_export_weights_that_are_no_state_dict_are_a_message(tmp_path, capsys, content):
    (tmp_path / "w.pt").write_bytes(content)
    args = Namespace(arch="s-hrnet-300w", weights=str(tmp_path / "w.pt"), landmarks=None,
                     out=str(tmp_path / "x.onnx"), input_size=SIZE, exporter="legacy")
    assert cli_export.main(args) == 2
    err = capsys.readouterr().err
    # torch's own message advises weights_only=False, which would run code from the file
    assert "is not a state_dict torch.load can read" in err and "weights_only" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_to_a_path_it_cannot_write_is_a_message(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path, tmp_path / "a-file" / "x.onnx"):  # a folder; a folder that is a file
        args = Namespace(arch="s-hrnet-300w", weights=None, landmarks=None, out=str(out), input_size=SIZE,
                         exporter="legacy")
        assert cli_export.main(args) == 2
        assert f"cannot write --out {out}" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--input-size", "0"], "--input-size: must be a positive multiple of 32"),
    (["--input-size", "-32"], "--input-size: must be a positive multiple of 32"),
    (["--landmarks", "0"], "--landmarks: must be a whole number of at least 1"),
])
def test_cli_export_and_complexity_refuse_sizes_below_one(tmp_path, capsys, argv, message):
    from sdhrnet.cli import main as cli

    for command in (["export", "--arch", "s-hrnet-300w", "--out", str(tmp_path / "x.onnx")],
                    ["complexity", "--arch", "s-hrnet-300w"]):
        with pytest.raises(SystemExit) as exit_:
            cli([*command, *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_teacher_folder(tmp_path):
    net = build_network("hrnetv2-w18", num_landmarks=4)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "spec.json").write_text('{"arch": "hrnetv2-w18", "num_landmarks": 4}')
    model = cli_export.network_from_args(None, str(tmp_path / "weights.pt"), None)
    assert type(model).__name__ == "HRNetV2" and model.num_landmarks == 4
    assert build_network({"arch": "hrnetv2-w18", "num_landmarks": 4}).num_landmarks == 4
    assert build_network(build_network("s-hrnet-300w").spec.to_dict()).num_landmarks == 68

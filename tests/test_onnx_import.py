"""A model folder that ships only ONNX (the served default model) loads back as a trainable PyTorch network."""
import copy
import shutil

import pytest
import torch

from landmarks.datasets import get_info
from sdhrnet.train_config import make_config
from trainer.distill import load_students, load_teacher
from trainer.model_files import load_model, write_model_files
from trainer.nets import build_network
from trainer.nets.sdhrnet import SDHRNet
from trainer.onnx_import import calibrate_batchnorm
from trainer.onnx_teacher import OnnxTeacher

SIZE = 64


def _trained_like(arch: str = "s-hrnet-300w") -> torch.nn.Module:
    """A network whose BN layers are not at their initial values, as after training."""
    torch.manual_seed(0)
    net = build_network(arch, 68)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _onnx_only(tmp_path, net):
    write_model_files(tmp_path, net, dataset="300w", info=get_info("300w"), input_size=SIZE, config={},
                      metrics={"nme": 0.1}, kind="test", run_id=None)
    (tmp_path / "weights.pt").unlink()
    return tmp_path


def _images(n=4, seed=1):
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_an_onnx_only_folder_loads_back_as_the_network_it_was_exported_from(tmp_path):
    net = _trained_like()
    model, card = load_model(_onnx_only(tmp_path, net))
    assert isinstance(model, SDHRNet) and card["input_size"] == SIZE
    x = _images()
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-5)
    # the BN layers came back as modules with trainable parameters, not folded away
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())


def test_calibration_keeps_the_eval_function_and_gives_training_mode_the_same_start(tmp_path):
    model, _ = load_model(_onnx_only(tmp_path, _trained_like()))
    x = _images(8)
    with torch.no_grad():
        before = model(x)
        uncalibrated = copy.deepcopy(model).train()(x)  # a training-mode pass moves the running statistics
    calibrate_batchnorm(model, [x[:4], x[4:]])
    with torch.no_grad():
        after = model.eval()(x)
        train_mode = model.train()(x)
    assert torch.allclose(after, before, atol=1e-4)
    # running statistics are now those of this data, so batch statistics land where the running ones are
    assert (train_mode - before).abs().max() < 0.2 * (uncalibrated - before).abs().max()


def test_onnx_from_another_architecture_is_refused(tmp_path):
    folder = _onnx_only(tmp_path / "a", _trained_like("s-hrnet-300w"))
    other = _onnx_only(tmp_path / "b", _trained_like("s-hrnet-wflw"))
    shutil.copy(other / "model.onnx", folder / "model.onnx")
    with pytest.raises(ValueError, match="not describe the same network|in model.onnx"):
        load_model(folder)


def test_students_start_from_an_onnx_only_model_and_the_teacher_runs_in_torch_off_the_cpu(tmp_path):
    net = _trained_like()
    folder = _onnx_only(tmp_path, net)
    calls = []

    def calibration():
        calls.append(1)
        return [_images(8)]

    students, _ = load_students(str(folder), 68, 2, calibration)
    x = _images()
    with torch.no_grad():
        for s in students:
            assert torch.allclose(s.eval()(x), net(x), atol=1e-4)
    assert calls == [1] and students[0] is not students[1]
    cfg = make_config("tiny", "300w", {"input_size": SIZE})
    assert isinstance(load_teacher(str(folder), cfg, 68), OnnxTeacher)  # ONNX Runtime is faster on a CPU
    gpu_teacher = load_teacher(str(folder), cfg, 68, torch.device("cuda"))  # built on the CPU, moved by the caller
    assert isinstance(gpu_teacher, SDHRNet) and not any(p.requires_grad for p in gpu_teacher.parameters())

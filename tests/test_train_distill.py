"""One distillation step: independent masks per student, a frozen teacher, the ablation switches."""
import pytest
import torch
from torch import nn

from sdhrnet.train_config import make_config
from trainer.distill import distill_step
from trainer.engine import degradation_generator


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return nn.functional.avg_pool2d(self.conv(x), 4)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 3, 32, 32, generator=g) + 5.0, torch.rand(6, 2, 8, 8, generator=g)


def test_students_see_different_masks_and_the_teacher_sees_the_clean_image():
    cfg = make_config("tiny", "300w", {"erase_p": 1.0})
    images, heatmaps = _batch()
    s1, s2, teacher = Recorder(), Recorder(), Recorder()
    opts = [torch.optim.Adam(s.parameters()) for s in (s1, s2)]
    masks = (degradation_generator(cfg, 0, 0, 0), degradation_generator(cfg, 0, 0, 1))
    t_before = [p.clone() for p in teacher.parameters()]
    losses = distill_step([s1, s2], opts, teacher, images, heatmaps, cfg, masks)
    x1, x2, xt = s1.seen[0], s2.seen[0], teacher.seen[0]
    erased1, erased2 = (x1 == 0).all(1), (x2 == 0).all(1)  # erased pixels are 0 in every channel
    assert erased1.flatten(1).any(1).all() and erased2.flatten(1).any(1).all(), "p=1: every sample is masked"
    assert not torch.equal(erased1, erased2), "each student draws its own mask"
    assert torch.equal(xt, images), "the teacher sees the unmasked input"
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher.parameters())), "the teacher stays frozen"
    assert {"s1_mse", "s1_kd_peer", "s1_kd_teacher", "s2_total"} <= set(losses)
    assert all(type(v) is float for v in losses.values()), "plain numbers for the logs, read once per step"


def test_same_step_seeds_reproduce_the_same_masks():
    cfg = make_config("tiny", "300w", {"erase_p": 1.0})
    images, heatmaps = _batch()
    runs = []
    for _ in range(2):
        s1, s2 = Recorder(), Recorder()
        opts = [torch.optim.Adam(s.parameters()) for s in (s1, s2)]
        distill_step([s1, s2], opts, None, images, heatmaps, cfg,
                     (degradation_generator(cfg, 3, 7, 0), degradation_generator(cfg, 3, 7, 1)))
        runs.append((s1.seen[0], s2.seen[0]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("degradation", [{"lowres_p": 1.0}, {"noise_p": 1.0}])
def test_students_see_degraded_inputs_of_their_own_and_the_teacher_the_clean_image(degradation):
    """lowres_p or noise_p without masks (the KD-off control with the augmentation) still degrades each student's
    input."""
    from trainer.distill import degrades_inputs

    cfg = make_config("tiny", "300w", {**degradation, "masked_inputs": False})
    assert degrades_inputs(cfg) and not degrades_inputs(make_config("tiny", "300w", {"masked_inputs": False}))
    images, heatmaps = _batch()
    s1, s2, teacher = Recorder(), Recorder(), Recorder()
    opts = [torch.optim.Adam(s.parameters()) for s in (s1, s2)]
    distill_step([s1, s2], opts, teacher, images, heatmaps, cfg,
                 (degradation_generator(cfg, 0, 0, 0), degradation_generator(cfg, 0, 0, 1)))
    x1, x2 = s1.seen[0], s2.seen[0]
    assert not (x1 == 0).all(1).any(), "masks are off: nothing is erased"
    assert (x1 - images).abs().flatten(1).amax(1).gt(1e-3).all(), "p=1: every sample is degraded"
    assert not torch.equal(x1, x2), "each student draws its own degradation"
    assert torch.equal(teacher.seen[0], images), "the teacher sees the clean input"


@pytest.mark.parametrize("setting", [{"lowres_p": 1.5}, {"lowres_p": -0.1}, {"lowres_min_scale": 0.0},
                                     {"lowres_min_scale": 1.2}, {"noise_p": 2}, {"noise_max_grey": 0},
                                     {"noise_max_grey": 100}])
def test_lowres_settings_out_of_range_are_refused(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        make_config("tiny", "300w", setting)


def test_ablation_without_teacher_peer_or_masks():
    cfg = make_config("tiny", "300w", {"use_peer": False, "use_teacher": False})
    images, heatmaps = _batch()
    s1, s2 = Recorder(), Recorder()
    opts = [torch.optim.Adam(s.parameters()) for s in (s1, s2)]
    losses = distill_step([s1, s2], opts, None, images, heatmaps, cfg, None)
    assert set(losses) == {"s1_mse", "s1_total", "s2_mse", "s2_total"}
    assert torch.equal(s1.seen[0], images) and torch.equal(s2.seen[0], images)


def test_peers_of_a_published_architecture_start_apart_and_reproducibly():
    """Two copies of one network on the same unmasked batches would stay identical and the peer term would be 0."""
    from trainer.distill import load_students

    def first_conv(students):
        return [next(s.parameters()).detach().clone() for s in students]

    torch.manual_seed(0)
    a = first_conv(load_students("s-hrnet-300w", 68, 2)[0])
    torch.manual_seed(0)
    b = first_conv(load_students("s-hrnet-300w", 68, 2)[0])
    torch.manual_seed(0)
    (alone,) = first_conv(load_students("s-hrnet-300w", 68, 1)[0])
    assert not torch.equal(a[0], a[1]), "each peer is initialised on its own"
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "the same seed gives the same pair"
    assert torch.equal(alone, a[0]), "a lone student (KD off) starts where the first peer starts"


def test_a_teacher_shipped_as_onnx_alone_gives_the_heatmaps_of_its_network(tmp_path):
    """The served default model has no weights.pt; it can still teach, through ONNX Runtime."""
    import pytest

    from landmarks.datasets import get_info
    from trainer.distill import load_teacher
    from trainer.model_files import write_model_files
    from trainer.nets import build_network
    from trainer.onnx_teacher import OnnxTeacher

    torch.manual_seed(0)
    net = build_network("s-hrnet-300w", 68).eval()
    write_model_files(tmp_path, net, dataset="300w", info=get_info("300w"), input_size=64, config={},
                      metrics={"nme": 0.1}, kind="test", run_id=None)
    (tmp_path / "weights.pt").unlink()
    cfg = make_config("tiny", "300w")
    teacher = load_teacher(str(tmp_path), cfg, 68)
    assert isinstance(teacher, OnnxTeacher)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = net(images)
    got = teacher(images)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    with pytest.raises(ValueError, match="input"):
        load_teacher(str(tmp_path), make_config("tiny", "300w", {"input_size": 96}), 68)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(ValueError, match="neither weights.pt nor model.onnx"):
        load_teacher(str(tmp_path), cfg, 68)


def test_a_flip_test_teacher_teaches_its_flip_tests_heatmaps_which_mirror_with_the_face(tmp_path):
    """teacher_flip: the teacher's heatmaps averaged with those of the mirrored crop, turned back (columns reversed,
    left/right landmarks swapped) as written out here. Such heatmaps of a mirrored crop are exactly the mirrored
    heatmaps of the crop, which the network's own are not."""
    from landmarks.datasets import get_info
    from trainer.distill import load_teacher
    from trainer.model_files import write_model_files
    from trainer.nets import build_network

    info = get_info("300w")
    torch.manual_seed(0)
    net = build_network("s-hrnet-300w", 68).eval()
    write_model_files(tmp_path, net, dataset="300w", info=info, input_size=64, config={},
                      metrics={"nme": 0.1}, kind="test", run_id=None)
    (tmp_path / "weights.pt").unlink()  # the served model's case: ONNX only
    swap = list(range(68))
    for a, b in info.flip_pairs:
        swap[a], swap[b] = b, a

    def mirrored(heatmaps):
        return heatmaps[:, swap].flip(-1)

    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        by_hand = (net(images) + mirrored(net(images.flip(-1)))) / 2
    teacher = load_teacher(str(tmp_path), make_config("tiny", "300w", {"teacher_flip": True}), 68,
                           flip_pairs=info.flip_pairs)
    got = teacher(images)
    assert got.shape == (3, 68, 16, 16)
    assert torch.allclose(got, by_hand, atol=1e-4), (got - by_hand).abs().max()
    assert torch.allclose(teacher(images.flip(-1)), mirrored(got), atol=1e-4)
    plain = load_teacher(str(tmp_path), make_config("tiny", "300w"), 68)
    assert not torch.allclose(plain(images.flip(-1)), mirrored(plain(images)), atol=1e-3)
    with pytest.raises(ValueError, match="flip_pairs"):
        load_teacher(str(tmp_path), make_config("tiny", "300w", {"teacher_flip": True}), 68)

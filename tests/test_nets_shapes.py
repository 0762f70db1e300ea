import json

import pytest
import torch

from trainer.nets import PRESETS, ArchSpec, ArchSpecError, SDHRNet, build_network, preset_spec, supernet_spec

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=PRESETS)
def preset_net(request):
    torch.manual_seed(0)
    return request.param, build_network(request.param).eval()


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (64, 128)])
def test_heatmaps_at_quarter_resolution(preset_net, size):
    name, net = preset_net
    h, w = size
    with torch.no_grad():
        out = net(torch.randn(2, 3, h, w))
    expected_m = {"s-hrnet-wflw": 98, "s-hrnet-cofw": 29}.get(name, 68)
    assert out.shape == (2, expected_m, h // 4, w // 4)
    assert torch.isfinite(out).all()


def test_landmark_override_and_head_submodule():
    net = build_network("s-hrnet-cofw", num_landmarks=5)
    assert net.head.classifier.out_channels == 5
    teacher = build_network("hrnetv2-w18", num_landmarks=7)
    assert teacher.head.classifier.out_channels == 7


def test_supernet_has_132_alphas_and_param_split():
    net = SDHRNet(supernet_spec(68))
    alphas = net.alpha_parameters()
    weights = net.weight_parameters()
    assert len(alphas) == 4 + 8 * 16 == 132
    assert all(a.ndim == 0 and float(a.detach()) == 1.0 for a in alphas)
    ids_a, ids_w = {id(p) for p in alphas}, {id(p) for p in weights}
    assert not ids_a & ids_w
    assert ids_a | ids_w == {id(p) for p in net.parameters()}
    assert torch.isclose(net.alpha_l1(), torch.tensor(132.0))


def test_current_spec_reports_trained_alphas():
    net = SDHRNet(preset_spec("s-hrnet-300w"))
    with torch.no_grad():
        for i, p in enumerate(net.alpha_parameters()):
            p.fill_(0.01 * (i + 1))
    spec = net.current_spec()
    assert spec.edge_set() == preset_spec("s-hrnet-300w").edge_set()
    values = [a for *_, a in spec.edges()]
    assert values == pytest.approx([0.01 * (i + 1) for i in range(len(values))])


def test_spec_json_round_trip(tmp_path):
    spec = preset_spec("s-hrnet-wflw")
    path = spec.save(tmp_path / "spec.json")
    data = json.loads(path.read_text())
    assert data["format"] == "sdhrnet-archspec" and data["version"] == 1
    assert data["num_landmarks"] == 98
    assert ArchSpec.load(path) == spec
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    net = build_network(str(path))
    assert net.spec == spec


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stages"]["s3"]["b0"].update({"s1b0": 1.0}), "must come from stage 2"),
    (lambda d: d["stages"]["s2"]["b0"].update({"s1b0": 1.0}), "only 'stem'"),
    (lambda d: d["stages"]["s4"]["b0"].update({"s3b2": 1.0}), "not a kept branch"),
    (lambda d: d["stages"].update({"s11": {}}), "unknown stages"),
    (lambda d: d.update({"version": 99}), "version"),
    (lambda d: d["stages"].pop("s10"), "s10 has no branches"),
])
def test_bad_specs_are_rejected_with_a_hint(mutate, message):
    d = preset_spec("s-hrnet-300w").to_dict()
    mutate(d)
    with pytest.raises(ArchSpecError, match=message):
        ArchSpec.from_dict(d)


def test_unknown_arch_names_the_choices():
    with pytest.raises(ValueError, match="hrsupernet"):
        build_network("resnet50")


def test_lone_identity_input_skips_relu():
    net = SDHRNet(preset_spec("s-hrnet-300w"))
    assert net.stages["s5"].fusions["b0"].relu is None  # s5b0 <- s4b0 only
    assert net.stages["s2"].fusions["b0"].relu is not None  # stem -> b0 is a conv
    assert net.stages["s6"].fusions["b0"].relu is not None  # two inputs
    assert len(net.stages["s10"].blocks) == 0 and len(net.stages["s9"].blocks["b0"]) == 4

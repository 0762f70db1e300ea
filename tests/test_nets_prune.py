import pytest
import torch

from trainer.nets import SDHRNet, build, preset_spec, prune, supernet_spec
from trainer.nets.prune import PruneError

torch.set_num_threads(1)
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def trained_supernet():
    """A supernet with non-trivial weights, BN statistics and alphas (as if trained)."""
    torch.manual_seed(1)
    net = SDHRNet(supernet_spec(68))
    with torch.no_grad():
        for p in net.alpha_parameters():
            p.uniform_(0.2, 1.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _set_alphas(net, rule):
    with torch.no_grad():
        for s, b, n, p in net.named_alphas():
            value = rule(s, b, n, float(p))
            p.fill_(value)


def test_threshold_zero_gives_the_supernet_back(trained_supernet):
    spec = prune(trained_supernet, 0.0)
    assert spec == trained_supernet.current_spec()
    assert spec.edge_set() == supernet_spec(68).edge_set()
    assert prune(supernet_spec(68), 0.0) == supernet_spec(68)


@pytest.mark.parametrize("name, threshold", [("s-hrnet-300w", 0.0017), ("s-hrnet-wflw", 0.002), ("s-hrnet-cofw", 0.0042)])
def test_zeroing_alphas_outside_published_edges_reproduces_preset(name, threshold):
    preset = preset_spec(name)
    net = SDHRNet(supernet_spec(preset.num_landmarks))
    keep = preset.edge_set()
    # edges outside the preset get |alpha| just below the threshold, kept ones exactly 1.0
    _set_alphas(net, lambda s, b, n, a: 1.0 if (s, b, n) in keep else -0.999 * threshold)
    assert prune(net, threshold) == preset


def test_branch_without_inputs_and_its_outgoing_edges_are_dropped():
    spec = supernet_spec(68)
    stages = spec.to_dict()["stages"]
    for inp in stages["s5"]["b2"]:
        stages["s5"]["b2"][inp] = 0.0
    pruned = prune(type(spec)(68, stages), 1e-3)
    assert "b2" not in pruned.stages["s5"]
    assert not any(n == "s5b2" for _, _, n, _ in pruned.edges())
    assert pruned.num_edges == 132 - 4 - 4


def test_dead_end_branch_is_dropped_by_default():
    stages = supernet_spec(68).to_dict()["stages"]
    for out in stages["s9"]:
        stages["s9"][out]["s8b1"] = 0.0  # s8b1 still has inputs but feeds nothing
    spec = type(supernet_spec(68))(68, stages)
    kept = prune(spec, 1e-3, drop_dead_ends=False)
    assert "b1" in kept.stages["s8"] and kept.num_edges == 128
    dropped = prune(spec, 1e-3)
    assert "b1" not in dropped.stages["s8"] and dropped.num_edges == 128 - 4


def test_pruning_everything_is_an_error():
    with pytest.raises(PruneError, match="smaller threshold"):
        prune(supernet_spec(68), 2.0)


def test_slim_net_carries_every_kept_tensor(trained_supernet):
    spec = preset_spec("s-hrnet-300w")
    slim = build(spec, trained_supernet)
    src = trained_supernet.state_dict()
    for key, value in slim.state_dict().items():
        if key.startswith("head.") or ".alpha." in key:
            continue
        assert torch.equal(value, src[key]), key
    # all four final branches kept (270 channels): the head is identical too
    for key, value in slim.state_dict().items():
        if key.startswith("head."):
            assert torch.equal(value, src[key]), key
    # alphas come from the spec (the published presets carry 1.0)
    assert all(float(p.detach()) == 1.0 for p in slim.alpha_parameters())


def test_slim_head_keeps_rows_and_columns_of_kept_branches(trained_supernet):
    slim = build(preset_spec("s-hrnet-wflw", 68), trained_supernet)  # final branches b0, b1, b2
    src = trained_supernet.head.fuse[0].weight
    idx = torch.arange(18 + 36 + 72)
    assert torch.equal(slim.head.fuse[0].weight, src[idx][:, idx])
    assert torch.equal(slim.head.classifier.weight, trained_supernet.head.classifier.weight[:, idx])
    assert torch.equal(slim.head.fuse[1].running_var, trained_supernet.head.fuse[1].running_var[idx])


def test_spec_equal_to_supernet_gives_identical_outputs(trained_supernet):
    copy = build(prune(trained_supernet, 0.0), trained_supernet).eval()
    with torch.no_grad():
        assert torch.equal(copy(X), trained_supernet(X))


def test_pruning_zero_alpha_edges_keeps_the_function(trained_supernet):
    # s9b2 loses all inputs (so it and its edges into s10 go); every other fusion keeps >= 3 inputs
    zeroed = {("s9", "b2", f"s8b{j}") for j in range(4)} | {("s10", f"b{k}", "s9b2") for k in range(4)} \
        | {("s4", "b1", "s3b3"), ("s7", "b0", "s6b2")}
    source = build(trained_supernet.current_spec(), trained_supernet).eval()
    _set_alphas(source, lambda s, b, n, a: 0.0 if (s, b, n) in zeroed else a)
    spec = prune(source, 1e-6)
    assert "b2" not in spec.stages["s9"] and spec.num_edges == 132 - len(zeroed)
    slim = build(spec, source).eval()
    with torch.no_grad():
        torch.testing.assert_close(slim(X), source(X), rtol=1e-5, atol=1e-6)


def test_build_refuses_specs_the_source_does_not_contain():
    small = SDHRNet(preset_spec("s-hrnet-300w"))
    with pytest.raises(PruneError, match="edges the source lacks"):
        build(supernet_spec(68), small)
    with pytest.raises(PruneError, match="landmarks"):
        build(preset_spec("s-hrnet-cofw"), small)

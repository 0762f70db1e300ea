"""The slimming update on a toy fusion: L1 drives the factors of useless edges toward zero."""
import pytest
import torch
from torch import nn

from trainer.slim import slimming_step


class ToyFusion(nn.Module):
    """y = sum_j alpha_j * w_j * x_j with feature 0 carrying the signal and the others carrying none."""

    def __init__(self, edges: int = 3):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(edges))
        self.w = nn.Parameter(torch.ones(edges))

    def forward(self, x):
        return (self.alpha * self.w * x).sum(-1)

    def alpha_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [self.w]

    def alpha_l1(self):
        return self.alpha.abs().sum()


def _train(l1_lambda: float, steps: int = 600) -> torch.Tensor:
    torch.manual_seed(0)
    model = ToyFusion()
    opt_w = torch.optim.Adam(model.weight_parameters(), lr=1e-2)
    opt_a = torch.optim.Adam(model.alpha_parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for i in range(steps):
        signal = torch.randn(64, generator=g)
        # feature 1: a dead branch (all zeros); feature 2: constant, uninformative and absorbed by the weight
        x = torch.stack([signal, torch.zeros(64), torch.zeros(64)], -1)
        slimming_step(model, x, 2.0 * signal, opt_w, opt_a, update_alpha=i % 2 == 1, l1_lambda=l1_lambda)
    return model.alpha.detach().abs()


def test_l1_drives_useless_alphas_to_zero_and_keeps_the_useful_one():
    with_l1 = _train(l1_lambda=0.05)
    without = _train(l1_lambda=0.0)
    assert (without[1:] > 0.99).all(), "without L1 nothing moves the factors of dead edges"
    assert (with_l1[1:] < 0.05).all(), f"L1 should shrink dead-edge factors, got {with_l1.tolist()}"
    assert with_l1[0] > 0.3, "the edge that carries the signal must survive"


def test_alternation_updates_only_one_group_per_step():
    model = ToyFusion()
    opt_w = torch.optim.Adam(model.weight_parameters(), lr=0.1)
    opt_a = torch.optim.Adam(model.alpha_parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randn(8)
    a0, w0 = model.alpha.detach().clone(), model.w.detach().clone()
    slimming_step(model, x, y, opt_w, opt_a, update_alpha=False, l1_lambda=0.1)
    assert torch.equal(model.alpha.detach(), a0) and not torch.equal(model.w.detach(), w0)
    w1 = model.w.detach().clone()
    slimming_step(model, x, y, opt_w, opt_a, update_alpha=True, l1_lambda=0.1)
    assert torch.equal(model.w.detach(), w1) and not torch.equal(model.alpha.detach(), a0)


def test_relative_threshold_scales_with_the_largest_alpha():
    from sdhrnet.train_config import make_config
    from trainer.nets.prune import prune
    from trainer.nets.sdhrnet import SDHRNet
    from trainer.nets.spec import supernet_spec
    from trainer.slim import effective_threshold

    net = SDHRNet(supernet_spec(68))
    with torch.no_grad():
        for i, p in enumerate(net.alpha_parameters()):
            p.fill_(0.004 if i % 3 else 0.04)  # a common shrink: every factor tiny, a third 10x the rest
    absolute = make_config("paper", "300w")
    relative = make_config("paper", "300w", {"prune_relative": True, "prune_threshold": 0.5})
    assert effective_threshold(net, absolute) == absolute.prune_threshold
    assert abs(effective_threshold(net, relative) - 0.02) < 1e-9
    kept = prune(net, effective_threshold(net, relative))
    assert all(abs(a) > 0.03 for br in kept.stages.values() for inputs in br.values() for a in inputs.values())
    assert prune(net, absolute.prune_threshold).edge_set() == net.spec.edge_set(), "absolute 0.0017 keeps all"


def test_a_parameter_budget_raises_the_threshold_just_enough():
    from trainer.complexity import count_params
    from sdhrnet.train_config import make_config
    from trainer.nets.prune import build, prune
    from trainer.nets.sdhrnet import SDHRNet
    from trainer.nets.spec import supernet_spec
    from trainer.slim import effective_threshold

    net = SDHRNet(supernet_spec(68))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.alpha_parameters():
            p.fill_(0.5 + 0.5 * float(torch.rand((), generator=g)))  # alphas that have not separated
    relative = make_config("cpu", "300w", {"prune_max_params": None})
    assert count_params(build(prune(net, effective_threshold(net, relative)))) > 3_000_000, "10% keeps everything"
    budget = make_config("cpu", "300w", {"prune_max_params": 1_000_000})
    t = effective_threshold(net, budget)
    assert count_params(build(prune(net, t))) <= 1_000_000
    alphas = [abs(float(p.detach())) for p in net.alpha_parameters()]
    smaller = max(a for a in alphas if a < t)
    assert count_params(build(prune(net, smaller))) > 1_000_000, "the threshold should be the lowest that fits"
    generous = make_config("cpu", "300w", {"prune_max_params": 10_000_000})
    assert effective_threshold(net, generous) == effective_threshold(net, relative), "a loose budget changes nothing"


def test_an_unreachable_budget_prunes_as_far_as_a_path_survives():
    from trainer.complexity import count_params
    from trainer.nets.prune import PruneError, build, prune, threshold_for_budget
    from trainer.nets.sdhrnet import SDHRNet
    from trainer.nets.spec import supernet_spec

    net = SDHRNet(supernet_spec(68))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.alpha_parameters():
            p.fill_(0.5 + 0.5 * float(torch.rand((), generator=g)))
    t = threshold_for_budget(net, 1)
    smallest = count_params(build(prune(net, t)))
    assert smallest < count_params(net)
    higher = min(abs(float(p.detach())) for p in net.alpha_parameters() if abs(float(p.detach())) > t)
    with pytest.raises(PruneError):
        prune(net, higher)  # one more edge and some stage loses its last path


def _unseparated_supernet(seed):
    from trainer.nets.sdhrnet import SDHRNet
    from trainer.nets.spec import supernet_spec

    net = SDHRNet(supernet_spec(68))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.alpha_parameters():
            p.fill_(0.5 + 0.5 * float(torch.rand((), generator=g)))
    return net


def test_a_mac_budget_prunes_to_the_lowest_threshold_that_fits():
    from trainer.complexity import complexity
    from sdhrnet.train_config import make_config
    from trainer.nets.prune import build, prune
    from trainer.slim import effective_threshold

    net = _unseparated_supernet(2)
    full = complexity(net, 128)["macs"]
    cfg = make_config("cpu", "300w", {"prune_max_params": None, "prune_max_macs": full // 2})
    t = effective_threshold(net, cfg)
    assert complexity(build(prune(net, t)), 128)["macs"] <= full // 2
    smaller = max(abs(float(p.detach())) for p in net.alpha_parameters() if abs(float(p.detach())) < t)
    assert complexity(build(prune(net, smaller)), 128)["macs"] > full // 2


def test_a_latency_budget_prunes_to_the_lowest_threshold_whose_measured_latency_fits(monkeypatch):
    """The search over thresholds against a latency limit. Wall-clock time is replaced by a deterministic stand-in
    (proportional to MACs at the input size): real timings of these nets differ by only 1.4x on an idle machine
    and by 2.9x on a loaded one, so no limit between them held on every machine (a CI run failed so). Real
    latency is measured in bench/ and by the sweep."""
    import trainer.budget
    from trainer.complexity import complexity
    from sdhrnet.train_config import make_config
    from trainer.nets.prune import build, prune, threshold_for_budget
    from trainer.slim import effective_threshold

    size = 64
    measured = []

    def fake_ms(net, input_size, threads=1, calls=20):
        measured.append(input_size)
        return complexity(net, input_size)["macs"] / 1e7

    monkeypatch.setattr(trainer.budget, "measure_ms", fake_ms)
    net = _unseparated_supernet(3)
    full_ms = fake_ms(build(prune(net, 0.0)), size)
    smallest_ms = fake_ms(build(prune(net, threshold_for_budget(net, 1))), size)
    limit = (full_ms * smallest_ms) ** 0.5
    cfg = make_config("tiny", "300w", {"prune_threshold": 0.0, "prune_max_ms": limit, "input_size": size})
    measured.clear()
    t = effective_threshold(net, cfg)
    assert measured and set(measured) == {size}, "the limit is checked by measuring at the training input size"
    assert t > 0 and fake_ms(build(prune(net, t)), size) <= limit
    smaller = max(abs(float(p.detach())) for p in net.alpha_parameters() if abs(float(p.detach())) < t)
    assert fake_ms(build(prune(net, smaller)), size) > limit, "the lowest threshold that fits, not any"
    measured.clear()
    assert effective_threshold(net, cfg, measure_latency=False) == 0.0 and not measured


def test_budgets_must_be_positive():
    from pydantic import ValidationError

    from sdhrnet.train_config import make_config

    for key in ("prune_max_params", "prune_max_macs", "prune_max_ms"):
        with pytest.raises(ValidationError, match="positive"):
            make_config("cpu", "300w", {key: 0})

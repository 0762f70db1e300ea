"""sam_rho: sharpness-aware updates of the distillation students."""
import copy

import pytest
import torch
from torch import nn

from sdhrnet.train_config import make_config
from trainer.distill import distill_step
from trainer.sharpness import ascended


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1))


def test_ascent_moves_each_model_by_rho_along_its_gradient_and_leaves_no_trace():
    nets = [small_net(0).train(), small_net(1).train()]
    x = torch.randn(4, 3, 6, 6)
    for net in nets:
        net(x).square().mean().backward()
    before = [copy.deepcopy(n.state_dict()) for n in nets]
    with ascended(nets, 0.05):
        for net, saved in zip(nets, before):
            moved = torch.cat([(p.detach() - saved[k]).flatten() for k, p in net.named_parameters()])
            grads = torch.cat([p.grad.flatten() for p in net.parameters()])
            assert torch.linalg.vector_norm(moved).item() == pytest.approx(0.05, rel=1e-4)
            assert torch.nn.functional.cosine_similarity(moved, grads, dim=0).item() == pytest.approx(1.0, abs=1e-5)
            net(x * 3 + 1)  # a forward pass in training mode inside the block
            assert torch.equal(net[1].running_mean, saved["1.running_mean"]), "the second pass keeps BN statistics"
    for net, saved in zip(nets, before):
        for key, value in net.state_dict().items():
            if key != "1.num_batches_tracked":
                assert torch.allclose(value, saved[key], atol=1e-7), key
        assert net[1].momentum == 0.1, "BN momentum comes back"


def step_once(rho: float) -> list[torch.Tensor]:
    cfg = make_config("tiny", "300w", {"sam_rho": rho, "masked_inputs": False, "heatmap_loss": "awing",
                                       "peer_loss": "heatmap", "lambda_peer": 0.25})
    students = [small_net(0).train(), small_net(1).train()]
    opts = [torch.optim.SGD(s.parameters(), lr=0.1) for s in students]
    torch.manual_seed(2)
    images, heatmaps = torch.randn(4, 3, 6, 6), torch.rand(4, 4, 6, 6)
    losses = distill_step(students, opts, None, images, heatmaps, cfg, None)
    assert set(losses) >= {"s1_total", "s2_total", "s1_kd_peer"}
    return [torch.cat([p.detach().flatten() for p in s.parameters()]) for s in students]


def test_a_sharpness_aware_step_takes_another_gradient_from_the_same_start():
    plain, sharp = step_once(0.0), step_once(0.05)
    again = step_once(0.05)
    for a, b, c in zip(plain, sharp, again):
        assert not torch.allclose(a, b), "the gradient at the ascended point differs"
        assert torch.equal(b, c), "and is deterministic"
        assert (a - b).norm() < 0.5 * a.norm(), "a nearby point, not another model"


@pytest.mark.parametrize("rho", [-0.01, 1.5])
def test_a_radius_outside_0_to_1_is_refused(rho):
    with pytest.raises(ValueError, match="sam_rho"):
        make_config("tiny", "300w", {"sam_rho": rho})

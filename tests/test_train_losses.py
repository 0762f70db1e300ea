import pytest
import torch

from trainer.losses import kd_loss, kd_term, student_loss


def test_kd_is_zero_for_identical_heatmaps_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 5, 8, 8, generator=g)
    assert kd_loss(a, a.clone()).abs().item() < 1e-7
    b = torch.randn(2, 5, 8, 8, generator=g)
    assert kd_loss(a, b).item() > 1e-3
    # KL is asymmetric: the target is the first argument
    assert abs(kd_loss(a, b).item() - kd_loss(b, a).item()) > 1e-6


def test_kd_matches_hand_computed_kl():
    p = torch.tensor([[[[0.0, 1.0]]]])  # one sample, one landmark, 1x2 map
    q = torch.tensor([[[[1.0, 0.0]]]])
    sp, sq = p.flatten().softmax(0), q.flatten().softmax(0)
    expected = (sp * (sp.log() - sq.log())).sum().item()
    assert abs(kd_loss(p, q).item() - expected) < 1e-6


def test_kd_does_not_backpropagate_into_the_target():
    target = torch.randn(1, 2, 4, 4, requires_grad=True)
    student = torch.randn(1, 2, 4, 4, requires_grad=True)
    kd_loss(target, student).backward()
    assert target.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_student_loss_combines_terms_with_lambdas():
    g = torch.Generator().manual_seed(1)
    pred, gt, ens, teach = (torch.rand(2, 3, 4, 4, generator=g) for _ in range(4))
    total, parts = student_loss(pred, gt, ens, teach, lambda_peer=4.0, lambda_teacher=1.0)
    assert abs(parts["total"] - (parts["mse"] + 4.0 * parts["kd_peer"] + 1.0 * parts["kd_teacher"])) < 1e-5
    alone, parts_alone = student_loss(pred, gt, None, None, 4.0, 1.0)
    assert set(parts_alone) == {"mse", "total"} and abs(alone.item() - parts["mse"]) < 1e-6


def test_kd_temperature_keeps_the_flat_regime_scale_and_sharpens_the_comparison():
    g = torch.Generator().manual_seed(1)
    # two heatmaps whose peaks are one pixel apart, values in [0, 1] as the targets are
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    a = torch.exp(-((xx - 10) ** 2 + (yy - 12) ** 2) / 2).reshape(1, 1, 32, 32)
    b = torch.exp(-((xx - 11) ** 2 + (yy - 12) ** 2) / 2).reshape(1, 1, 32, 32)
    half_var = 0.5 * (a - b).flatten().var(unbiased=False).item()
    # the flatter the softmax, the closer T^2 KL comes to half the variance of the difference (an MSE-like pull)
    by_t = {t: kd_loss(a, b, t).item() for t in (0.1, 1.0, 8.0)}
    assert abs(by_t[8.0] - half_var) < 0.1 * half_var
    assert half_var < by_t[1.0] < 2 * half_var, "the paper's T=1 is already close to the flat regime"
    assert by_t[0.1] > 10 * by_t[1.0], "a low temperature compares the peaks, not the background"
    noise = torch.rand(1, 1, 32, 32, generator=g)
    assert kd_loss(noise, noise.clone(), 0.1).abs().item() < 1e-6


def test_kd_rampup_rises_from_near_zero_to_one_and_is_off_by_default():
    from trainer.losses import kd_rampup

    weights = [kd_rampup(e, 10) for e in range(12)]
    assert weights[0] < 0.01 and weights[10] == weights[11] == 1.0
    assert all(a < b for a, b in zip(weights[:10], weights[1:11])), weights
    assert kd_rampup(0, 0) == 1.0, "0 ramp-up epochs: the paper's full weight from the first step"


def test_a_zero_kd_weight_leaves_only_the_heatmap_mse():
    from sdhrnet.train_config import make_config
    from tests.test_train_distill import Recorder, _batch
    from trainer.distill import distill_step

    cfg = make_config("tiny", "300w", {"use_teacher": False, "masked_inputs": False})
    images, heatmaps = _batch()
    torch.manual_seed(0)
    students = [Recorder(), Recorder()]
    opts = [torch.optim.Adam(s.parameters()) for s in students]
    off = distill_step(students, opts, None, images, heatmaps, cfg, None, kd_weight=0.0)
    on = distill_step(students, opts, None, images, heatmaps, cfg, None, kd_weight=1.0)
    assert off["s1_total"] == off["s1_mse"] and off["s2_total"] == off["s2_mse"]
    assert on["s1_kd_peer"] > 0 and on["s1_total"] > on["s1_mse"]


def _peak(x: float, y: float, size: int = 32, sigma: float = 1.5) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    return torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)).reshape(1, 1, size, size)


def test_adaptive_wing_is_zero_at_the_target_continuous_at_theta_and_grows_with_the_error():
    from trainer.losses import adaptive_wing

    gt = _peak(10.3, 12.7)
    assert adaptive_wing(gt, gt.clone()).item() < 1e-7
    # one pixel with target y and error just below / above theta: the two branches meet there
    for y in (0.0, 0.5, 1.0):
        t = torch.full((1, 1, 1, 1), y)
        below, above = (adaptive_wing(t + d, t, foreground_weight=0.0).item() for d in (0.5 - 1e-4, 0.5 + 1e-4))
        assert abs(above - below) < 1e-2 * max(below, 1e-3)
    errors = [adaptive_wing(_peak(10.3 + dx, 12.7), gt).item() for dx in (0.25, 0.5, 1.0, 2.0)]
    assert errors == sorted(errors) and errors[0] > 0


def test_adaptive_wing_pulls_harder_than_mse_where_the_peak_is():
    """Why it exists: MSE's gradient fades as a peak gets close to its target; Adaptive Wing's does not, and the
    weighted loss map adds the foreground's weight. Compared as the share of the gradient that lands on the peak's
    3x3 neighbourhood for a peak 40% too low."""
    from trainer.losses import adaptive_wing, heatmap_mse

    gt = _peak(10.0, 12.0)
    shares = {}
    for name, fn in (("mse", heatmap_mse), ("awing", adaptive_wing)):
        pred = (0.6 * gt).requires_grad_(True)
        fn(pred, gt).backward()
        g = pred.grad.abs()[0, 0]
        shares[name] = (g[11:14, 9:12].sum() / g.sum()).item()
    assert shares["awing"] > shares["mse"]


def test_adaptive_wing_has_finite_gradients_against_a_heatmap_that_overshoots_one():
    """A teacher's or the peers' heatmaps can exceed 1.1, and a bf16 prediction can equal its target exactly: the
    exponent alpha - y below 1 then made the gradient 0 * inf (a triple-KD run went NaN in its first epoch)."""
    from trainer.losses import adaptive_wing

    target = 1.5 * _peak(10.0, 12.0)
    pred = target.clone().requires_grad_(True)
    adaptive_wing(pred, target).backward()
    assert torch.isfinite(pred.grad).all()
    pred = (0.5 * target).requires_grad_(True)
    adaptive_wing(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_every_configurable_heatmap_loss_is_implemented_and_trains():
    import typing

    from sdhrnet.train_config import HeatmapLoss
    from trainer.losses import HEATMAP_LOSSES
    from trainer.teacher import supervised_step

    assert set(typing.get_args(HeatmapLoss)) == set(HEATMAP_LOSSES)
    net = torch.nn.Conv2d(3, 2, 3, padding=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.cat([_peak(5.0, 6.0, 16), _peak(9.0, 3.0, 16)], dim=1).expand(4, -1, -1, -1)
    first = supervised_step(net, x, y, opt, "awing")["awing"]
    for _ in range(30):
        last = supervised_step(net, x, y, opt, "awing")["awing"]
    assert last < 0.5 * first


@pytest.mark.parametrize("term", ["teacher", "peer"])
def test_heatmap_distillation_pulls_toward_its_target_at_the_supervised_scale(term):
    from trainer.losses import adaptive_wing

    gt, target = _peak(10.0, 12.0), 0.7 * _peak(11.0, 12.0)
    pred = _peak(10.5, 12.0)
    # the peer term's target is the students' mean, the teacher term's the teacher's heatmaps
    ensemble, teacher, lambdas = (target, None, (1.0, 0.0)) if term == "peer" else (None, target, (0.0, 1.0))
    _, kl = student_loss(pred, gt, ensemble, teacher, *lambdas, loss_kind="awing")
    total, hm = student_loss(pred, gt, ensemble, teacher, *lambdas, loss_kind="awing", **{f"{term}_kind": "heatmap"})
    key = f"kd_{term}"
    assert abs(kl[key] - kd_loss(target, pred)) < 1e-7
    assert abs(hm[key] - adaptive_wing(pred, target)) < 1e-6
    # the reason the options exist: next to Adaptive Wing the paper's KL is negligible, heatmap distillation is not
    assert kl[key] < 1e-2 * kl["awing"] and hm[key] > 0.3 * hm["awing"]
    assert abs(total - (hm["awing"] + hm[key])) < 1e-6 and set(hm) == {"awing", key, "total"}


def test_the_cpu_preset_trains_with_adaptive_wing_and_slims_with_mse():
    from sdhrnet.train_config import make_config

    for kind in ("teacher", "distill", "sweep"):
        cfg = make_config("cpu", "300w", kind=kind)
        assert (cfg.heatmap_loss, cfg.teacher_loss) == ("awing", "heatmap")
    assert make_config("cpu", "300w", kind="slim").heatmap_loss == "mse"
    assert make_config("paper", "300w", kind="distill").heatmap_loss == "mse"
    assert make_config("paper", "300w").teacher_loss == "kl"


def _lowered_peak(offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A target heatmap with one peak of 1 and a prediction `offset` below it everywhere on the peak."""
    target = torch.zeros(1, 1, 8, 8)
    target[..., 3:5, 3:5] = 1.0
    return (target - offset * (target > 0)).requires_grad_(), target.requires_grad_()


def test_an_adaptive_wing_kd_term_keeps_pulling_as_its_value_vanishes():
    # why a peer term at 2% of the loss still slows training (bench/kd_gradients.py): near a peak Adaptive Wing is
    # ~|error|^1.1, so a 10x smaller disagreement gives a ~12x smaller value but a gradient only ~1.2x smaller;
    # under MSE both shrink with the error
    shrink = {}
    for kind in ("awing", "mse"):
        values, grads = [], []
        for offset in (0.1, 0.01):
            pred, target = _lowered_peak(offset)
            loss = kd_term(pred, target, "heatmap", kind)
            loss.backward()
            values.append(loss.item())
            grads.append(pred.grad.norm().item())
            assert target.grad is None
        shrink[kind] = (values[0] / values[1], grads[0] / grads[1])
    assert shrink["awing"][0] > 10 and shrink["awing"][1] < 1.5
    assert shrink["mse"][1] > 9


def test_kd_term_in_kl_form_is_the_spatial_softmax_kd():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    assert torch.allclose(kd_term(b, a, "kl", "awing", 0.5), kd_loss(a, b, 0.5))

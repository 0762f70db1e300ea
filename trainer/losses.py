"""Losses of the paper (heatmap MSE, L1 on the fusion factors, spatial-softmax KD) and Adaptive Wing."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # fp32 even under bf16 autocast: the Gaussian tails are far below bf16's resolution near 1
    return F.mse_loss(pred.float(), target.float())


def adaptive_wing(pred: torch.Tensor, target: torch.Tensor, omega: float = 14.0, theta: float = 0.5,
                  epsilon: float = 1.0, alpha: float = 2.1, foreground_weight: float = 10.0) -> torch.Tensor:
    """Adaptive Wing loss with its weighted loss map (Wang, Bo and Fuxin, ICCV 2019), at the authors' constants.

    Why: MSE on Gaussian heatmaps is dominated by the ~97% background pixels and barely penalises a peak that is
    slightly off or too low, so the network learns blurred, under-height peaks; the exponent alpha - y makes the
    loss behave like L1 near the peak (y = 1) and like MSE on the background, and the loss map weighs the 3x3-dilated
    foreground (target > 0.2) `foreground_weight` + 1 times.

    The target is clamped to [0, 1], the loss's domain: a teacher's or the peers' heatmaps can overshoot 1.1, where
    the exponent drops below 1 and the gradient at pred == target is 0 * inf = NaN (bf16 predictions often equal
    their peers' mean exactly, so a triple-KD run went NaN in its first epoch)."""
    pred, target = pred.float(), target.float().clamp(0.0, 1.0)
    diff = (pred - target).abs()
    power = alpha - target
    ratio = theta / epsilon
    a = omega * (1 / (1 + ratio ** power)) * power * ratio ** (power - 1) / epsilon
    c = theta * a - omega * torch.log1p(ratio ** power)
    loss = torch.where(diff < theta, omega * torch.log1p((diff / epsilon) ** power), a * diff - c)
    n, m, h, w = target.shape
    foreground = F.max_pool2d((target > 0.2).float().reshape(n * m, 1, h, w), 3, stride=1, padding=1)
    weight = 1 + foreground_weight * foreground.reshape(n, m, h, w)
    return (loss * weight).mean()


# the names are TrainConfig.heatmap_loss's choices
HEATMAP_LOSSES = {"mse": heatmap_mse, "awing": adaptive_wing}


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    return HEATMAP_LOSSES[kind](pred, target)


def alpha_l1(alphas: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.stack([a.abs().sum() for a in alphas]).sum()


def kd_loss(target_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KD(P_target || P_student): mean over samples and landmarks of KL between spatial softmaxes of the heatmaps
    divided by `temperature`, times temperature^2.

    The target is detached: the ensemble and the teacher are fixed targets for the student. At temperature 1 (the
    paper) a softmax over heatmap values in [0, 1] is nearly flat (a peak of 1 among 1024 positions weighs 2.7x a
    background one), so the KL is about half the variance of the heatmap difference, an MSE-like pull; a
    temperature below 1 makes it compare peak locations. The T^2 factor keeps the term's scale in that flat
    regime independent of T, so the lambdas keep their meaning.
    """
    n, m = student_logits.shape[:2]
    log_q = F.log_softmax(student_logits.float().reshape(n, m, -1) / temperature, dim=-1)
    log_p = F.log_softmax(target_logits.detach().float().reshape(n, m, -1) / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
    return kl.mean() * temperature ** 2


def kd_rampup(epoch: int, rampup_epochs: float) -> float:
    """The weight of the KD terms in `epoch` (0-based): 0 -> 1 along exp(-5 (1 - t)^2) over `rampup_epochs`, the
    consistency ramp-up of temporal ensembling and mean teacher; 1 throughout when `rampup_epochs` is 0.

    Why: early on every heatmap is nearly flat, and a pull toward the peers' average (itself flat) held the
    students on that plateau (two peers at dev NME 0.43 after 7 epochs where one student alone reached 0.15)."""
    if rampup_epochs <= 0 or epoch >= rampup_epochs:
        return 1.0
    return math.exp(-5.0 * (1.0 - epoch / rampup_epochs) ** 2)


def kd_term(pred: torch.Tensor, target: torch.Tensor, kind: str, loss_kind: str = "mse",
            temperature: float = 1.0) -> torch.Tensor:
    """One distillation term against a detached target: the spatial-softmax KL (kind "kl") or the `loss_kind`
    heatmap loss against the target's heatmaps (kind "heatmap")."""
    return heatmap_loss(pred, target.detach(), loss_kind) if kind == "heatmap" else kd_loss(target, pred, temperature)


def student_loss(pred: torch.Tensor, gt: torch.Tensor, ensemble: torch.Tensor | None, teacher: torch.Tensor | None,
                 lambda_peer: float, lambda_teacher: float, temperature: float = 1.0,
                 loss_kind: str = "mse", teacher_kind: str = "kl",
                 peer_kind: str = "kl") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_Si = MSE(P_Si, G) (or the `loss_kind` heatmap loss) + lambda1 KD(P_E || P_Si) + lambda2 KD(P_T || P_Si);
    absent terms are skipped. A kind "heatmap" (teacher_kind, peer_kind) replaces that KD term by the `loss_kind`
    heatmap loss against the teacher's / the ensemble's heatmaps (heatmap distillation), whose scale matches the
    supervised term's whatever that loss is. The parts stay detached tensors: `.item()` here would block the host
    until the forward pass is done, leaving a GPU idle until the backward pass is queued."""
    supervised = heatmap_loss(pred, gt, loss_kind)
    parts = {loss_kind: supervised.detach()}
    total = supervised
    if ensemble is not None and lambda_peer:
        kd_e = kd_term(pred, ensemble, peer_kind, loss_kind, temperature)
        total = total + lambda_peer * kd_e
        parts["kd_peer"] = kd_e.detach()
    if teacher is not None and lambda_teacher:
        kd_t = kd_term(pred, teacher, teacher_kind, loss_kind, temperature)
        total = total + lambda_teacher * kd_t
        parts["kd_teacher"] = kd_t.detach()
    parts["total"] = total.detach()
    return total, parts

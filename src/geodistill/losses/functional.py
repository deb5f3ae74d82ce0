"""Distillation losses as pure functions. Notation: ``s`` student logits, ``t`` teacher logits
(B x K), ``p^T = softmax(z / T)``. Every batch reduction is a mean over the B samples. Teacher
tensors are always detached (and cast to the student's dtype) inside these functions, so no
gradient ever reaches the teacher.

Each function is registered as an objective term by the ``@term`` wrapper that follows it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geodistill.core.errors import GeodistillError

from .terms import LossInputs, term


def _check_T(T: float, name: str) -> None:
    if not T > 0:
        raise GeodistillError(f"loss '{name}': temperature T must be > 0, got {T}.")


def _teacher(t: Tensor, s: Tensor) -> Tensor:
    return t.detach().to(dtype=s.dtype)


def ce(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Hard-label cross-entropy ``-1/B sum_i log p(y_i | x_i)``, with label smoothing ``ls``
    the target becomes ``(1 - ls) * onehot + ls / K``."""
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


@term("ce", label="CE", params={"ls": 0.0}, needs=("target",))
def _ce_term(inp: LossInputs, ls: float) -> Tensor:
    return ce(inp.s_logits, inp.target, label_smoothing=ls)


def kl(s_logits: Tensor, t_logits: Tensor, T: float = 4.0) -> Tensor:
    """``T^2 * 1/B sum_i KL(p_t^T || p_s^T) = T^2/B sum_ik p_t log(p_t / p_s)`` (Hinton, Vinyals &
    Dean 2015, "Distilling the Knowledge in a Neural Network")."""
    _check_T(T, "kl")
    t = _teacher(t_logits, s_logits)
    log_ps = F.log_softmax(s_logits / T, dim=1)
    log_pt = F.log_softmax(t / T, dim=1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * T * T


@term("kl", label="KL", params={"T": 4.0}, needs=("t_logits",), show=("T",))
def _kl_term(inp: LossInputs, T: float) -> Tensor:
    return kl(inp.s_logits, inp.t_logits, T)


def soft_ce(s_logits: Tensor, t_logits: Tensor, T: float = 4.0) -> Tensor:
    """The thesis's soft-target categorical cross-entropy
    ``T^2 * 1/B sum_i -sum_k p_t^T log p_s^T``. It differs from `kl` by the teacher entropy (a
    constant in s), so its gradient with respect to the student equals KL's."""
    _check_T(T, "soft_ce")
    t = _teacher(t_logits, s_logits)
    pt = F.softmax(t / T, dim=1)
    return -(pt * F.log_softmax(s_logits / T, dim=1)).sum(dim=1).mean() * T * T


@term("soft_ce", label="softCE", params={"T": 4.0}, needs=("t_logits",), show=("T",), prose="soft CE")
def _soft_ce_term(inp: LossInputs, T: float) -> Tensor:
    return soft_ce(inp.s_logits, inp.t_logits, T)


def cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``1/B sum_i (1 - <a_i, b_i> / (|a_i| |b_i|))`` over flattened rows; ``b`` (the teacher
    side) is detached. 0 for identical rows, invariant to positive rescaling of either."""
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise GeodistillError(
            f"loss 'cosine': student shape {tuple(a.shape)} and teacher shape {tuple(b.shape)} "
            "differ; project the student features to the teacher's width first."
        )
    b = _teacher(b, a)
    return (1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=eps)).mean()


@term("cos_logits", label="cos(logits)", needs=("t_logits",), prose="cosine")
def _cos_logits_term(inp: LossInputs) -> Tensor:
    """``1 - cos(s_logits, t_logits)``."""
    return cosine(inp.s_logits, inp.t_logits)


@term(
    "cos_prob",
    label="cos(p)",
    params={"T": 1.0},
    needs=("t_logits",),
    show=("T",),
    formula_label=lambda p: f"cos(p, T={p['T']:g})",
    prose="cosine of probabilities",
)
def _cos_prob_term(inp: LossInputs, T: float) -> Tensor:
    """``1 - cos(p_s^T, p_t^T)``."""
    s = inp.s_logits
    t = inp.t_logits.detach().to(s.dtype)
    return cosine(F.softmax(s / T, dim=1), F.softmax(t / T, dim=1))


@term("cos_feat", label="cos(feat)", needs=("s_feat", "t_feat"), projects_features=True, prose="feature cosine")
def _cos_feat_term(inp: LossInputs) -> Tensor:
    """``1 - cos(P s_feat, t_feat)``; the objective applies its learned projector P first (a
    cosine form of the hint loss of FitNets, Romero et al. 2015)."""
    return cosine(inp.s_feat, inp.t_feat)


def mse(a: Tensor, b: Tensor) -> Tensor:
    """``1/(B·D) sum_ij (a_ij - b_ij)^2``, the mean squared difference over every element (as
    ``F.mse_loss``); ``b`` (the teacher side) is detached. Not scale-invariant, unlike cosine."""
    if a.shape != b.shape:
        raise GeodistillError(
            f"loss 'mse': student shape {tuple(a.shape)} and teacher shape {tuple(b.shape)} "
            "differ; project the student features to the teacher's width first."
        )
    return F.mse_loss(a, _teacher(b, a))


@term("mse_feat", label="MSE(feat)", needs=("s_feat", "t_feat"), projects_features=True, prose="feature MSE")
def _mse_feat_term(inp: LossInputs) -> Tensor:
    """``mean (P s_feat - t_feat)^2``: the FitNets L2 hint (Romero et al. 2015) on pooled
    features, the objective of timm's FeatureDistillationTask; P is the objective's projector."""
    return mse(inp.s_feat, inp.t_feat)


def nuclear_norm(w: Tensor) -> Tensor:
    """``||W||_* = sum of singular values`` of ``w`` reshaped to out x (in*k*k); differentiable
    (subgradient ``U V^T``)."""
    if w.ndim < 2:
        raise GeodistillError(f"loss 'nuclear_norm' needs a weight with >= 2 dims, got {w.ndim}.")
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord="nuc")


@term("nuc", label="‖W₁‖*", needs=("first_weight",), prose="nuclear norm")
def _nuc_term(inp: LossInputs) -> Tensor:
    return nuclear_norm(inp.first_weight)


def _kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``sum_i sum_k p log(p/q)`` from log-probabilities (terms with p = 0 count 0)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum()


def dkd(
    s_logits: Tensor, t_logits: Tensor, target: Tensor, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0
) -> Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022): ``alpha * TCKD + beta * NCKD``.

    With ``b = [p^T_y, 1 - p^T_y]`` the binary target / non-target split and ``p_hat`` the
    softmax of ``z / T`` over the K-1 non-target classes only:
    ``TCKD = T^2/B sum_i KL(b_t || b_s)`` and ``NCKD = T^2/B sum_i KL(p_hat_t || p_hat_s)``.
    """
    _check_T(T, "dkd")
    B, K = s_logits.shape
    if K < 2:
        raise GeodistillError("loss 'dkd' needs at least 2 classes.")
    t = _teacher(t_logits, s_logits)
    gt = F.one_hot(target, K).bool()
    zs, zt = s_logits / T, t / T

    def binary_log(z: Tensor) -> Tensor:
        log_all = torch.logsumexp(z, dim=1)
        log_target = z[gt] - log_all
        log_other = torch.logsumexp(z[~gt].view(B, K - 1), dim=1) - log_all
        return torch.stack([log_target, log_other], dim=1)

    tckd = _kl_rows(binary_log(zt), binary_log(zs)) / B * T * T
    log_hat_s = F.log_softmax(zs[~gt].view(B, K - 1), dim=1)
    log_hat_t = F.log_softmax(zt[~gt].view(B, K - 1), dim=1)
    nckd = _kl_rows(log_hat_t, log_hat_s) / B * T * T
    return alpha * tckd + beta * nckd


@term(
    "dkd",
    label="DKD",
    params={"alpha": 1.0, "beta": 8.0, "T": 4.0},
    needs=("t_logits", "target"),
    show=("alpha", "beta", "T"),
)
def _dkd_term(inp: LossInputs, alpha: float, beta: float, T: float) -> Tensor:
    return dkd(inp.s_logits, inp.t_logits, inp.target, alpha, beta, T)


def _pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return F.cosine_similarity(a, b, dim=1, eps=eps)


def dist(s_logits: Tensor, t_logits: Tensor, beta: float = 1.0, gamma: float = 1.0, T: float = 1.0) -> Tensor:
    """DIST (Huang et al., NeurIPS 2022): ``beta * inter + gamma * intra`` on ``p^T``.

    ``inter = T^2 (1 - 1/B sum_i rho(p_s[i, :], p_t[i, :]))`` (relation across classes per
    sample), ``intra = T^2 (1 - 1/K sum_k rho(p_s[:, k], p_t[:, k]))`` (relation across the
    batch per class), with ``rho`` the Pearson correlation.
    """
    _check_T(T, "dist")
    t = _teacher(t_logits, s_logits)
    ps, pt = F.softmax(s_logits / T, dim=1), F.softmax(t / T, dim=1)
    inter = (1.0 - _pearson_rows(ps, pt).mean()) * T * T
    intra = (1.0 - _pearson_rows(ps.t(), pt.t()).mean()) * T * T
    return beta * inter + gamma * intra


@term(
    "dist",
    label="DIST",
    params={"beta": 1.0, "gamma": 1.0, "T": 1.0},
    needs=("t_logits",),
    show=("beta", "gamma", "T"),
)
def _dist_term(inp: LossInputs, beta: float, gamma: float, T: float) -> Tensor:
    return dist(inp.s_logits, inp.t_logits, beta, gamma, T)

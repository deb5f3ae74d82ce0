"""Loss functions pinned against hand / numpy computations; Objective parsing and behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geodistill.core.errors import GeodistillError
from geodistill.losses import PRESETS, LossInputs, Objective, ce, cosine, dist, dkd, kl, mse, nuclear_norm, soft_ce
from geodistill.losses.objective import list_presets

S = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
T_ = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 1.5]])
Y = np.array([1, 2])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tt(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# ----- hand-computed values ----------------------------------------------------------------


def test_ce_literal_and_numpy():
    # two equal logits: -log(1/2) = log 2
    assert ce(torch.zeros(1, 2), torch.tensor([0])).item() == pytest.approx(math.log(2))
    p = softmax(S)
    want = -np.mean(np.log(p[np.arange(2), Y]))
    assert ce(tt(S), torch.tensor(Y)).item() == pytest.approx(want, rel=1e-12)
    ls = 0.1  # target (1-ls)*onehot + ls/K
    q = (1 - ls) * np.eye(3)[Y] + ls / 3
    want_ls = -np.mean((q * np.log(p)).sum(1))
    assert ce(tt(S), torch.tensor(Y), label_smoothing=ls).item() == pytest.approx(want_ls, rel=1e-12)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kl_and_soft_ce_match_numpy(T):
    ps, pt = softmax(S / T), softmax(T_ / T)
    want_kl = T * T * np.mean((pt * (np.log(pt) - np.log(ps))).sum(1))
    want_sce = T * T * np.mean(-(pt * np.log(ps)).sum(1))
    assert kl(tt(S), tt(T_), T).item() == pytest.approx(want_kl, rel=1e-12)
    assert soft_ce(tt(S), tt(T_), T).item() == pytest.approx(want_sce, rel=1e-12)
    # they differ exactly by T^2 times the mean teacher entropy
    ent = np.mean(-(pt * np.log(pt)).sum(1))
    assert want_sce - want_kl == pytest.approx(T * T * ent)


def test_kl_literal_value():
    # one sample, 2 classes, T=1: teacher logits [0,0] -> p_t = [.5,.5]; student [log 3, 0] ->
    # p_s = [.75, .25]; KL = .5 log(.5/.75) + .5 log(.5/.25) = .5 log(4/3)
    s = torch.tensor([[math.log(3.0), 0.0]])
    assert kl(s, torch.zeros(1, 2), 1.0).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


def test_cosine_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -5.0]])
    # sample 1: 1 - 1/sqrt 2 ; sample 2: 1 - (-1) = 2
    assert cosine(a, b).item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 2) / 2, rel=1e-6)
    x = tt(S)
    assert cosine(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12)
    # scale invariance (positive factors, per row)
    scale = tt(np.array([[3.0], [0.25]]))
    assert cosine(x * scale, tt(T_) * 7.0).item() == pytest.approx(cosine(x, tt(T_)).item(), rel=1e-12)
    na, nb = S / np.linalg.norm(S, axis=1, keepdims=True), T_ / np.linalg.norm(T_, axis=1, keepdims=True)
    assert cosine(tt(S), tt(T_)).item() == pytest.approx(np.mean(1 - (na * nb).sum(1)))


def test_cosine_shape_mismatch_is_clear():
    with pytest.raises(GeodistillError, match="project"):
        cosine(torch.zeros(2, 3), torch.zeros(2, 4))


def test_nuclear_norm_values_and_gradcheck():
    assert nuclear_norm(torch.diag(torch.tensor([3.0, -4.0]))).item() == pytest.approx(7.0)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3))  # conv weight out x in x k x k
    want = np.linalg.svd(w.reshape(4, -1), compute_uv=False).sum()
    assert nuclear_norm(tt(w)).item() == pytest.approx(want, rel=1e-10)
    m = tt(rng.normal(size=(3, 4)), grad=True)  # full rank, distinct singular values
    assert torch.autograd.gradcheck(nuclear_norm, (m,))
    w4 = tt(rng.normal(size=(2, 2, 1, 2)), grad=True)
    assert torch.autograd.gradcheck(nuclear_norm, (w4,))


def np_dkd(s, t, y, alpha, beta, T):
    ps, pt = softmax(s / T), softmax(t / T)
    B = len(y)
    tckd = nckd = 0.0
    for i in range(B):
        bs = np.array([ps[i, y[i]], 1 - ps[i, y[i]]])
        bt = np.array([pt[i, y[i]], 1 - pt[i, y[i]]])
        tckd += (bt * np.log(bt / bs)).sum()
        keep = np.arange(s.shape[1]) != y[i]
        hs = ps[i, keep] / ps[i, keep].sum()  # non-target renormalised
        ht = pt[i, keep] / pt[i, keep].sum()
        nckd += (ht * np.log(ht / hs)).sum()
    return alpha * tckd / B * T * T + beta * nckd / B * T * T


@pytest.mark.parametrize("alpha,beta,T", [(1.0, 8.0, 4.0), (1.0, 0.0, 2.0), (0.0, 1.0, 1.0)])
def test_dkd_matches_published_formula(alpha, beta, T):
    got = dkd(tt(S), tt(T_), torch.tensor(Y), alpha=alpha, beta=beta, T=T).item()
    assert got == pytest.approx(np_dkd(S, T_, Y, alpha, beta, T), rel=1e-10)


def test_dkd_sums_to_kl_decomposition():
    # Zhao et al.: KD = TCKD + (1 - p_t^y) NCKD (per sample); check with B=1
    s, t, y, T = S[:1], T_[:1], Y[:1], 2.0
    tckd = np_dkd(s, t, y, 1.0, 0.0, T)
    nckd = np_dkd(s, t, y, 0.0, 1.0, T)
    pty = softmax(t / T)[0, y[0]]
    assert kl(tt(s), tt(t), T).item() == pytest.approx(tckd + (1 - pty) * nckd, rel=1e-10)


def np_dist(s, t, beta, gamma, T):
    ps, pt = softmax(s / T), softmax(t / T)
    inter = 1 - np.mean([np.corrcoef(ps[i], pt[i])[0, 1] for i in range(ps.shape[0])])
    intra = 1 - np.mean([np.corrcoef(ps[:, k], pt[:, k])[0, 1] for k in range(ps.shape[1])])
    return T * T * (beta * inter + gamma * intra)


@pytest.mark.parametrize("beta,gamma,T", [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0)])
def test_dist_matches_published_formula(beta, gamma, T):
    s = np.array([[1.0, 2.0, 0.5, 0.0], [0.2, -1.0, 3.0, 1.0], [0.0, 0.3, -0.2, 2.0]])
    t = np.array([[2.0, 1.0, 0.0, 0.1], [0.0, 0.5, 1.5, 0.7], [1.0, 0.0, 0.0, 3.0]])
    got = dist(tt(s), tt(t), beta=beta, gamma=gamma, T=T).item()
    assert got == pytest.approx(np_dist(s, t, beta, gamma, T), rel=1e-8)
    assert dist(tt(s), tt(s), T=T).item() == pytest.approx(0.0, abs=1e-8)


# ----- gradients -----------------------------------------------------------------------------

LOSSES_WITH_TEACHER = {
    "kl": lambda s, t, y: kl(s, t, 2.0),
    "soft_ce": lambda s, t, y: soft_ce(s, t, 2.0),
    "cosine": lambda s, t, y: cosine(s, t),
    "dkd": lambda s, t, y: dkd(s, t, y),
    "dist": lambda s, t, y: dist(s, t),
}


@pytest.mark.parametrize("name", list(LOSSES_WITH_TEACHER))
def test_gradient_reaches_student_only(name):
    s, t = tt(S, grad=True), tt(T_, grad=True)
    LOSSES_WITH_TEACHER[name](s, t, torch.tensor(Y)).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_kl_and_soft_ce_gradients_identical():
    s1, s2 = tt(S, grad=True), tt(S, grad=True)
    kl(s1, tt(T_), 3.0).backward()
    soft_ce(s2, tt(T_), 3.0).backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-12, atol=1e-12)


def test_half_precision_teacher_is_cast():
    s = torch.tensor(S, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(T_, dtype=torch.float16)
    assert kl(s, t, 2.0).dtype == torch.float32


def test_bad_temperature():
    with pytest.raises(GeodistillError, match="T must be > 0"):
        kl(tt(S), tt(T_), 0.0)


# ----- Objective -------------------------------------------------------------------------------


def test_parse_and_formula():
    obj = Objective.parse("ce:0.7 + kl:0.3@T=4 + cos_feat:0.3 + nuc:0.01")
    assert str(obj) == "L = 0.7·CE + 0.3·KL(T=4) + 0.3·cos(feat) + 0.01·‖W₁‖*"
    assert obj.needs_teacher and obj.needs_features and obj.needs_first_weight
    assert [t.name for t in obj.terms] == ["ce", "kl", "cos_feat", "nuc"]
    assert obj.terms[1].p == {"T": 4.0}
    assert Objective.parse("ce").terms[0].weight == 1.0
    assert not Objective.parse("ce:1@ls=0.1").needs_teacher


@pytest.mark.parametrize(
    "spec",
    [
        "ce:0.7 + kl:0.3@T=4 + cos_feat:0.3 + nuc:0.01",
        "ce:1@ls=0.1 + dkd:1@alpha=1,beta=8,T=4",
        "ce:0.25 + dist:2@beta=2,gamma=0.5,T=4 + cos_prob:0.5@T=3 + cos_logits:1e-05",
        "soft_ce:0.1 + ce:0 + nuc:0.001",
    ],
)
def test_spec_round_trip(spec):
    obj = Objective.parse(spec)
    again = Objective.parse(obj.spec)
    assert again.terms == obj.terms
    assert str(again) == str(obj)


def test_thesis_form_and_round_trip():
    obj = Objective.thesis(0.7, T=3.0)
    assert str(obj) == "L = 0.7·softCE(T=3) + 0.3·CE + 0.7·‖W₁‖*"  # beta tied to alpha
    assert Objective.parse(obj.spec).terms == obj.terms
    assert dict((t.name, t.weight) for t in Objective.thesis(0.2, beta=0.01).terms) == {
        "soft_ce": 0.2,
        "ce": 0.8,
        "nuc": 0.01,
    }
    plain = Objective.thesis(0.0, beta=0.0)  # student alone: nothing from the teacher
    assert not plain.needs_teacher and not plain.needs_first_weight


def _inputs(grad=True):
    torch.manual_seed(0)
    s = torch.tensor(S, dtype=torch.float32, requires_grad=grad)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    return LossInputs(
        s_logits=s,
        target=torch.tensor(Y),
        t_logits=torch.tensor(T_).float(),
        s_feat=torch.randn(2, 5, requires_grad=True),
        t_feat=torch.randn(2, 7),
        first_weight=w,
    )


def test_forward_weighted_sum_and_raw_terms():
    obj = Objective.parse("ce:0.7 + kl:0.3@T=2 + cos_logits:0.2 + nuc:0.01 + dkd:0.5 + dist:0.4")
    inp = _inputs()
    total, raw = obj(inp)
    want = {
        "ce": ce(inp.s_logits, inp.target),
        "kl": kl(inp.s_logits, inp.t_logits, 2.0),
        "cos_logits": cosine(inp.s_logits, inp.t_logits),
        "nuc": nuclear_norm(inp.first_weight),
        "dkd": dkd(inp.s_logits, inp.t_logits, inp.target),
        "dist": dist(inp.s_logits, inp.t_logits),
    }
    assert set(raw) == set(want)
    for k, v in want.items():
        torch.testing.assert_close(raw[k], v.detach())
        assert not raw[k].requires_grad
    weights = {t.name: t.weight for t in obj.terms}
    torch.testing.assert_close(total, sum(weights[k] * v for k, v in want.items()))
    total.backward()
    assert inp.s_logits.grad is not None and inp.first_weight.grad is not None


def test_cos_feat_projector_is_learned_submodule():
    obj = Objective.parse("ce:1 + cos_feat:1", s_dim=5, t_dim=7)
    params = list(obj.parameters())
    assert len(params) == 1 and params[0].shape == (7, 5)
    inp = _inputs()
    total, raw = obj(inp)
    total.backward()
    assert params[0].grad is not None and params[0].grad.abs().sum() > 0
    assert inp.s_feat.grad is not None
    want = cosine(inp.s_feat @ params[0].detach().t(), inp.t_feat)
    torch.testing.assert_close(raw["cos_feat"], want)
    same = Objective.parse("cos_feat:1", s_dim=7, t_dim=7)
    assert list(same.parameters()) == []
    with pytest.raises(GeodistillError, match="s_dim and t_dim"):
        Objective.parse("cos_feat:1")(inp)


def test_mse_feat_by_hand():
    s, t = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True), torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert float(mse(s, t).detach()) == pytest.approx((0 + 4 + 0 + 16) / 4)  # mean over all B x D elements
    obj = Objective.parse("ce:1 + mse_feat:0.5", s_dim=2, t_dim=2)  # equal widths: no projector
    assert str(obj) == "L = 1·CE + 0.5·MSE(feat)" and list(obj.parameters()) == []
    logits = torch.zeros(2, 3)
    total, raw = obj(LossInputs(s_logits=logits, target=torch.tensor([0, 1]), s_feat=s, t_feat=t))
    assert float(raw["mse_feat"]) == pytest.approx(5.0)
    assert float(total.detach()) == pytest.approx(math.log(3) + 0.5 * 5.0)
    total.backward()
    torch.testing.assert_close(s.grad, 0.5 * 2 * (s - t).detach() / 4)  # no gradient reaches t
    with pytest.raises(GeodistillError, match="loss 'mse': student shape"):
        mse(s, torch.zeros(2, 3))


def test_zero_weight_terms_are_inactive():
    obj = Objective.thesis(0.0, beta=0.0)
    inp = LossInputs(s_logits=tt(S, grad=True), target=torch.tensor(Y))
    total, raw = obj(inp)
    assert set(raw) == {"ce"}
    torch.testing.assert_close(total, ce(inp.s_logits, inp.target))
    # with teacher present, the inactive term is logged but adds nothing
    inp.t_logits = tt(T_)
    total2, raw2 = obj(inp)
    assert "soft_ce" in raw2 and torch.equal(total2, total)


def test_missing_input_names_the_term():
    obj = Objective.parse("ce:0.5 + kl:0.5")
    with pytest.raises(GeodistillError, match="'kl'.*t_logits"):
        obj(LossInputs(s_logits=tt(S), target=torch.tensor(Y)))


@pytest.mark.parametrize(
    "spec,match",
    [
        ("ce:0.5 + foo:1", "'foo' is unknown"),
        ("kl:1@tau=2", "'kl' has no parameter 'tau'"),
        ("ce:-0.1", "'ce': weight must be finite and >= 0"),
        ("ce:nan", "'ce': weight must be finite"),
        ("kl:1@T=0", "'kl': temperature T must be > 0"),
        ("ce:1@ls=1.5", "'ce': label smoothing"),
        ("ce:0.5 +", "empty term"),
        ("ce:", "'ce' has ':' but no weight"),
        ("kl:1@T", "'kl': cannot read parameter"),
        ("ce:abc", "'ce': weight and parameters must be numbers"),
        ("ce:1 + ce:2", "'ce' appears twice"),
        ("ce:0 + kl:0", "no term with a weight > 0"),
        ("", "empty"),
        ("c e:1", "cannot read term"),
    ],
)
def test_validation_errors(spec, match):
    with pytest.raises(GeodistillError, match=match):
        Objective.parse(spec)


def test_alpha_range_checked():
    with pytest.raises(GeodistillError, match=r"alpha must be in \[0, 1\]"):
        Objective.thesis(1.5)
    with pytest.raises(GeodistillError, match="alpha"):
        Objective.preset("kl", alpha=-0.1)
    with pytest.raises(GeodistillError, match="preset 'nope' is unknown"):
        Objective.preset("nope")


def test_presets():
    assert list_presets() == list(PRESETS)
    assert set(PRESETS) >= {"student", "kl", "cos", "kl+cos", "thesis", "dkd", "dist"}
    for name in PRESETS:
        obj = Objective.preset(name, alpha=0.3, T=2.0, s_dim=5, t_dim=7)  # feature terms learn a projector
        assert Objective.parse(obj.spec).terms == obj.terms
        total, _ = obj(_inputs())
        assert torch.isfinite(total)
    w = lambda o: {t.name: t.weight for t in o.terms}  # noqa: E731
    assert w(Objective.preset("student")) == {"ce": 1.0}
    assert not Objective.preset("student").needs_teacher
    assert w(Objective.preset("kl", alpha=0.3)) == {"ce": 0.7, "kl": 0.3}
    assert w(Objective.preset("kl+cos", alpha=0.3)) == {"ce": 0.7, "kl": 0.3, "cos_logits": 0.3}
    assert w(Objective.preset("thesis", alpha=0.4)) == {"soft_ce": 0.4, "ce": 0.6, "nuc": 0.4}
    assert w(Objective.preset("thesis", alpha=0.4, beta=0.01))["nuc"] == 0.01
    assert Objective.preset("dkd", T=4.0).terms[1].p == {"alpha": 1.0, "beta": 8.0, "T": 4.0}
    smooth = Objective.preset("kl", alpha=0.3, label_smoothing=0.1)
    assert smooth.terms[0].p == {"ls": 0.1} and smooth.terms[0].weight == 0.7
    assert str(smooth) == "L = 0.7·CE(ls=0.1) + 0.3·KL(T=4)"
    with pytest.raises(GeodistillError, match="label smoothing"):
        Objective.thesis(0.5, label_smoothing=1.0)


def test_config_forms():
    a = Objective.from_config({"ce": 0.7, "kl": {"weight": 0.3, "T": 4}})
    b = Objective.from_config([{"name": "ce", "weight": 0.7}, {"name": "kl", "weight": 0.3, "T": 4}])
    c = Objective.from_config("ce:0.7 + kl:0.3@T=4")
    assert a.terms == b.terms == c.terms

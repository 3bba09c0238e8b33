"""Every check of Lecture 09 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: a Langevin step up the energy, noise sqrt(eps) or not tied to the step,
no noise; a CD loss with the wrong sign, no regulariser, gradients through the samples; sizes
written as numbers, detached results and inputs modified in place."""

import math

import pytest
import torch

from coursekit.exercises import ebm as checks

SEEDS = [0, 1, 2, 7]


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


def _fails_with(result, *fragments: str) -> None:
    assert not result, f"the check passed a wrong answer: {result}"
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


def stub(*args):
    raise NotImplementedError


# ----------------------------------------------------------------------------- Langevin step


def _grad(energy, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(energy(x).sum(), x)
    return g


def _step(x, energy, eps, z, *, sign=-1.0, noise=None, drift=None):
    scale = math.sqrt(2 * eps) if noise is None else noise(eps)
    d = eps if drift is None else drift(eps)
    return x + sign * d * _grad(energy, x) + scale * z


@pytest.mark.parametrize("seed", SEEDS)
def test_langevin_step_passes_the_reference(seed):
    assert checks.check_langevin_step(checks.reference_langevin_step, seed=seed)


def test_langevin_step_with_backward_passes():
    def via_formula(x, energy, eps, z):  # the student's own autograd, no helper
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            e = energy(xg).sum()
            e.backward()
        return (x - eps * xg.grad + (2 * eps) ** 0.5 * z).detach()

    assert checks.check_langevin_step(via_formula)


def _step_in_place(x, energy, eps, z):
    out = _step(x, energy, eps, z)
    z.zero_()
    return out


WRONG_STEP = [
    (lambda x, e, eps, z: _step(x, e, eps, z, sign=1.0), "moved up the energy"),
    (lambda x, e, eps, z: _step(x, e, eps, z, noise=math.sqrt), "sqrt(2 eps)"),
    (lambda x, e, eps, z: _step(x, e, eps, z, noise=lambda s: 0.2), "tie it to the step"),
    (lambda x, e, eps, z: _step(x, e, eps, z, noise=lambda s: 1.0), "tie it to the step"),
    (lambda x, e, eps, z: _step(x, e, eps, z, noise=lambda s: 2 * s), "tie it to the step"),
    (lambda x, e, eps, z: _step(x, e, eps, z, noise=lambda s: 0.0), "forgot the noise"),
    (
        lambda x, e, eps, z: _step(x, e, eps, z, drift=lambda s: s / 2, noise=math.sqrt),
        "Song & Ermon",
    ),
    (
        lambda x, e, eps, z: _step(x, e, eps, z, drift=lambda s: math.sqrt(2 * s)),
        "scaled the drift by sqrt(2 step_size)",
    ),
    (
        lambda x, e, eps, z: x - eps * e(x).detach()[:, None] + math.sqrt(2 * eps) * z,
        "energy's value instead of its gradient",
    ),
    # the notebook's step 0.01 written as a number
    (lambda x, e, eps, z: _step(x, e, 0.01, z), "It passed with B=6, D=2, k=0"),
    (lambda x, e, eps, z: _step(x, e, eps, z)[:, :2], "It passed with B=6, D=2, k=0"),
    (lambda x, e, eps, z: _step(x, e, eps, z).sum(0), "shape"),
    (_step_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_STEP)
def test_langevin_step_names_the_mistake(wrong, words):
    _fails_with(checks.check_langevin_step(wrong), words)


# ----------------------------------------------------------------------------- CD loss


def _cd(energy, xd, xm, alpha, *, sign=1.0, reg="both", detach=True, reduce="mean"):
    e_d = energy(xd)
    e_m = energy(xm.detach() if detach else xm)
    red = torch.mean if reduce == "mean" else torch.sum
    cd = sign * (red(e_d) - red(e_m))
    if reg == "both":
        r = red(e_d**2) + red(e_m**2)
    elif reg == "data":
        r = red(e_d**2)
    elif reg == "means":
        r = e_d.mean() ** 2 + e_m.mean() ** 2
    else:
        r = 0.0
    return cd + alpha * r


@pytest.mark.parametrize("seed", SEEDS)
def test_cd_loss_passes_the_reference(seed):
    assert checks.check_cd_loss(checks.reference_cd_loss, seed=seed)


def test_cd_loss_with_the_library_passes():
    from coursekit import ebm

    assert checks.check_cd_loss(
        lambda e, xd, xm, a: ebm.contrastive_divergence(e, xd, xm, alpha=a)["loss"]
    )


def _cd_in_place(energy, xd, xm, alpha):
    out = _cd(energy, xd, xm, alpha)
    xd.mul_(0)
    return out


def _cd_no_grad(energy, xd, xm, alpha):
    with torch.no_grad():
        return _cd(energy, xd, xm, alpha)


def _cd_energy_detached(energy, xd, xm, alpha):
    e_d, e_m = energy(xd), energy(xm).detach()
    return e_d.mean() - e_m.mean() + alpha * ((e_d**2).mean() + (e_m**2).mean())


WRONG_CD = [
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, sign=-1.0), "flipped the sign"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, sign=-1.0, reg=None), "flipped the sign of the CD"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, reg=None), "forgot the regulariser"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, reg="data"), "regularised only the data"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, reg="means"), "squared the means"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, reduce="sum"), "summed over the batch"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a, detach=False), "detach them"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, 0.1), "It passed with B=8, M=6, D=2"),
    (
        lambda e, xd, xm, a: (
            _cd(e, xd[:8], xm, a)
            if len(xd) > 8
            else _cd(e, xd, xm[:, :2].repeat(1, xd.shape[1] // 2 + 1)[:, : xd.shape[1]], a)
        ),
        "It passed with B=8, M=6, D=2",
    ),
    (_cd_energy_detached, "wrong gradient"),
    (_cd_no_grad, "carries no gradient"),
    (lambda e, xd, xm, a: _cd(e, xd, xm, a).detach(), "carries no gradient"),
    (lambda e, xd, xm, a: float(_cd(e, xd, xm, a)), "Python float"),
    (_cd_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_CD)
def test_cd_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_cd_loss(wrong), words)


# ----------------------------------------------------------------------------- classifier energy


@pytest.mark.parametrize("seed", SEEDS)
def test_classifier_energy_passes_the_reference(seed):
    assert checks.check_classifier_energy(checks.reference_classifier_energy, seed=seed)


def test_classifier_energy_with_a_stable_formula_passes():
    def by_hand(f):
        m = f.max(1, keepdim=True).values
        return -(m.squeeze(1) + (f - m).exp().sum(1).log())

    assert checks.check_classifier_energy(by_hand)


def _energy_in_place(f):
    out = -torch.logsumexp(f, 1)
    f.zero_()
    return out


WRONG_ENERGY = [
    (lambda f: torch.logsumexp(f, 1), "forgot the minus sign"),
    (lambda f: -f.max(1).values, "largest logit"),
    (lambda f: -f.sum(1), "summed the logits"),
    (lambda f: -f.mean(1), "averaged the logits"),
    (lambda f: -torch.log_softmax(f, 1).max(1).values, "log_softmax"),
    (lambda f: -torch.logsumexp(f, 0), "over the batch"),
    (lambda f: -torch.logsumexp(f, 1) + math.log(f.shape[1]), "added log K"),
    (lambda f: -f.exp().sum(1).log(), "contains inf"),  # overflows on the confident case
    # the notebook's sizes written as numbers: wrong whenever a case has other sizes
    (lambda f: -torch.logsumexp(f.view(f.shape[0], 10), 1), "It passed with B=6, K=10"),
    (lambda f: -torch.logsumexp(f, 1).view(6), "It passed with B=6, K=10"),
    (lambda f: -torch.logsumexp(f, 1).detach(), "carries no gradient"),
    (lambda f: -torch.logsumexp(f.detach(), 1) + 0 * f.sum(1), "wrong gradient"),
    (_energy_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_ENERGY)
def test_classifier_energy_names_the_mistake(wrong, words):
    _fails_with(checks.check_classifier_energy(wrong), words)

"""Every check of Lecture 02 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: wrong formulas, wrong reductions and axes, a size written as a number,
a detached result and an input modified in place."""

import math

import pytest
import torch

from coursekit import vae
from coursekit.exercises import vae as checks

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


# ----------------------------------------------------------------------------- KL


def _kl_terms(mu, lv):
    return 0.5 * (mu**2 + lv.exp() - lv - 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_passes_the_reference(seed):
    assert checks.check_kl_diag_gaussian(vae.kl_std_normal, seed=seed)


def _kl_in_place(mu, lv):
    mu.pow_(2)  # squares the caller's tensor
    return 0.5 * (mu + lv.exp() - lv - 1).sum(-1)


def _kl_no_grad(mu, lv):
    with torch.no_grad():
        return _kl_terms(mu, lv).sum(-1)


WRONG_KL = [
    (lambda mu, lv: (mu**2 + lv.exp() - lv - 1).sum(-1), "factor 1/2"),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).sum(), "summed over the batch too"),
    (lambda mu, lv: 0.5 * (mu**2 + torch.exp(2 * lv) - 2 * lv - 1).sum(-1), "log(sigma)"),
    (lambda mu, lv: _kl_terms(mu, lv).sum(0), "axes swapped"),
    (lambda mu, lv: _kl_terms(mu, lv).mean(-1), "averaged over the latent dimensions"),
    (lambda mu, lv: _kl_terms(mu, lv), "forgot to sum over the latent dimensions"),
    (lambda mu, lv: 0.5 * (mu + lv.exp() - lv - 1).sum(-1), "forgot to square mu"),
    (lambda mu, lv: -_kl_terms(mu, lv).sum(-1), "flipped the sign of the whole KL"),
    (lambda mu, lv: _kl_terms(mu, lv).sum(-1).mean(), "averaged over the batch"),
    # a size written as a number: right for the notebook's D = 3, wrong for D = 7
    (lambda mu, lv: _kl_terms(mu, lv).mean(-1) * 3, "It passed with B=5, D=3"),
    (lambda mu, lv: _kl_terms(mu, lv).sum(-1).view(5), "written into your code"),
    (_kl_no_grad, "carries no gradient"),
    (lambda mu, lv: _kl_terms(mu, lv).sum(-1).detach(), "carries no gradient"),
    (lambda mu, lv: float(_kl_terms(mu, lv).sum()), "`.item()`"),
    (_kl_in_place, "modified its input in place (line"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_KL)
def test_kl_names_the_mistake(wrong, words):
    _fails_with(checks.check_kl_diag_gaussian(wrong), words)


def test_kl_detached_term_is_a_wrong_gradient():
    def partly_detached(mu, lv):
        return 0.5 * (mu.detach() ** 2 + lv.exp() - lv - 1).sum(-1)

    _fails_with(checks.check_kl_diag_gaussian(partly_detached), "no gradient reaches `mu`")


# ----------------------------------------------------------------------------- reparameterization


@pytest.mark.parametrize("seed", SEEDS)
def test_reparameterize_passes_the_reference(seed):
    assert checks.check_reparameterize(vae.reparameterize, seed=seed)


def _reparam_in_place(mu, lv, eps):
    eps.mul_(torch.exp(0.5 * lv))
    return mu + eps


WRONG_REPARAM = [
    (lambda mu, lv, eps: mu + lv.exp() * eps, "used the variance exp(logvar) as the scale"),
    (lambda mu, lv, eps: mu + lv * eps, "used logvar itself as the scale"),
    (lambda mu, lv, eps: mu - torch.exp(0.5 * lv) * eps, "subtracted sigma * eps"),
    (lambda mu, lv, eps: (mu + eps) * torch.exp(0.5 * lv), "scaled the mean too"),
    (lambda mu, lv, eps: torch.exp(0.5 * lv) + mu * eps, "swapped mu and sigma"),
    (lambda mu, lv, eps: mu + eps / torch.exp(0.5 * lv), "1 / sigma"),
    (lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "forgot to add the mean"),
    # the notebook's eps is fixed: drawing fresh noise gives another z
    (lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * torch.randn_like(eps), "does not match"),
    (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "carries no gradient"),
    (
        lambda mu, lv, eps: mu + torch.exp(0.5 * lv).detach() * eps,
        "no gradient reaches `lv`",
    ),
    (_reparam_in_place, "modified its input `eps` in place"),
]


@pytest.mark.parametrize("wrong, words", WRONG_REPARAM)
def test_reparameterize_names_the_mistake(wrong, words):
    _fails_with(checks.check_reparameterize(wrong), words)


def test_reparameterize_wrong_slice_of_a_hard_coded_width():
    def width_three(mu, lv, eps):
        return mu[:, :3] + torch.exp(0.5 * lv[:, :3]) * eps[:, :3]

    _fails_with(checks.check_reparameterize(width_three), "shape (2, 3)", "It passed with B=5, D=3")


# ----------------------------------------------------------------------------- IWAE


def _reference_iwae(log_w):
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_iwae_passes_the_reference(seed):
    assert checks.check_iwae_bound(_reference_iwae, seed=seed)


def _iwae_in_place(log_w):
    log_w -= log_w.max(0).values  # shifts the caller's log-weights
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


WRONG_IWAE = [
    (lambda lw: torch.logsumexp(lw, 0), "forgot the 1/k"),
    (lambda lw: lw.mean(0), "that is the ELBO"),
    (lambda lw: lw.exp().mean(0).log(), "underflows"),
    (lambda lw: lw.max(0).values, "took the max"),
    (lambda lw: torch.logsumexp(lw, 0) / lw.shape[0], "divided the logsumexp by k"),
    (lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]), "reduced over the batch (dim=1)"),
    (lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[1]), "subtracted log B"),
    (lambda lw: torch.logsumexp(lw, 0) + math.log(lw.shape[0]), "added log k"),
    (lambda lw: _reference_iwae(lw).mean(), "averaged over the batch as well"),
    (lambda lw: torch.logsumexp(lw, 0) - math.log(64), "It passed with k=64, B=4"),
    (lambda lw: _reference_iwae(lw).detach(), "carries no gradient"),
    (lambda lw: torch.from_numpy(_reference_iwae(lw.detach()).numpy()), "carries no gradient"),
    (_iwae_in_place, "modified its input in place (line"),
]


@pytest.mark.parametrize("wrong, words", WRONG_IWAE)
def test_iwae_names_the_mistake(wrong, words):
    _fails_with(checks.check_iwae_bound(wrong), words)


def test_iwae_wrong_weighting_is_a_wrong_gradient():
    # the right value, but the gradient says every sample weighs 1/k: not the softmax weights
    def straight_through(lw):
        value = _reference_iwae(lw).detach()
        return value + (lw.mean(0) - lw.mean(0).detach())

    _fails_with(checks.check_iwae_bound(straight_through), "wrong gradient with respect to `lw`")


@pytest.mark.parametrize(
    "check_fn",
    [checks.check_kl_diag_gaussian, checks.check_reparameterize, checks.check_iwae_bound],
)
def test_seeds_change_sizes_and_values(check_fn, capsys):
    seen = set()
    for seed in SEEDS:

        def spy(*args, seed=seed):
            seen.add((seed, tuple(args[0].shape), float(args[0].flatten()[0])))
            raise NotImplementedError

        check_fn(spy, seed=seed)
    assert len({s for _, s, _ in seen}) == len(SEEDS)
    assert len({v for _, _, v in seen}) == len(SEEDS)

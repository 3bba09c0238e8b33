"""Every check of Lecture 01 passes the reference and fails, with its specific message,
on plausible wrong answers."""

import math

import pytest
import torch

from coursekit import divergences as dv
from coursekit.exercises import divergences as ex01


@pytest.fixture(autouse=True)
def not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


def stub(*args):
    raise NotImplementedError("Exercise 1.1: write your solution here")


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_generator_check_passes_the_reference(name, capsys):
    result = ex01.check_generator(name, dv.get(name).f)
    assert result, result.message
    assert "Monte Carlo" in result.message
    assert capsys.readouterr().out.startswith("✓")


def test_generator_check_accepts_an_equivalent_generator():
    # u log u - u + 1 differs from u log u by -(u - 1): the same divergence.
    result = ex01.check_generator("kl", lambda u: u * torch.log(u) - u + 1)
    assert result, result.message
    assert "leaves D_f unchanged" in result.message


WRONG_GENERATORS = [
    ("kl", lambda u: -torch.log(u), "reverse-KL generator"),
    ("kl", lambda u: -u * torch.log(u), "flipped the sign"),
    ("reverse_kl", lambda u: u * torch.log(u), "wrote the KL generator"),
    ("pearson", lambda u: u - 1, "forgot the square"),
    ("hellinger", lambda u: torch.sqrt(u) - 1, "forgot the square"),
    ("hellinger", lambda u: 0.5 * (torch.sqrt(u) - 1) ** 2, "factor 1/2"),
    ("js", lambda u: 0.5 * u * torch.log(u), "left out the term -(u + 1) log((u + 1)/2)"),
    ("js", lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2), "2 JS"),
    ("gan", lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2), "2 JS, not"),
    # Not in any hint list: caught by the generic properties.
    ("kl", lambda u: u * torch.log(u) + 1, "f(1) = 1"),
    ("pearson", lambda u: -((u - 1) ** 2), "not convex"),
    ("hellinger", lambda u: (u**0.25 - 1) ** 2, "not convex"),
    # Convex with f(1) = 0 but another divergence (triangular discrimination).
    ("hellinger", lambda u: (u - 1) ** 2 / (u + 1), "does not match the reference"),
]


@pytest.mark.parametrize("name,f,message", WRONG_GENERATORS)
def test_generator_check_names_the_mistake(name, f, message, capsys):
    result = ex01.check_generator(name, f)
    assert not result
    assert message in result.message
    assert capsys.readouterr().out.startswith("✗")


def test_generator_check_reports_stubs_and_bad_outputs():
    assert "not implemented yet" in ex01.check_generator("kl", stub).message
    assert "forget the `return`" in ex01.check_generator("kl", lambda u: None).message
    assert "shape" in ex01.check_generator("kl", lambda u: u.sum()).message
    with pytest.raises(KeyError, match="hellinger"):
        ex01.check_generator("hellinger2", dv.hellinger_f)


def test_generator_check_raises_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSEKIT_STRICT", "1")
    with pytest.raises(AssertionError, match="reverse-KL"):
        ex01.check_generator("kl", lambda u: -torch.log(u))


def kl_reference(mu_p, std_p, mu_q, std_q):
    return torch.log(std_q / std_p) + (std_p**2 + (mu_p - mu_q) ** 2) / (2 * std_q**2) - 0.5


def test_kl_gaussian_check():
    assert ex01.check_kl_gaussian(kl_reference)
    assert ex01.check_kl_gaussian(dv.kl_gaussian)
    swapped = ex01.check_kl_gaussian(lambda a, b, c, d: kl_reference(c, d, a, b))
    assert "swapped P and Q" in swapped.message
    no_half = ex01.check_kl_gaussian(
        lambda mp, sp, mq, sq: torch.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / sq**2 - 1
    )
    assert "factor 1/2" in no_half.message
    flipped = ex01.check_kl_gaussian(
        lambda mp, sp, mq, sq: torch.log(sp / sq) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
    )
    assert "flipped the log term" in flipped.message
    variances = ex01.check_kl_gaussian(
        lambda mp, sp, mq, sq: (
            torch.log(sq**2 / sp**2) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
        )
    )
    assert "variances" in variances.message
    assert (
        "one value per example" in ex01.check_kl_gaussian(lambda *a: kl_reference(*a).sum()).message
    )


def test_fgan_bound_check():
    assert ex01.check_fgan_bound(lambda t_p, t_q, f_star: t_p.mean() - f_star(t_q).mean())
    swapped = ex01.check_fgan_bound(lambda t_p, t_q, f_star: t_q.mean() - f_star(t_p).mean())
    assert "swapped the samples" in swapped.message
    plus = ex01.check_fgan_bound(lambda t_p, t_q, f_star: t_p.mean() + f_star(t_q).mean())
    assert "instead of subtracting" in plus.message
    no_conj = ex01.check_fgan_bound(lambda t_p, t_q, f_star: t_p.mean() - t_q.mean())
    assert "forgot the conjugate" in no_conj.message


def test_donsker_varadhan_check():
    def good(t_p, t_q):
        return t_p.mean() - (torch.logsumexp(t_q, 0) - math.log(len(t_q)))

    assert ex01.check_donsker_varadhan(good)
    assert ex01.check_donsker_varadhan(lambda t_p, t_q: t_p.mean() - t_q.exp().mean().log())
    no_log_n = ex01.check_donsker_varadhan(lambda t_p, t_q: t_p.mean() - torch.logsumexp(t_q, 0))
    assert "log(n)" in no_log_n.message
    nwj = ex01.check_donsker_varadhan(lambda t_p, t_q: t_p.mean() - torch.exp(t_q - 1).mean())
    assert "NWJ" in nwj.message
    no_exp = ex01.check_donsker_varadhan(lambda t_p, t_q: t_p.mean() - t_q.mean())
    assert "E_Q[T] instead of log E_Q[exp T]" in no_exp.message


def test_optimal_discriminator_check():
    assert ex01.check_optimal_discriminator(lambda lp, lm: torch.sigmoid(lp - lm))
    assert ex01.check_optimal_discriminator(lambda lp, lm: lp.exp() / (lp.exp() + lm.exp()))
    swapped = ex01.check_optimal_discriminator(lambda lp, lm: torch.sigmoid(lm - lp))
    assert "swapped data and model" in swapped.message
    ratio = ex01.check_optimal_discriminator(lambda lp, lm: torch.exp(lp - lm))
    assert "ratio" in ratio.message
    logit = ex01.check_optimal_discriminator(lambda lp, lm: lp - lm)
    assert "apply a sigmoid" in logit.message

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
        "summed over the elements"
        in ex01.check_kl_gaussian(lambda *a: kl_reference(*a).sum()).message
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


# --- the battery: more wrong answers, sizes, gradients, in-place -----------------------------------

SEEDS = [0, 1, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_check_passes_the_reference_at_other_seeds(seed):
    for name in dv.DIVERGENCES:
        assert ex01.check_generator(name, dv.get(name).f, seed=seed)
    assert ex01.check_kl_gaussian(kl_reference, seed=seed)
    assert ex01.check_fgan_bound(lambda t_p, t_q, fs: t_p.mean() - fs(t_q).mean(), seed=seed)
    assert ex01.check_donsker_varadhan(dv.donsker_varadhan_bound, seed=seed)
    assert ex01.check_optimal_discriminator(lambda lp, lm: torch.sigmoid(lp - lm), seed=seed)


def _log2(u):
    return torch.log(u) / math.log(2)


def _in_place_generator(u):
    u.clamp_(min=1e-12)  # writes into the caller's ratios
    return u * torch.log(u)


def _hard_coded_length(u):
    return (u * torch.log(u)).view(62)


GENERATOR_BATTERY = [
    ("kl", lambda u: u * _log2(u), "log base 2"),
    ("kl", lambda u: (u - 1) * torch.log(u), "Jeffreys"),
    ("kl", torch.log, "dropped the factor u"),
    # equivalent to a named mistake up to c (u - 1): still named
    ("kl", lambda u: -torch.log(u) + 2 * (u - 1), "reverse-KL generator"),
    ("reverse_kl", lambda u: torch.log(u), "flipped the sign"),
    ("reverse_kl", lambda u: -u * torch.log(u), "multiplied by u"),
    ("reverse_kl", lambda u: -_log2(u), "log base 2"),
    ("reverse_kl", lambda u: (u - 1) * torch.log(u), "Jeffreys"),
    ("pearson", lambda u: 0.5 * (u - 1) ** 2, "a factor 1/2 too many"),
    ("pearson", lambda u: (u - 1) ** 2 / u, "Neyman"),
    ("pearson", lambda u: (torch.sqrt(u) - 1) ** 2, "wrote the Hellinger generator"),
    ("pearson", lambda u: (u - 1).abs(), "total variation"),
    ("hellinger", lambda u: (u - 1) ** 2, "wrote the Pearson generator"),
    ("hellinger", lambda u: (torch.sqrt(u) + 1) ** 2, "with the minus sign"),
    ("hellinger", lambda u: (u - 1).abs(), "total variation"),
    ("hellinger", lambda u: 1 - torch.sqrt(u), "factor 1/2"),  # = 1/2 Hellinger - (u - 1)/2
    ("js", lambda u: dv.gan_f(u), "wrote the GAN generator"),
    ("js", lambda u: 0.5 * dv.gan_f(u), "half the GAN generator"),
    (
        "js",
        lambda u: 0.5 * (u * torch.log(u) + (u + 1) * torch.log((u + 1) / 2)),
        "it is subtracted",
    ),
    ("js", lambda u: dv.js_f(u) / math.log(2), "log base 2"),
    ("gan", dv.js_f, "wrote the JS generator"),
    ("gan", lambda u: 0.5 * dv.gan_f(u), "halved it"),
    ("gan", lambda u: u * torch.log(u) + (u + 1) * torch.log(u + 1), "it is subtracted"),
    ("gan", lambda u: -(u + 1) * torch.log(u + 1), "dropped the term u log u"),
    # sizes, gradients and in-place writes
    ("kl", _hard_coded_length, "It passed with shape=(62,)"),
    ("kl", lambda u: (u * torch.log(u)).detach(), "carries no gradient"),
    (
        "kl",
        lambda u: torch.from_numpy((u.detach() * u.detach().log()).numpy()),
        "carries no gradient",
    ),
    ("js", lambda u: dv.js_f(u.detach()) + 0 * u, "wrong gradient with respect to `u`"),
    ("kl", _in_place_generator, "modified its input in place"),
]


@pytest.mark.parametrize("name,f,message", GENERATOR_BATTERY)
def test_generator_battery(name, f, message):
    result = ex01.check_generator(name, f)
    assert not result
    assert message in result.message, result.message


def test_equivalent_generator_passes_with_its_own_gradient():
    # f + c (u - 1) has the gradient f' + c; the check compares against exactly that
    assert ex01.check_generator("pearson", lambda u: (u - 1) ** 2 + 3 * (u - 1), seed=1)


def _kl_terms(mp, sp, mq, sq):
    return torch.log(sq / sp), (sp**2 + (mp - mq) ** 2) / (2 * sq**2)


def _kl_in_place(mp, sp, mq, sq):
    mp.sub_(mq)
    return torch.log(sq / sp) + (sp**2 + mp**2) / (2 * sq**2) - 0.5


KL_BATTERY = [
    (lambda mp, sp, mq, sq: kl_reference(mp, sp, mq, sq) + 0.5, "forgot the -1/2"),
    (
        lambda mp, sp, mq, sq: torch.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sp**2) - 0.5,
        "divided by std_p^2",
    ),
    (
        lambda mp, sp, mq, sq: torch.log(sq / sp) + (sp + (mp - mq) ** 2) / (2 * sq**2) - 0.5,
        "used std_p where its square",
    ),
    (
        lambda mp, sp, mq, sq: torch.log(sq / sp) + (sp**2 + (mp - mq)) / (2 * sq**2) - 0.5,
        "forgot to square the difference",
    ),
    (lambda *a: kl_reference(*a).view(4), "It passed with shape=(4,)"),
    (lambda *a: kl_reference(*a).detach(), "carries no gradient"),
    (lambda mp, sp, mq, sq: kl_reference(mp, sp.detach(), mq, sq), "no gradient reaches `sp`"),
    (_kl_in_place, "modified its input in place"),
]


@pytest.mark.parametrize("f,message", KL_BATTERY)
def test_kl_gaussian_battery(f, message):
    result = ex01.check_kl_gaussian(f)
    assert not result and message in result.message, result.message


def _fgan_in_place(t_p, t_q, f_star):
    t_q.exp_()
    return t_p.mean() - (t_q / math.e).mean()


FGAN_BATTERY = [
    (lambda t_p, t_q, fs: t_p.sum() - fs(t_q).sum(), "summed over the samples"),
    (lambda t_p, t_q, fs: t_p.mean() - fs(t_q.mean()), "applied f* after averaging"),
    (lambda t_p, t_q, fs: t_p.mean() - fs(t_p).mean(), "evaluated f*(T) on P's samples"),
    (lambda t_p, t_q, fs: t_p.mean() - fs(t_q).sum() / len(t_p), "by the number of P's samples"),
    # the notebook's conjugate written in, instead of the one passed
    (lambda t_p, t_q, fs: t_p.mean() - torch.exp(t_q - 1).mean(), "It passed with N=64, M=48"),
    (lambda t_p, t_q, fs: t_p.sum() / 64 - fs(t_q).sum() / 48, "written into your code"),
    (lambda t_p, t_q, fs: (t_p.mean() - fs(t_q).mean()).detach(), "carries no gradient"),
    (lambda t_p, t_q, fs: (t_p.mean() - fs(t_q).mean()).item(), "`.item()`"),
    (_fgan_in_place, "modified its input in place"),
]


@pytest.mark.parametrize("f,message", FGAN_BATTERY)
def test_fgan_bound_battery(f, message):
    result = ex01.check_fgan_bound(f)
    assert not result and message in result.message, result.message


def _dv_good(t_p, t_q):
    return t_p.mean() - (torch.logsumexp(t_q, 0) - math.log(len(t_q)))


DV_BATTERY = [
    (lambda t_p, t_q: t_p.mean() - torch.logsumexp(t_q, 0) / len(t_q), "divided the logsumexp"),
    (
        lambda t_p, t_q: t_p.mean() - (torch.logsumexp(t_q, 0) - math.log(len(t_p))),
        "subtracted log N",
    ),
    (lambda t_p, t_q: t_p.mean() - t_q.exp().mean(), "forgot the log"),
    (lambda t_p, t_q: t_p.sum() - (torch.logsumexp(t_q, 0) - math.log(len(t_q))), "summed E_P"),
    (lambda t_p, t_q: _dv_good(t_q, t_p), "swapped the samples"),
    (
        lambda t_p, t_q: t_p.mean() - (torch.logsumexp(t_q, 0) - math.log(48)),
        "It passed with N=64, M=48",
    ),
    (lambda t_p, t_q: _dv_good(t_p, t_q).detach(), "carries no gradient"),
    (
        lambda t_p, t_q: t_p.mean() - (torch.logsumexp(t_q.detach(), 0) - math.log(len(t_q))),
        "no gradient reaches `t_q`",
    ),
    (lambda t_p, t_q: _dv_good(t_p, t_q.sub_(0.0).add_(1e-3)), "modified its input in place"),
]


@pytest.mark.parametrize("f,message", DV_BATTERY)
def test_donsker_varadhan_battery(f, message):
    result = ex01.check_donsker_varadhan(f)
    assert not result and message in result.message, result.message


def _d_in_place(lp, lm):
    lp -= lm
    return torch.sigmoid(lp)


D_BATTERY = [
    (lambda lp, lm: torch.nn.functional.logsigmoid(lp - lm), "returned log D*"),
    (lambda lp, lm: lp / (lp + lm), "forgot to exponentiate"),
    (lambda lp, lm: torch.sigmoid(lp - lm).sum(), "summed over the points"),
    (lambda lp, lm: torch.sigmoid(lp - lm).view(10), "It passed with shape=(10,)"),
    (_d_in_place, "modified its input `lp` in place"),
]


@pytest.mark.parametrize("f,message", D_BATTERY)
def test_optimal_discriminator_battery(f, message):
    result = ex01.check_optimal_discriminator(f)
    assert not result and message in result.message, result.message

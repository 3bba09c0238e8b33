"""Every check of Lecture 02 passes the reference and names the mistake of plausible wrong answers."""

import math

import pytest
import torch

from coursekit import vae
from coursekit.exercises import vae as checks


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


def _fails_with(result, *fragments: str) -> None:
    assert not result, f"the check passed a wrong answer: {result}"
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


# ----------------------------------------------------------------------------- KL


def test_kl_passes_the_reference():
    assert checks.check_kl_diag_gaussian(vae.kl_std_normal)


def test_kl_names_a_missing_half():
    _fails_with(
        checks.check_kl_diag_gaussian(lambda mu, lv: (mu**2 + lv.exp() - lv - 1).sum(-1)),
        "factor 1/2",
    )


def test_kl_names_a_sum_over_the_batch():
    _fails_with(
        checks.check_kl_diag_gaussian(lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).sum()),
        "shape ()",
        "sum or average over the batch",
    )


def test_kl_names_logvar_read_as_log_sigma():
    _fails_with(
        checks.check_kl_diag_gaussian(
            lambda mu, lv: 0.5 * (mu**2 + torch.exp(2 * lv) - 2 * lv - 1).sum(-1)
        ),
        "read logvar as log(sigma)",
    )


def test_kl_reports_a_stub_as_not_implemented():
    def stub(mu, lv):
        raise NotImplementedError

    _fails_with(checks.check_kl_diag_gaussian(stub), "not implemented yet")


# ----------------------------------------------------------------------------- reparameterization


def test_reparameterize_passes_the_reference():
    assert checks.check_reparameterize(vae.reparameterize)


def test_reparameterize_names_variance_used_as_scale():
    _fails_with(
        checks.check_reparameterize(lambda mu, lv, eps: mu + lv.exp() * eps),
        "used the variance exp(logvar) as the scale",
    )


def test_reparameterize_names_logvar_used_as_scale():
    _fails_with(
        checks.check_reparameterize(lambda mu, lv, eps: mu + lv * eps),
        "used logvar itself as the scale",
    )


def test_reparameterize_rejects_a_detached_sample():
    _fails_with(
        checks.check_reparameterize(lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach()),
        "carries no gradient",
    )


# ----------------------------------------------------------------------------- IWAE


def _reference_iwae(log_w):
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def test_iwae_passes_the_reference():
    assert checks.check_iwae_bound(_reference_iwae)


def test_iwae_names_a_missing_log_k():
    _fails_with(checks.check_iwae_bound(lambda lw: torch.logsumexp(lw, 0)), "forgot the 1/k")


def test_iwae_names_the_elbo():
    _fails_with(checks.check_iwae_bound(lambda lw: lw.mean(0)), "that is the ELBO")


def test_iwae_names_a_naive_exp_that_underflows():
    _fails_with(checks.check_iwae_bound(lambda lw: lw.exp().mean(0).log()), "underflows")

"""Every check of Lecture 05 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: detach missing in the discriminator's step or added in the generator's,
the saturating generator loss, swapped labels, a gradient norm per pixel or over the batch, one
interpolation coefficient for the batch, the penalty at the data, a size written as a number,
a detached result and an input modified in place."""

import pytest
import torch
import torch.nn.functional as F

from coursekit.exercises import gans as checks

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


# ----------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("seed", SEEDS)
def test_discriminator_loss_passes_the_reference(seed):
    assert checks.check_discriminator_loss(checks.reference_discriminator_loss, seed=seed)


def test_discriminator_loss_with_bce_on_probabilities_passes():
    def bce(D, G, x, z):
        p_real, p_fake = torch.sigmoid(D(x)), torch.sigmoid(D(G(z).detach()))
        return F.binary_cross_entropy(p_real, torch.ones_like(p_real)) + F.binary_cross_entropy(
            p_fake, torch.zeros_like(p_fake)
        )

    assert checks.check_discriminator_loss(bce)


def _d(D, G, x, z, *, detach=True, swap=False, sign=1.0, reduce="mean"):
    fake = G(z).detach() if detach else G(z)
    r, f = D(x), D(fake)
    if swap:
        r, f = -r, -f
    red = getattr(torch.Tensor, reduce)
    return sign * (red(F.softplus(-r)) + red(F.softplus(f)))


def _d_in_place(D, G, x, z):
    out = _d(D, G, x, z)
    x.mul_(0)
    return out


WRONG_D = [
    (lambda D, G, x, z: _d(D, G, x, z, detach=False), "sends gradients into the generator"),
    (lambda D, G, x, z: _d(D, G, x, z, swap=True), "swapped the labels"),
    (lambda D, G, x, z: _d(D, G, x, z, sign=-1.0), "flipped the sign"),
    (lambda D, G, x, z: _d(D, G, x, z, reduce="sum"), "summed over the batch"),
    (lambda D, G, x, z: F.softplus(-D(x)).mean(), "forgot the fake term"),
    (lambda D, G, x, z: F.softplus(D(G(z).detach())).mean(), "forgot the real term"),
    (
        lambda D, G, x, z: F.softplus(-D(x)).mean() + F.softplus(-D(G(z).detach())).mean(),
        "non-saturating loss for the fakes",
    ),
    # the notebook's batch of 8 written as a number
    (lambda D, G, x, z: _d(D, G, x, z, reduce="sum") / 8, "It passed with B=8, X=2, Z=3"),
    (lambda D, G, x, z: _d(D, G, x, z).detach(), "carries no gradient"),
    (_d_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_D)
def test_discriminator_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_discriminator_loss(wrong), words)


# ----------------------------------------------------------------------------- generator


@pytest.mark.parametrize("seed", SEEDS)
def test_generator_loss_passes_the_reference(seed):
    assert checks.check_generator_loss(checks.reference_generator_loss, seed=seed)


def _g(D, G, z, *, detach=False, saturating=False, sign=1.0, reduce="mean"):
    f = D(G(z).detach() if detach else G(z))
    red = getattr(torch.Tensor, reduce)
    return sign * (-red(F.softplus(f)) if saturating else red(F.softplus(-f)))


def _g_no_grad(D, G, z):
    with torch.no_grad():
        return _g(D, G, z)


WRONG_G = [
    (lambda D, G, z: _g(D, G, z, detach=True), "no gradient reaches the generator"),
    (lambda D, G, z: _g(D, G, z, saturating=True), "saturating loss"),
    (lambda D, G, z: _g(D, G, z, sign=-1.0), "flipped the sign"),
    (lambda D, G, z: _g(D, G, z, reduce="sum"), "summed over the batch"),
    (lambda D, G, z: F.softplus(D(G(z))).mean(), "trains G to look fake"),
    (lambda D, G, z: D(G(z)).mean(), "returned D(G(z)) averaged"),
    (lambda D, G, z: _g(D, G, z, reduce="sum") / 8, "It passed with B=8, X=2, Z=3"),
    (_g_no_grad, "no gradient reaches the generator"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_G)
def test_generator_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_generator_loss(wrong), words)


def test_generator_loss_with_a_partly_detached_path_is_a_wrong_gradient():
    def half(D, G, z):
        x = G(z)
        return F.softplus(-D(0.5 * x + 0.5 * x.detach())).mean()

    _fails_with(checks.check_generator_loss(half), "wrong gradient")


# ----------------------------------------------------------------------------- gradient penalty


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_penalty_passes_the_reference(seed):
    assert checks.check_gradient_penalty(checks.reference_gradient_penalty, seed=seed)


def test_gradient_penalty_written_out_passes():
    def gp(critic, real, fake, eps):
        e = eps.reshape(-1, *[1] * (real.dim() - 1))
        x = (e * real + (1 - e) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return ((g.reshape(len(g), -1).norm(dim=1) - 1) ** 2).mean()

    assert checks.check_gradient_penalty(gp)


def _gp_no_graph(critic, real, fake, eps):
    e = eps.view(-1, *[1] * (real.dim() - 1))
    x = (e * real + (1 - e) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)  # create_graph forgotten
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _gp_in_place(critic, real, fake, eps):
    out = checks._gp(critic, real, fake, eps)
    real.mul_(0)
    return out


def _gp_fixed_4d(critic, real, fake, eps):  # (B, 1, 1, 1) written for images: fails on 2-D
    e = eps.view(-1, 1, 1, 1)
    x = (e * real + (1 - e) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


WRONG_GP = [
    (lambda c, r, f, e: checks._gp(c, r, f, e, dims="dim1"), "norm over dim=1 only"),
    (lambda c, r, f, e: checks._gp(c, r, f, e, dims="all"), "one norm over the whole batch"),
    (lambda c, r, f, e: checks._gp(c, r, f, e, shared=True), "one interpolation coefficient"),
    (lambda c, r, f, e: checks._gp(c, r, f, e, at="real"), "at the real data"),
    (lambda c, r, f, e: checks._gp(c, r, f, e, at="fake"), "at the fakes"),
    (lambda c, r, f, e: checks._gp(c, f, r, e), "swapped eps and 1 - eps"),
    (lambda c, r, f, e: checks._gp(c, r, f, e, square=False), "forgot the square"),
    (lambda c, r, f, e: 10 * checks._gp(c, r, f, e), "does not match the reference"),
    (_gp_fixed_4d, "your code raised"),
    (_gp_no_graph, "create_graph=True"),
    (lambda c, r, f, e: checks._gp(c, r, f, e).detach(), "create_graph=True"),
    (_gp_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_GP)
def test_gradient_penalty_names_the_mistake(wrong, words):
    _fails_with(checks.check_gradient_penalty(wrong), words)


def test_gradient_penalty_norm_per_pixel_fails_only_on_images():
    # on 2-D inputs norm(dim=1) is right; the image-shaped case is what catches it
    result = checks.check_gradient_penalty(lambda c, r, f, e: checks._gp(c, r, f, e, dims="dim1"))
    _fails_with(result, "(6, 1, 4, 4)")


# ----------------------------------------------------------------------------- cycle consistency


@pytest.mark.parametrize("seed", SEEDS)
def test_cycle_loss_passes_the_reference(seed):
    assert checks.check_cycle_loss(checks.reference_cycle_loss, seed=seed)


def test_cycle_loss_written_with_l1_loss_passes():
    def cyc(G_ab, G_ba, a, b):
        return F.l1_loss(G_ba(G_ab(a)), a) + F.l1_loss(G_ab(G_ba(b)), b)

    assert checks.check_cycle_loss(cyc)


def _cyc_in_place(G_ab, G_ba, a, b):
    out = checks.reference_cycle_loss(G_ab, G_ba, a, b)
    a.mul_(0)
    return out


def _cyc_half_detached(G_ab, G_ba, a, b):  # the second translator's output detached
    return (G_ba(G_ab(a)).detach() - a).abs().mean() + (G_ab(G_ba(b).detach()) - b).abs().mean()


def _cyc_fixed_batch(G_ab, G_ba, a, b):  # the notebook's batch of 4 written as a number
    return (G_ba(G_ab(a)) - a).abs().flatten(1).mean(1).sum() / 4 + (G_ab(G_ba(b)) - b).abs().mean()


WRONG_CYCLE = [
    (lambda G, F_, a, b: (F_(G(a)) - a).abs().mean(), "only the A -> B -> A cycle"),
    (lambda G, F_, a, b: (G(F_(b)) - b).abs().mean(), "only the B -> A -> B cycle"),
    (
        lambda G, F_, a, b: (F_(G(a)) - a).pow(2).mean() + (G(F_(b)) - b).pow(2).mean(),
        "squared error",
    ),
    (
        lambda G, F_, a, b: (G(G(a)) - a).abs().mean() + (F_(F_(b)) - b).abs().mean(),
        "composed a translator with itself",
    ),
    (
        lambda G, F_, a, b: (G(a) - a).abs().mean() + (F_(b) - b).abs().mean(),
        "translate there and back",
    ),
    (
        lambda G, F_, a, b: (F_(G(a)) - a).abs().sum() + (G(F_(b)) - b).abs().sum(),
        "summed over the elements",
    ),
    (lambda G, F_, a, b: checks.reference_cycle_loss(G, F_, a, b) / 2, "their sum"),
    (_cyc_fixed_batch, "It passed with B=4, C=1, H=4"),
    (_cyc_half_detached, "wrong gradient"),
    (lambda G, F_, a, b: checks.reference_cycle_loss(G, F_, a, b).detach(), "carries no gradient"),
    (_cyc_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_CYCLE)
def test_cycle_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_cycle_loss(wrong), words)


# ----------------------------------------------------------------------------- inversion objective


@pytest.mark.parametrize("seed", SEEDS)
def test_inversion_loss_passes_the_reference(seed):
    assert checks.check_inversion_loss(checks.reference_inversion_loss, seed=seed)


def test_inversion_loss_with_a_broadcast_mask_sum_passes():
    def inv(G, z, x, mask):
        m = mask * torch.ones_like(x)
        return ((G(z) - x) ** 2 * m).sum((1, 2, 3)) / m.sum((1, 2, 3))

    assert checks.check_inversion_loss(inv)


def _inv_detached(G, z, x, mask):  # G(z) detached: no gradient reaches z
    return checks.reference_inversion_loss(lambda v: G(v).detach(), z, x, mask)


def _inv_fixed_channels(G, z, x, mask):  # the notebook's one channel written as a number
    m = mask.expand_as(x)
    return (m * (G(z) - x)).pow(2).flatten(1).sum(1) / (mask.flatten(1).sum(1) * 1)


def _inv_in_place(G, z, x, mask):
    out = checks.reference_inversion_loss(G, z, x, mask)
    x.mul_(0)
    return out


def _sq(G, z, x, mask):
    return (mask.expand_as(x) * (G(z) - x)).pow(2).flatten(1).sum(1)


def _count(x, mask):
    return mask.expand_as(x).flatten(1).sum(1)


WRONG_INVERSION = [
    (lambda G, z, x, m: (G(z) - x).pow(2).flatten(1).mean(1), "ignored the mask"),
    (lambda G, z, x, m: _sq(G, z, x, m) / x[0].numel(), "divided by every pixel"),
    (lambda G, z, x, m: _sq(G, z, x, m) / _count(x, m).sum(), "whole batch's visible count"),
    (_inv_fixed_channels, "not once per channel"),
    (
        lambda G, z, x, m: (m.expand_as(x) * (G(z) - x)).abs().flatten(1).sum(1) / _count(x, m),
        "absolute error",
    ),
    (_sq, "divide the sum by |m|"),
    (
        lambda G, z, x, m: (m * G(z) - x).pow(2).flatten(1).sum(1) / _count(x, m),
        "mask the difference",
    ),
    (lambda G, z, x, m: checks.reference_inversion_loss(G, z, x, m).mean(), "one number"),
    (_inv_detached, "carries no gradient"),
    (_inv_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_INVERSION)
def test_inversion_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_inversion_loss(wrong), words)


def test_the_channel_mistake_passes_one_channel_and_fails_two():
    # the notebook's case has C = 1, where counting the mask once is right: the second case
    # (C = 2) is what catches it, and the message names that case
    _fails_with(checks.check_inversion_loss(_inv_fixed_channels), "C=2", "once per channel")

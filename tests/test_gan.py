"""coursekit.gan against closed forms: the optimal discriminator, the gradient penalty of a
linear critic, a 1-D Gaussian GAN's mean and variance, mode counting."""

import math

import pytest
import torch
from torch import nn

from coursekit import gan, models, train

CPU = torch.device("cpu")


def test_the_optimal_discriminator_between_two_gaussians():
    # p = N(0, 1), q = N(1, 1): D* = p / (p + q), logit log p/q = 1/2 - x; V(G, D*) = 2 JS - log 4
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    d = nn.Linear(1, 1)
    opt = torch.optim.Adam(d.parameters(), 5e-2)
    for _ in range(600):
        p, q = torch.randn(512, 1, generator=g), 1 + torch.randn(512, 1, generator=g)
        opt.zero_grad()
        gan.d_gan(d(p), d(q)).backward()
        opt.step()
    assert d.weight.item() == pytest.approx(-1.0, abs=0.1)
    assert d.bias.item() == pytest.approx(0.5, abs=0.1)
    # -d_gan at D* equals 2 JS - log 4 (up to Monte Carlo); JS from a quadrature
    x = torch.linspace(-10, 11, 20001, dtype=torch.float64)
    pp, qq = (
        torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi),
        torch.exp(-((x - 1) ** 2) / 2) / math.sqrt(2 * math.pi),
    )
    m = (pp + qq) / 2
    js = 0.5 * torch.trapezoid(pp * torch.log(pp / m) + qq * torch.log(qq / m), x).item()
    p, q = torch.randn(200_000, 1, generator=g), 1 + torch.randn(200_000, 1, generator=g)
    logit = lambda t: 0.5 - t  # noqa: E731
    v = -gan.d_gan(logit(p), logit(q)).item()
    assert v == pytest.approx(2 * js - math.log(4), abs=0.01)


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 3)])
def test_gradient_penalty_of_a_linear_critic_is_hand_computable(shape):
    # D(x) = <w, x>: the gradient is w at every point, so the penalty is weight (||w|| - 1)^2
    w = torch.randn(shape[1:], generator=torch.Generator().manual_seed(1))
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731
    real, fake = torch.randn(shape), torch.randn(shape)
    gp = gan.gradient_penalty(critic, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(10 * (w.norm().item() - 1) ** 2, rel=1e-5)


def test_gradient_penalty_uses_per_sample_interpolates_and_reaches_the_critic():
    # D(x) = sum(x^2)/2 has gradient x_hat: the penalty depends on each sample's eps
    lin = nn.Linear(3, 1)
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    eps = torch.rand(6)
    gp = gan.gradient_penalty(lambda x: 0.5 * (x**2).sum(1), real, fake, eps=eps, weight=1.0)
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    assert gp.item() == pytest.approx(((x_hat.norm(dim=1) - 1) ** 2).mean().item(), rel=1e-5)
    gp = gan.gradient_penalty(lambda x: torch.tanh(lin(x)), real, fake)
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one coefficient per sample"):
        gan.interpolate(real, fake, torch.rand(1))


def test_r1_is_zero_for_a_constant_critic_and_gamma_half_norm_squared_for_linear():
    w = torch.tensor([[3.0, 4.0]])
    pen = gan.r1_penalty(gamma=2.0)(lambda x: x @ w.T, torch.randn(7, 2), torch.randn(7, 2))
    assert pen.item() == pytest.approx(25.0)


def test_weight_clipping_keeps_the_weights_in_the_box():
    lin = nn.Linear(4, 1)
    opt = torch.optim.SGD(lin.parameters(), 10.0)
    gan.clip_weights_after_step(opt, 0.05)
    lin(torch.randn(8, 4)).sum().backward()
    opt.step()
    assert all(p.abs().max() <= 0.05 for p in lin.parameters())


def test_a_gan_on_a_1d_gaussian_reaches_its_mean_and_variance():
    torch.manual_seed(0)
    G, D = gan.MLPGenerator(4, (1,), hidden=32, depth=2), gan.MLPCritic(1, hidden=32, depth=2)
    adv = train.Adversarial(
        G, D, gan.g_nonsaturating, gan.d_gan,
        g_opt=torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
        noise=train.gaussian_noise(4), gradient_penalty=gan.r1_penalty(1.0),
    )  # fmt: skip
    data = 2.0 + 0.5 * torch.randn(8192, 1, generator=torch.Generator().manual_seed(1))
    train.fit(adv, data, steps=1500, batch_size=128, progress=False, device=CPU)
    with torch.no_grad():
        x = G(torch.randn(20_000, 4))
    assert x.mean().item() == pytest.approx(2.0, abs=0.1)
    assert x.std().item() == pytest.approx(0.5, abs=0.1)


def test_mode_coverage_counts_modes_and_quality():
    c = gan.ring_centers(8)
    std = 0.5 / math.sqrt(2)
    from coursekit import data

    full = gan.mode_coverage(data.toy_2d("8gaussians", 4000), c, std)
    assert full["modes"] == 8 and full["high_quality"] > 0.95
    three = c[torch.randint(0, 3, (4000,))] + 0.1 * torch.randn(4000, 2)
    assert gan.mode_coverage(three, c, std)["modes"] == 3
    assert gan.mode_coverage(torch.full((100, 2), 50.0), c, std) == {
        "modes": 0,
        "high_quality": 0.0,
    }
    ring = gan.ring_of_gaussians(3000, k=16, std=0.05)
    assert gan.mode_coverage(ring, gan.ring_centers(16, 2.0), 0.05)["modes"] == 16


def test_packed_critic_judges_packs_and_rejects_a_bad_batch():
    d = gan.MLPCritic(2, hidden=8, depth=1, pack=4)
    assert d(torch.randn(12, 2)).shape == (3, 1)
    with pytest.raises(ValueError, match="divisible by pack=4"):
        d(torch.randn(10, 2))


def test_gan_model_has_no_likelihood_and_samples_in_range():
    case = models.conformance_cases()["gan_dcgan"]()
    with pytest.raises(NotImplementedError, match="no density"):
        case.model.log_prob(case.x)
    x = case.model.sample(5, generator=torch.Generator().manual_seed(0), psi=0.5)
    assert x.shape == (5, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="norm must be"):
        gan.DCCritic(norm="spectral")


# ----------------------------------------------------------------------------- unrolled GAN


def _tiny_players(seed=0):
    torch.manual_seed(seed)
    G = gan.MLPGenerator(3, (2,), hidden=8, depth=1).double()
    D = gan.MLPCritic(2, hidden=8, depth=1).double()
    return G, D


def test_unrolled_params_are_sgd_steps_on_the_critic_loss_and_leave_the_critic_alone():
    G, D = _tiny_players()
    real, fake = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    same = gan.unrolled_params(D, gan.d_gan, real, fake, steps=0, lr=0.1)
    assert all(torch.equal(same[k], before[k]) for k in before)
    # two SGD steps by hand, on a copy of the critic
    copy = __import__("copy").deepcopy(D)
    sgd = torch.optim.SGD(copy.parameters(), lr=0.1)
    for _ in range(2):
        sgd.zero_grad()
        gan.d_gan(copy(real), copy(fake)).backward()
        sgd.step()
    ahead = gan.unrolled_params(D, gan.d_gan, real, fake, steps=2, lr=0.1)
    for k, v in copy.named_parameters():
        torch.testing.assert_close(ahead[k], v)
    assert all(torch.equal(D.state_dict()[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="look-ahead"):
        gan.unrolled_params(D, gan.d_gan, real, fake, steps=-1, lr=0.1)


def test_unrolled_generator_gradient_matches_finite_differences_through_the_look_ahead():
    G, D = _tiny_players(1)
    real, z = torch.randn(32, 2, dtype=torch.float64), torch.randn(32, 3, dtype=torch.float64)
    w = G.net[-1].weight

    def surrogate():  # g_loss at the critic's parameters after 3 look-ahead steps
        fake = G(z)
        p = gan.unrolled_params(D, gan.d_gan, real, fake, steps=3, lr=0.5)
        return gan.g_nonsaturating(torch.func.functional_call(D, p, (fake,)))

    (grad,) = torch.autograd.grad(surrogate(), w)
    h, numeric = 1e-6, torch.zeros_like(w)

    def shifted(i, by):  # the surrogate with one weight moved (the look-ahead needs autograd)
        with torch.no_grad():
            w.view(-1)[i] += by
        out = surrogate().item()
        with torch.no_grad():
            w.view(-1)[i] -= by
        return out

    for i in range(w.numel()):
        numeric.view(-1)[i] = (shifted(i, h) - shifted(i, -h)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)
    # the look-ahead matters: the plain (k = 0) gradient is a different one
    fake = G(z)
    (plain,) = torch.autograd.grad(gan.g_nonsaturating(D(fake)), w)
    assert not torch.allclose(plain, grad, rtol=1e-3)


def _trained(cls, **kw):
    G, D = _tiny_players(2)
    G, D = G.float(), D.float()
    adv = cls(
        G,
        D,
        gan.g_nonsaturating,
        gan.d_gan,
        noise=train.gaussian_noise(3),
        g_opt=torch.optim.Adam(G.parameters(), 1e-2),
        d_opt=torch.optim.Adam(D.parameters(), 1e-2),
        **kw,
    )
    train.fit(adv, torch.randn(256, 2), steps=6, batch_size=32, progress=False)
    return G, D


def test_unrolled_adversarial_with_zero_steps_is_the_plain_gan_and_k_changes_the_generator():
    G0, D0 = _trained(train.Adversarial)
    G1, D1 = _trained(gan.UnrolledAdversarial, unroll_steps=0)
    for a, b in zip([*G0.parameters(), *D0.parameters()], [*G1.parameters(), *D1.parameters()]):
        torch.testing.assert_close(a, b)
    G5, _ = _trained(gan.UnrolledAdversarial, unroll_steps=5, unroll_lr=0.5)
    assert not all(torch.allclose(a, b) for a, b in zip(G0.parameters(), G5.parameters()))


def test_unrolled_adversarial_refuses_a_batch_norm_critic():
    G = gan.MLPGenerator(3, (2,), hidden=8, depth=1)
    D = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="batch norm"):
        gan.UnrolledAdversarial(
            G,
            D,
            gan.g_nonsaturating,
            gan.d_gan,
            noise=train.gaussian_noise(3),
            g_opt=torch.optim.Adam(G.parameters()),
            d_opt=torch.optim.Adam(D.parameters()),
        )

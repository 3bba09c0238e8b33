"""Oracle tests for coursekit.vae and coursekit.likelihoods.

Oracles: torch.distributions for densities and the KL, brute-force enumeration of a tiny
support for the discrete likelihoods, and numerical quadrature over a 1-D latent for
log p(x) itself (so that ELBO <= IWAE_k <= log p(x) and log p(x) = ELBO + KL(q || posterior)
are checked against the truth, not against each other).
"""

import itertools
import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from coursekit import likelihoods as L
from coursekit import vae


def _grid(levels: int, num_pixels: int) -> torch.Tensor:
    """Every image of ``num_pixels`` pixels with ``levels`` grey levels: (levels**n, 1, n) in [0, 1]."""
    values = [k / (levels - 1) for k in range(levels)]
    return torch.tensor(list(itertools.product(values, repeat=num_pixels))).view(-1, 1, num_pixels)


# ----------------------------------------------------------------------------- KL and densities


def test_kl_std_normal_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    expected = D.kl_divergence(q, D.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(vae.kl_std_normal(mu, logvar), expected)


def test_kl_std_normal_matches_monte_carlo():
    gen = torch.Generator().manual_seed(1)
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[-0.5, 0.3]])
    z = vae.reparameterize(mu, logvar, torch.randn(200_000, 2, generator=gen))
    log_q = vae.log_normal_diag(z, mu, logvar)
    log_p = vae.log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))
    mc = (log_q - log_p).mean()
    assert abs(mc.item() - vae.kl_std_normal(mu, logvar).item()) < 0.02


def test_log_normal_diag_matches_torch_distributions():
    gen = torch.Generator().manual_seed(2)
    z, mu, logvar = (torch.randn(4, 3, generator=gen) for _ in range(3))
    expected = D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(vae.log_normal_diag(z, mu, logvar), expected)


def test_reparameterize_has_the_moments_of_q_and_gradients():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    eps = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(3))
    z = vae.reparameterize(mu, logvar, eps)
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.03, rtol=0)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- likelihoods


@pytest.mark.parametrize(
    "likelihood, levels",
    [(L.Bernoulli(), 2), (L.Categorical(3), 3), (L.DiscretizedLogistic(5), 5)],
    ids=["bernoulli", "categorical", "discretized-logistic"],
)
def test_discrete_likelihoods_sum_to_one_over_the_support(likelihood, levels):
    num_pixels = 3
    x = _grid(levels, num_pixels)  # (levels**3, 1, 3): the whole support
    gen = torch.Generator().manual_seed(4)
    params = torch.randn(1, *likelihood.param_shape((1, num_pixels)), generator=gen)
    params = params.expand(len(x), *params.shape[1:])
    total = likelihood.log_prob(params, x).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0), atol=1e-5, rtol=0)


def test_discretized_logistic_is_stable_and_normalized_for_sharp_scales():
    x = _grid(17, 1)  # (17, 1, 1)
    params = torch.tensor([0.3, -6.0]).view(1, 2, 1, 1).expand(17, 2, 1, 1)
    logp = L.DiscretizedLogistic(17).log_prob(params, x)
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(logp.exp().sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_categorical_matches_torch_distributions():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 1, 3, generator=gen)  # (B, levels, C, W)
    k = torch.randint(0, 4, (2, 1, 3), generator=gen)
    expected = D.Categorical(logits=logits.movedim(1, -1)).log_prob(k).flatten(1).sum(1)
    torch.testing.assert_close(L.Categorical(4).log_prob(logits, k / 3), expected)


@pytest.mark.parametrize("std", [0.1, None], ids=["fixed-std", "learned-std"])
def test_gaussian_matches_torch_distributions(std):
    gen = torch.Generator().manual_seed(6)
    lik = L.Gaussian(std=std)
    params = torch.randn(3, *lik.param_shape((1, 2, 2)), generator=gen)
    x = torch.rand(3, 1, 2, 2, generator=gen)
    mu, log_std = (params, torch.full_like(params, math.log(0.1))) if std else params.unbind(1)
    expected = D.Normal(mu, log_std.exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(lik.log_prob(params, x), expected)


@pytest.mark.parametrize(
    "likelihood, levels",
    [(L.Bernoulli(), 2), (L.Categorical(4), 4), (L.DiscretizedLogistic(4), 4)],
    ids=["bernoulli", "categorical", "discretized-logistic"],
)
def test_samples_follow_the_likelihood(likelihood, levels):
    gen = torch.Generator().manual_seed(7)
    params = torch.randn(1, *likelihood.param_shape((1, 1)), generator=gen)
    support = _grid(levels, 1)  # (levels, 1, 1)
    probs = likelihood.log_prob(params.expand(levels, *params.shape[1:]), support).exp()
    n = 40_000
    xs = likelihood.sample(params.expand(n, *params.shape[1:]), generator=gen)  # (n, 1, 1)
    freq = torch.stack([(xs.flatten() == v).float().mean() for v in support.flatten()])
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)
    # the mean is the expectation of that distribution
    mean = likelihood.mean(params).flatten()
    if not isinstance(likelihood, L.DiscretizedLogistic):  # its mean() is the location
        torch.testing.assert_close(mean, (probs * support.flatten()).sum().view(1))


# ----------------------------------------------------------------------------- VAE


def _tiny_vae(latent_dim: int = 1, pixels: int = 3, seed: int = 0) -> vae.VAE:
    torch.manual_seed(seed)
    encoder = nn.Sequential(
        nn.Flatten(), nn.Linear(pixels, 8), nn.Tanh(), nn.Linear(8, 2 * latent_dim)
    )
    decoder = nn.Sequential(nn.Linear(latent_dim, 8), nn.Tanh(), nn.Linear(8, pixels))
    with torch.no_grad():  # a decoder that depends strongly on z, so the posterior is not trivial
        decoder[0].weight.mul_(3)
    return vae.VAE(encoder, decoder, L.Bernoulli(), latent_dim=latent_dim, x_shape=(1, pixels))


def _exact_log_px(
    model: vae.VAE, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(x) by quadrature over a 1-D latent: (B,), plus the grid and log p(x, z) on it."""
    z = torch.linspace(-10, 10, 20001, dtype=x.dtype).view(-1, 1)  # (G, 1)
    dz = z[1, 0] - z[0, 0]
    params = model.decode(z)  # (G, 1, P)
    log_px_z = torch.stack(
        [model.likelihood.log_prob(params, xi.expand(len(z), *xi.shape)) for xi in x]
    )
    log_joint = log_px_z + D.Normal(0.0, 1.0).log_prob(z.view(1, -1))  # (B, G)
    return torch.logsumexp(log_joint, 1) + dz.log(), z.view(-1), log_joint


@torch.no_grad()
def test_elbo_identity_and_iwae_against_exact_log_likelihood():
    model = _tiny_vae().double()  # float64: the quadrature sums 20001 terms
    x = _grid(2, 3)[[1, 5, 6]].double()  # three binary images, (3, 1, 3)
    log_px, z, log_joint = _exact_log_px(model, x)
    mu, logvar = model.encode(x)
    # log p(x) = ELBO + KL(q(z|x) || p(z|x)), every term by quadrature (Kingma & Welling eq. 1)
    dz = z[1] - z[0]
    log_q = vae.log_normal_diag(
        z.view(1, -1, 1), mu.view(-1, 1, 1), logvar.view(-1, 1, 1)
    )  # (B, G)
    q = log_q.exp()
    log_post = log_joint - log_px.view(-1, 1)
    kl_post = (q * (log_q - log_post)).sum(1) * dz
    elbo_quad = (q * (log_joint - log_q)).sum(1) * dz
    torch.testing.assert_close(elbo_quad + kl_post, log_px, atol=1e-6, rtol=0)
    # our ELBO (analytic KL, Monte Carlo reconstruction) agrees with the quadrature ELBO
    eps = torch.randn(20_000, 3, 1, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
    mc_elbo = torch.stack([model.elbo(x, eps=e).elbo for e in eps[:4000]]).mean(0)
    torch.testing.assert_close(mc_elbo, elbo_quad, atol=0.03, rtol=0)
    # IWAE with many samples approaches log p(x) from below
    iwae = model.iwae_bound(x, k=20_000, eps=eps)
    assert (iwae <= log_px + 1e-3).all()
    torch.testing.assert_close(iwae, log_px, atol=5e-3, rtol=0)
    assert (elbo_quad < log_px - 1e-3).all(), "the test needs a posterior that q does not match"


@torch.no_grad()
def test_iwae_at_k1_is_the_single_sample_elbo():
    model = _tiny_vae(latent_dim=2)
    x = _grid(2, 3)[[2, 7]]
    eps = torch.randn(1, 2, 2, generator=torch.Generator().manual_seed(9))  # (k=1, B, D_z)
    mu, logvar = model.encode(x)
    z = vae.reparameterize(mu, logvar, eps[0])
    single_sample_elbo = (
        model.likelihood.log_prob(model.decode(z), x)
        + vae.log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))
        - vae.log_normal_diag(z, mu, logvar)
    )
    torch.testing.assert_close(model.iwae_bound(x, k=1, eps=eps), single_sample_elbo)
    # and the reconstruction term of elbo() with the same noise is the same log p(x | z)
    terms = model.elbo(x, eps=eps[0])
    torch.testing.assert_close(terms.recon, model.likelihood.log_prob(model.decode(z), x))


@torch.no_grad()
def test_iwae_is_non_decreasing_in_k_in_expectation():
    model = _tiny_vae(latent_dim=2)
    x = _grid(2, 3)[[1, 6]]
    gen = torch.Generator().manual_seed(10)
    means = []
    for k in [1, 2, 8, 64]:
        draws = torch.stack([model.iwae_bound(x, k=k, generator=gen) for _ in range(400)])
        means.append(draws.mean(0))
    means = torch.stack(means)  # (4, B)
    assert (means[1:] >= means[:-1] - 2e-3).all(), means
    assert (means[-1] - means[0] > 0.01).all(), "the bound should tighten visibly from k=1 to 64"


def test_iwae_chunking_does_not_change_the_result():
    model = _tiny_vae(latent_dim=2)
    x = _grid(2, 3)
    eps = torch.randn(50, len(x), 2, generator=torch.Generator().manual_seed(11))
    whole = model.log_weights(x, k=50, eps=eps)
    chunked = model.log_weights(x, k=50, eps=eps, chunk=3 * len(x))
    torch.testing.assert_close(whole, chunked)


def test_log_prob_points_to_the_importance_sampled_estimate():
    with pytest.raises(NotImplementedError, match="log_likelihood"):
        _tiny_vae().log_prob(torch.zeros(2, 1, 3))


def test_loss_keys_gradients_and_kl_weight_schedule():
    model = _tiny_vae(latent_dim=2)
    model.kl_warmup, model.beta = 4, 2.0
    x = _grid(2, 3)
    eps = torch.zeros(len(x), 2)
    assert model.kl_weight().item() == 0.0
    out = model.loss(x, eps=eps)
    assert {"loss", "elbo", "recon", "kl", "bpd"} <= out.keys()
    torch.testing.assert_close(out["loss"], out["recon"])  # weight 0 at the first update
    out["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    for _ in range(5):
        model.loss(x, eps=eps)
    assert model.kl_weight().item() == 2.0  # reached beta after kl_warmup updates, then stays
    torch.testing.assert_close(out["bpd"], -out["elbo"] / (3 * math.log(2)))


def test_free_bits_floors_the_kl_per_dimension():
    model = _tiny_vae(latent_dim=2)
    x = _grid(2, 3)
    eps = torch.zeros(len(x), 2)
    terms = model.elbo(x, eps=eps)
    model.free_bits = 100.0  # far above any dimension's KL: the KL term is the constant floor
    out = model.loss(x, eps=eps)
    torch.testing.assert_close(out["loss"], -terms.recon.mean() + 2 * 100.0)


@torch.no_grad()
def test_sample_shape_range_and_generator():
    model = _tiny_vae(latent_dim=2)
    a = model.sample(6, generator=torch.Generator().manual_seed(0))
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert a.shape == (6, 1, 3) and ((a == 0) | (a == 1)).all()
    torch.testing.assert_close(a, b)
    m = model.sample(6, generator=torch.Generator().manual_seed(0), mean=True)
    assert ((m > 0) & (m < 1)).all()


def test_active_units_counts_the_dimensions_that_move_with_x():
    class Encoder(nn.Module):
        def forward(self, x):  # mu_0 follows x, mu_1 is constant, logvar 0
            B = len(x)
            mu = torch.stack([x.flatten(1).sum(1), torch.full((B,), 0.3)], 1)
            return torch.cat([mu, torch.zeros(B, 2)], 1)

    model = vae.VAE(Encoder(), nn.Linear(2, 3), L.Bernoulli(), latent_dim=2, x_shape=(1, 3))
    count, activity = vae.active_units(model, _grid(2, 3))
    assert count == 1 and activity[1] == 0


def test_conditional_vae_needs_labels():
    case = vae.model._tiny_cvae()
    with pytest.raises(ValueError, match="labels y"):
        case.model.loss(case.x)
    out = case.model.loss(case.x, case.y)
    assert torch.isfinite(out["loss"])
    samples = case.model.sample(3, torch.tensor([0, 1, 2]))
    assert samples.shape == (3, 1, 8, 8)


def test_autoregressive_likelihood_is_autoregressive_and_normalized():
    lik = L.AutoregressiveCategorical(3, (1, 3), hidden=8)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in lik.parameters():
            p.normal_()
    x = _grid(3, 3)  # (27, 1, 3): the whole support
    params = torch.randn(1, 3, 1, 3).expand(len(x), 3, 1, 3)
    torch.testing.assert_close(
        lik.log_prob(params, x).exp().sum(), torch.tensor(1.0), atol=1e-5, rtol=0
    )
    # logits of pixel i depend on pixels j < i only: the autograd Jacobian is strictly lower
    x0 = torch.rand(1, 1, 3, requires_grad=True)
    jac = torch.autograd.functional.jacobian(
        lambda v: lik._logits(params[:1], v).sum(1).flatten(), x0
    )
    jac = jac.view(3, 3).abs()  # (output pixel, input pixel)
    below = torch.ones(3, 3).tril(-1).bool()
    assert (jac[~below] == 0).all() and (jac[below] != 0).all()


# ----------------------------------------------------------------------------- shapes and MIG


def test_shapes_are_a_pure_function_of_the_seed():
    from coursekit import data

    state = torch.get_rng_state()
    a, b, c = (
        data.shapes(50, size=16, seed=3),
        data.shapes(50, size=16, seed=3),
        data.shapes(50, size=16, seed=4),
    )
    assert torch.equal(torch.get_rng_state(), state), "shapes() must not touch the global RNG"
    assert torch.equal(a.images, b.images) and torch.equal(a.factors, b.factors)
    assert not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.images.shape == (50, 1, 16, 16) and a.levels == 2
    assert torch.equal(a.labels, a.factors[:, 0].long())


def test_shapes_are_drawn_where_their_factors_say():
    from coursekit.data.sprites import RADIUS, render_shapes, shapes

    s = shapes(300, size=32, seed=0)
    img = s.images[:, 0].float()  # (N, 32, 32)
    grid = (torch.arange(32) + 0.5) / 32
    mass = img.sum((1, 2))
    cx = (img * grid.view(1, 1, -1)).sum((1, 2)) / mass
    cy = (img * grid.view(1, -1, 1)).sum((1, 2)) / mass
    # the centroid of every shape (all three are centrally symmetric about their centre or,
    # for the triangle, have their centroid there) is its (x, y) factor, to within a pixel
    assert (cx - s.factors[:, 3]).abs().max() < 1 / 32
    assert (cy - s.factors[:, 4]).abs().max() < 1 / 32
    # areas against the closed forms, at scale 1 (32 x 32 pixels)
    r = RADIUS * 32
    centred = torch.tensor(
        [[0.0, 1.0, 0.3, 0.5, 0.5], [1.0, 1.0, 0.3, 0.5, 0.5], [2.0, 1.0, 0.3, 0.5, 0.5]]
    )
    areas = render_shapes(centred, 32).float().sum((1, 2, 3))
    expected = torch.tensor([(1.4 * r) ** 2, math.pi * r * r / 2, 3 * math.sqrt(3) / 4 * r * r])
    torch.testing.assert_close(areas, expected, rtol=0.08, atol=0)
    # subsets keep images and factors in step
    sub = s.subset(20, seed=1)
    assert torch.equal(render_shapes(sub.factors, 32), sub.images)


def test_mig_is_one_for_a_perfect_code_and_low_for_a_mixed_one():
    from coursekit.data.sprites import shapes
    from coursekit.metrics import disentanglement as dis

    f = shapes(4000, size=8, seed=0).factors  # (N, 5)
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    perfect = torch.cat([f[:, [2, 0, 4, 1, 3]], noise], 1)  # each factor in its own latent
    score = dis.mutual_information_gap(perfect, f)
    assert score.value > 0.9, score.per_factor
    rot = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))[0]
    mixed = torch.cat(
        [(f - f.mean(0)) / f.std(0) @ rot, noise], 1
    )  # every latent sees every factor
    assert dis.mutual_information_gap(mixed, f).value < 0.3


def test_mutual_information_matches_sklearn():
    from sklearn.metrics import mutual_info_score

    from coursekit.metrics.disentanglement import _mutual_info

    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (1000,), generator=gen).numpy()
    b = (a + torch.randint(0, 3, (1000,), generator=gen).numpy()) % 6
    assert abs(_mutual_info(a, b) - mutual_info_score(a, b)) < 1e-10


def test_a_density_decoder_logs_a_continuous_figure_not_bpd():
    torch.manual_seed(0)
    x = _grid(2, 3)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    for lik, key, other in [
        (L.Gaussian(std=0.1), "bpd_continuous", "bpd"),
        (L.Bernoulli(), "bpd", "bpd_continuous"),
    ]:
        model = vae.VAE(encoder, nn.Linear(1, 3), lik, latent_dim=1, x_shape=(1, 3))
        out = model.loss(x, eps=torch.zeros(len(x), 1))
        assert key in out and other not in out
        torch.testing.assert_close(out[key], -out["elbo"] / (3 * math.log(2)))
    assert L.Gaussian().discrete is False
    assert all(c.discrete for c in (L.Bernoulli(), L.Categorical(3), L.DiscretizedLogistic(3)))

"""Lecture 05 topics 6-7 against closed forms: the modulated convolution equals a convolution
with per-sample modulated weights and demodulation gives unit-variance outputs; truncation and
style mixing; inversion recovers a known latent of a linear generator and logs the drift."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit import gan, models, train
from coursekit.gan import inversion, stylegan


def test_modulated_conv_equals_a_convolution_with_per_sample_modulated_weights():
    torch.manual_seed(0)
    conv = stylegan.ModulatedConv2d(5, 4, w_dim=6, k=3)
    nn.init.normal_(conv.bias)
    x, w = torch.randn(3, 5, 6, 7), torch.randn(3, 6)
    out = conv(x, w)
    s = conv.affine(w)
    for b in range(3):  # StyleGAN2 eq. 1 and 3, one sample at a time
        wt = conv.weight * s[b][None, :, None, None]
        wt = wt / torch.sqrt(wt.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        ref = F.conv2d(x[b : b + 1], wt, conv.bias, padding=1)
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-5)


def test_demodulation_gives_unit_variance_outputs_whatever_the_style():
    torch.manual_seed(1)
    conv = stylegan.ModulatedConv2d(16, 8, w_dim=4, k=3)
    w = 5 * torch.randn(2, 4)  # large styles: without demodulation the scale would follow them
    out = conv(torch.randn(2, 16, 64, 64), w)[:, :, 1:-1, 1:-1]  # inside the zero padding
    assert out.var(dim=(2, 3)).mean().item() == pytest.approx(1.0, abs=0.1)
    conv.demodulate = False
    assert conv(torch.randn(2, 16, 64, 64), w).var().item() > 2.0


def test_truncation_and_style_mixing():
    torch.manual_seed(2)
    G = stylegan.StyleGenerator(latent=8, w_dim=6, width=4, mapping_depth=2).eval()
    G.w_avg.normal_()
    z = torch.randn(5, 8)
    w = G.styles(z)[:, 0]
    torch.testing.assert_close(G.styles(z, psi=0.0), G.w_avg.expand(5, 4, 6))
    torch.testing.assert_close(G.styles(z, psi=0.5)[:, 0], G.w_avg + 0.5 * (w - G.w_avg))
    ws1, ws2 = G.styles(z), G.styles(torch.randn(5, 8))
    mixed = stylegan.mix_styles(ws1, ws2, 1)
    torch.testing.assert_close(mixed[:, :1], ws1[:, :1])
    torch.testing.assert_close(mixed[:, 1:], ws2[:, 1:])
    # the synthesis of mixed styles differs from both parents, and equals G(z) without mixing
    noise = G.draw_noise(5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(G.synthesis(ws1, noise), G(z, noise=noise))
    with pytest.raises(ValueError, match="one w per layer"):
        G.synthesis(ws1[:, 0], noise)


def test_w_avg_tracks_the_mean_of_w_in_training_only():
    torch.manual_seed(3)
    G = stylegan.StyleGenerator(latent=8, w_dim=6, width=4, mapping_depth=2, w_avg_beta=0.0)
    z = torch.randn(7, 8)
    G.train()
    G.styles(z)
    torch.testing.assert_close(G.w_avg, G.mapping(z).mean(0))
    G.eval()
    before = G.w_avg.clone()
    G.styles(torch.randn(7, 8))
    torch.testing.assert_close(G.w_avg, before)


def test_stylegan_samples_repeat_with_a_seed_and_the_model_is_conformant():
    case = models.conformance_cases()["gan_stylegan"]()
    m = case.model
    a = m.sample(4, generator=torch.Generator().manual_seed(0), psi=0.7)
    b = m.sample(4, generator=torch.Generator().manual_seed(0), psi=0.7)
    torch.testing.assert_close(a, b)
    assert a.shape == (4, 1, 8, 8) and 0 <= a.min() and a.max() <= 1


def test_inversion_recovers_the_latent_of_a_linear_generator():
    # G(z) = A z with A of full column rank: the only minimiser of ||G(z) - x||^2 is z*
    torch.manual_seed(4)
    G = nn.Linear(3, 10, bias=False)
    z_true = torch.randn(6, 3)
    x = G(z_true).detach()
    res = inversion.invert(G, x, torch.zeros(6, 3), steps=400, lr=0.05)
    torch.testing.assert_close(res.z, z_true, atol=1e-3, rtol=1e-3)
    assert res.loss[-1] < 1e-6 < res.loss[0]
    assert len(res.norm_ratio) == 400
    assert res.norm_ratio[-1] == pytest.approx(
        (z_true.norm(dim=1).mean() / math.sqrt(3)).item(), rel=1e-3
    )
    assert all(p.requires_grad for p in G.parameters())  # G's flags restored


def test_masked_inversion_ignores_hidden_pixels_and_the_prior_pulls_z_in():
    torch.manual_seed(5)
    G = nn.Linear(2, 6, bias=False)
    x = G(torch.randn(4, 2)).detach()
    mask = torch.tensor([1.0, 1, 1, 0, 0, 0])
    corrupted = x.clone()
    corrupted[:, 3:] = 100.0  # hidden pixels: must not matter
    res = inversion.invert(G, corrupted, torch.zeros(4, 2), steps=500, lr=0.05, mask=mask)
    torch.testing.assert_close(res.x, x, atol=1e-3, rtol=1e-3)
    far = G(10 * torch.ones(4, 2)).detach()
    free = inversion.invert(G, far, torch.zeros(4, 2), steps=300, lr=0.1)
    held = inversion.invert(G, far, torch.zeros(4, 2), steps=300, lr=0.1, prior_weight=100.0)
    assert held.norm_ratio[-1] < 0.5 * free.norm_ratio[-1]
    with pytest.raises(ValueError, match="one per image"):
        inversion.invert(G, x, torch.zeros(3, 2))


def test_the_latent_encoder_learns_a_linear_inverse():
    torch.manual_seed(6)
    G = nn.Linear(3, 8)
    z = torch.randn(2048, 3)
    with torch.no_grad():
        x = G(z)
    enc = inversion.LatentEncoder(8, 3, hidden=32, depth=1)
    train.fit(enc, (x, z), steps=600, batch_size=128, lr=3e-3, progress=False, device="cpu")
    with torch.no_grad():
        assert (enc(x) - z).pow(2).mean().item() < 0.01


def test_gan_package_exports_the_new_pieces():
    assert gan.StyleGenerator is stylegan.StyleGenerator and gan.invert is inversion.invert


def test_attribute_direction_recovers_a_linear_attribute_and_its_r2():
    from sklearn.linear_model import LinearRegression

    torch.manual_seed(7)
    for n, d in [(500, 4), (2000, 9)]:
        z = torch.randn(n, d)
        u = torch.randn(d)
        u = u / u.norm()
        values = 3.0 + 2.5 * z @ u + 0.5 * torch.randn(n)
        found = gan.attribute_direction(z, values)
        assert found.n.shape == (d,) and found.n.norm().item() == pytest.approx(1, abs=1e-6)
        assert float(found.n @ u) > 0.99  # points the way the attribute grows
        ols = LinearRegression().fit(z.numpy(), values.numpy())  # the oracle
        coef = torch.as_tensor(ols.coef_, dtype=z.dtype)
        torch.testing.assert_close(found.n, coef / coef.norm())
        assert found.slope == pytest.approx(coef.norm().item(), rel=1e-5)
        assert found.r2 == pytest.approx(ols.score(z.numpy(), values.numpy()), abs=1e-6)
        assert found.r2 == pytest.approx(2.5**2 / (2.5**2 + 0.5**2), abs=0.03)
        flipped = gan.attribute_direction(z, -values)  # the opposite attribute
        torch.testing.assert_close(flipped.n, -found.n)
    with pytest.raises(ValueError, match="more prior samples"):
        gan.attribute_direction(torch.randn(5, 8), torch.randn(5))
    with pytest.raises(ValueError, match=r"values \(N,\)"):
        gan.attribute_direction(torch.randn(50, 3), torch.randn(50, 1))


def test_attribute_direction_holding_other_attributes_fixed():
    # values grow along u, the held attributes along v1, v2 (not orthogonal to u): the
    # conditional direction is u minus its projection on span(v1, v2), with the slope u . n
    torch.manual_seed(8)
    for n, d in [(3000, 5), (4000, 11)]:
        z = torch.randn(n, d)
        u, v = torch.randn(d), torch.randn(d, 2)
        values, keep = z @ u, z @ v + 0.01 * torch.randn(n, 2)
        held = gan.attribute_direction(z, values, keep=keep)
        q, _ = torch.linalg.qr(v)
        expected = u - q @ (q.T @ u)
        torch.testing.assert_close(held.n, expected / expected.norm(), atol=1e-3, rtol=0)
        assert held.slope == pytest.approx(float(u @ held.n), rel=1e-3)
        assert held.slope < gan.attribute_direction(z, values).slope  # the price of holding
        assert (held.n @ v).abs().max().item() < 1e-3  # the held attributes do not move
    with pytest.raises(ValueError, match="K < 5"):
        gan.attribute_direction(torch.randn(50, 5), torch.randn(50), keep=torch.randn(50, 5))

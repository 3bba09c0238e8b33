"""Lecture 05 topic 8 against closed forms: the cycle-consistency loss is zero for a pair of
mutual inverses and the hand-computed L1 otherwise; edge maps and thickening on known images;
each player's step in pix2pix / CycleGAN moves only its own weights."""

import copy

import pytest
import torch
from torch import nn

from coursekit.gan import translation as tr


class Affine(nn.Module):
    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.scale * x + self.shift


def test_cycle_consistency_is_zero_for_mutual_inverses():
    a, b = torch.rand(4, 1, 8, 8), torch.rand(5, 1, 8, 8)
    invert = Affine(-1.0, 1.0)  # x -> 1 - x is its own inverse
    assert tr.cycle_consistency_loss(invert, invert, a, b).item() == pytest.approx(0.0, abs=1e-7)
    g, f = Affine(2.0, 0.5), Affine(0.5, -0.25)  # f = g^-1
    assert tr.cycle_consistency_loss(g, f, a, b).item() == pytest.approx(0.0, abs=1e-6)


def test_cycle_consistency_of_a_non_inverse_pair_is_the_hand_computed_l1():
    a, b = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    g, f = Affine(2.0, 0.0), Affine(1.0, 0.0)  # F(G(a)) = 2a, G(F(b)) = 2b
    expected = a.abs().mean() + b.abs().mean()
    assert tr.cycle_consistency_loss(g, f, a, b).item() == pytest.approx(expected.item(), rel=1e-6)


def test_edges_of_a_step_and_of_a_constant_image():
    x = torch.zeros(1, 1, 6, 6)
    x[..., 3:] = 1.0  # a vertical step between columns 2 and 3
    e = tr.edges(x)
    assert e[0, 0, 2:4, 2:4].min() > 0.4  # on the step
    assert e[0, 0, 1:5, 0].abs().max() == 0 and e[0, 0, 1:5, 5].abs().max() == 0  # away from it
    assert tr.edges(torch.full((2, 1, 5, 5), 0.7)).abs().max() < 1e-6  # no edge at the border


def test_thicken_grows_a_dot_to_its_3x3_neighbourhood():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    t = tr.thicken(x)
    assert t[0, 0, 2, 2] == 1.0 and t[0, 0, 1, 1] == 0.5 and t[0, 0, 0, 0] == 0.0
    assert (t > 0).sum() == 9


def test_translator_and_patch_critic_shapes_and_the_noise_input():
    a = torch.rand(3, 1, 8, 8)
    assert tr.Translator(width=8)(a).shape == (3, 1, 8, 8)
    assert tr.PatchCritic(2, width=8)(torch.cat([a, a], 1)).shape == (3, 1, 4, 4)
    g = tr.Translator(width=8, noise_dim=2)
    z1, z2 = torch.randn(3, 2), torch.randn(3, 2)
    assert not torch.allclose(g(a, z1), g(a, z2))
    with pytest.raises(ValueError, match="noise z of shape"):
        g(a)


@pytest.mark.parametrize("kind", ["pix2pix", "bicycle", "cycle"])
def test_one_training_step_runs_and_reports_its_terms(kind):
    torch.manual_seed(0)
    a, b = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)
    if kind == "cycle":
        model = tr.CycleGAN(width=8)
        gens = [*model.G_ab.parameters(), *model.G_ba.parameters()]
        crits = [*model.D_a.parameters(), *model.D_b.parameters()]
    else:
        noise = {"pix2pix": {}, "bicycle": {"noise_dim": 2, "latent_regression": 1.0}}[kind]
        model = tr.Pix2Pix(width=8, **noise)
        gens, crits = list(model.G.parameters()), list(model.D.parameters())
    before = [p.detach().clone() for p in gens + crits]
    terms = model.train_step((a, b), 0)
    assert all(torch.isfinite(v) for v in terms.values())
    assert ("g_cycle" in terms) == (kind == "cycle") and ("g_z_rec" in terms) == (kind == "bicycle")
    moved = [not torch.equal(p, q) for p, q in zip(gens + crits, before)]
    assert any(moved[: len(gens)]) and any(moved[len(gens) :])
    assert all(p.requires_grad for p in crits)  # the critics are unfrozen after the step


def test_pix2pix_without_the_gan_term_is_an_l1_step_and_leaves_the_critic_alone():
    torch.manual_seed(0)
    a, b = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    model = tr.Pix2Pix(width=8, adversarial=0.0)
    twin = copy.deepcopy(model)  # the same weights and optimizer, stepped by hand on L1 alone
    d_before = [p.detach().clone() for p in model.D.parameters()]
    terms = model.train_step((a, b), 0)
    assert set(terms) == {"g_l1"}
    assert all(torch.equal(p, q) for p, q in zip(model.D.parameters(), d_before))
    twin.g_opt.zero_grad()
    (twin.l1 * (twin.G(a) - b).abs().mean()).backward()
    twin.g_opt.step()
    for p, q in zip(model.G.parameters(), twin.G.parameters()):
        torch.testing.assert_close(p, q)
    # with the GAN term the generator's step differs: the critic's gradient is added
    torch.manual_seed(0)
    with_gan = tr.Pix2Pix(width=8)
    with_gan.load_state_dict(copy.deepcopy(twin.state_dict()))  # any common start will do
    start = copy.deepcopy(with_gan)
    with_gan.train_step((a, b), 0)
    start.adversarial = 0.0
    start.train_step((a, b), 0)
    assert not all(torch.equal(p, q) for p, q in zip(with_gan.G.parameters(), start.G.parameters()))

"""VQ and FSQ against closed forms: brute-force nearest codes, the straight-through gradient
is the identity's, the EMA update by hand, FSQ's prod(levels) codes, usage and perplexity."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from coursekit import vq


def test_nearest_code_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 3, generator=g)
    codebook = torch.randn(7, 3, generator=g) * torch.linspace(0.2, 3, 7)[:, None]
    brute = torch.stack([((z - e) ** 2).sum(1) for e in codebook], 1)  # (50, 7)
    assert torch.allclose(vq.squared_distances(z, codebook), brute, atol=1e-5)
    assert torch.equal(vq.nearest_code(z, codebook), brute.argmin(1))


def test_straight_through_has_the_value_of_z_q_and_the_gradient_of_the_identity():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4, 3, 2, 2, generator=g, requires_grad=True)
    quantizer = vq.VectorQuantizer(5, 3)
    out = quantizer(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.allclose(
        out.z_q.permute(0, 2, 3, 1).reshape(-1, 3),
        quantizer.embedding[vq.nearest_code(flat, quantizer.embedding)],
        atol=1e-6,  # z + (e - z) rounds: a code entry near 0 fails a purely relative tolerance
    )
    w = torch.randn(z.shape, generator=g)
    (grad,) = torch.autograd.grad((out.z_q * w).sum(), z)
    assert torch.allclose(grad, w)


def test_losses_put_the_stop_gradients_on_the_right_side():
    z = torch.randn(6, 2, requires_grad=True)
    e = torch.randn(6, 2, requires_grad=True)
    codebook, commitment = vq.vq_loss_terms(z, e)
    gz_cb, ge_cb = torch.autograd.grad(codebook, (z, e), retain_graph=True, allow_unused=True)
    gz_cm, ge_cm = torch.autograd.grad(commitment, (z, e), allow_unused=True)
    assert gz_cb is None and ge_cm is None
    assert torch.allclose(ge_cb, 2 * (e - z).detach() / z.numel())
    assert torch.allclose(gz_cm, 2 * (z - e).detach() / z.numel())


def test_vq_loss_is_codebook_plus_beta_commitment_and_ema_drops_the_codebook_term():
    z = torch.randn(3, 4, 2, 2)
    for ema, expect in [
        (None, lambda q: q.codebook + 0.3 * q.commitment),
        (0.9, lambda q: 0.3 * q.commitment),
    ]:
        q = vq.VectorQuantizer(6, 4, beta=0.3, ema=ema).eval()(z)
        assert torch.allclose(q.loss, expect(q))


def test_ema_update_against_a_hand_computation():
    torch.manual_seed(0)
    quantizer = vq.VectorQuantizer(3, 2, ema=0.5, eps=0.0)
    with torch.no_grad():
        quantizer.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
        quantizer.embed_sum.copy_(quantizer.embedding)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 0.0]])[:, :, None, None]  # codes 0, 0, 1
    quantizer.train()(z)
    # N = 0.5 * 1 + 0.5 * (2, 1, 0) = (1.5, 1, 0.5); m = 0.5 * e + 0.5 * sums
    N = torch.tensor([1.5, 1.0, 0.5])
    m = 0.5 * torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]) + 0.5 * torch.tensor(
        [[1.0, 1.0], [9.0, 0.0], [0.0, 0.0]]
    )
    assert torch.allclose(quantizer.cluster_size, N)
    assert torch.allclose(quantizer.embedding, m / N[:, None])


def test_dead_codes_are_restarted_on_encoder_outputs():
    torch.manual_seed(0)
    quantizer = vq.VectorQuantizer(4, 2, ema=0.5, restart=True, restart_threshold=0.9)
    with torch.no_grad():
        quantizer.embedding.copy_(torch.tensor([[0.0, 0.0], [50.0, 0], [0, 50.0], [50.0, 50]]))
        quantizer.embed_sum.copy_(quantizer.embedding)
    z = torch.randn(16, 2)[:, :, None, None] * 0.1  # all nearest to code 0
    quantizer.train()(z)
    # codes 1..3 fell to count 0.5 < 0.9: each now sits on one of the batch's vectors
    for k in (1, 2, 3):
        assert ((z[:, :, 0, 0] - quantizer.embedding[k]).abs().sum(1) < 1e-6).any()


@pytest.mark.parametrize("levels", [[3], [4, 3], [5, 2, 3], [8, 5, 5, 5]])
def test_fsq_has_prod_levels_codes_and_rounds_to_them(levels):
    fsq = vq.FSQ(levels)
    assert fsq.num_codes == math.prod(levels)
    z = torch.randn(512, len(levels), 1, 1) * 3
    q = fsq(z)
    codes = q.codes.flatten()
    assert int(codes.min()) >= 0 and int(codes.max()) < fsq.num_codes
    half = torch.tensor([L // 2 for L in levels], dtype=torch.float32)
    scaled = q.z_q[:, :, 0, 0] * half  # integers in -L//2 .. (L-1)//2
    assert torch.allclose(scaled, scaled.round(), atol=1e-5)
    assert torch.allclose(fsq.lookup(q.codes), q.z_q)  # the codes index the rounded values
    grid = torch.tensor(list(itertools.product(*[range(L) for L in levels])), dtype=torch.float32)
    assert len(
        torch.unique(fsq.lookup(torch.arange(fsq.num_codes)[:, None, None]).flatten(1), dim=0)
    ) == len(grid)
    # rounding is the nearest integer of the bounded value; the gradient is the bound's
    zz = z.clone().requires_grad_()
    out = fsq(zz).z_q
    (g,) = torch.autograd.grad(out.sum(), zz)
    flat = zz.detach()[:, :, 0, 0]
    h = flat.clone().requires_grad_()
    (g_bound,) = torch.autograd.grad((fsq.bound(h) / half).sum(), h)
    assert torch.allclose(g[:, :, 0, 0], g_bound, atol=1e-6)
    assert torch.allclose(q.z_q[:, :, 0, 0] * half, torch.round(fsq.bound(flat)))


def test_usage_and_perplexity_closed_forms():
    assert vq.codebook_usage(torch.tensor([0, 1, 1, 3]), 8) == pytest.approx(3 / 8)
    assert vq.perplexity(torch.arange(8).repeat(5), 8) == pytest.approx(8.0)
    assert vq.perplexity(torch.zeros(10, dtype=torch.long), 8) == pytest.approx(1.0)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert vq.perplexity(torch.tensor([0, 0, 1, 2]), 3) == pytest.approx(
        math.exp(-(p * p.log()).sum().item())
    )


def test_autoencoder_trains_and_tokens_roundtrip():
    torch.manual_seed(0)
    model = vq.VQAutoencoder(vq.VectorQuantizer(8, 3), (1, 8, 8), hidden=8)
    x = torch.rand(5, 1, 8, 8)
    codes = model.encode(x)
    assert codes.shape == (5, 4, 4) and codes.dtype == torch.long
    assert torch.allclose(model.decode(codes), model.reconstruct(x))
    with pytest.raises(NotImplementedError, match="TokenPrior"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="latent grid"):
        model.quantizer(torch.randn(3, 3))
    with pytest.raises(ValueError, match="ema=0.99"):
        vq.VectorQuantizer(4, 2, restart=True)


# ----------------------------------------------------------------------------- oracle: vector-quantize-pytorch


def _vqp():
    return pytest.importorskip("vector_quantize_pytorch")


@pytest.mark.parametrize("K, D, decay, beta", [(6, 3, 0.7, 0.25), (16, 5, 0.99, 0.4)])
def test_vq_matches_vector_quantize_pytorch(K, D, decay, beta):
    """Nearest codes, the straight-through gradient, the commitment loss and one EMA step agree
    with ``vector_quantize_pytorch.VectorQuantize`` started from the same codebook."""
    vqp = _vqp()
    torch.manual_seed(0)
    theirs = vqp.VectorQuantize(
        dim=D, codebook_size=K, decay=decay, commitment_weight=beta, rotation_trick=False
    ).train()
    ours = vq.VectorQuantizer(K, D, ema=decay, beta=beta).train()
    with torch.no_grad():
        ours.embedding.copy_(theirs._codebook.embed[0])
        ours.embed_sum.copy_(theirs._codebook.embed_avg[0])
        ours.cluster_size.copy_(theirs._codebook.cluster_size[0])
    x = torch.randn(3, 4, 2, D)  # (B, H, W, D), channels last for theirs
    x_theirs = x.reshape(3, 8, D).clone().requires_grad_()
    z = x.permute(0, 3, 1, 2).clone().requires_grad_()  # (B, D, H, W) for ours
    q_theirs, idx, loss_theirs = theirs(x_theirs)
    q = ours(z)
    assert torch.equal(idx.long().view(3, 4, 2), q.codes)
    assert torch.allclose(q_theirs.view(3, 4, 2, D).permute(0, 3, 1, 2), q.z_q, atol=1e-6)
    assert torch.allclose(loss_theirs, q.loss, atol=1e-6)  # beta * commitment, no codebook term
    w = torch.randn(3, 8, D)
    (g_theirs,) = torch.autograd.grad((q_theirs * w).sum(), x_theirs)
    (g_ours,) = torch.autograd.grad((q.z_q * w.view(3, 4, 2, D).permute(0, 3, 1, 2)).sum(), z)
    assert torch.allclose(g_theirs.view(3, 4, 2, D).permute(0, 3, 1, 2), g_ours)
    assert torch.allclose(theirs._codebook.cluster_size[0], ours.cluster_size, atol=1e-6)
    assert torch.allclose(theirs._codebook.embed[0], ours.embedding, atol=1e-5)


@pytest.mark.parametrize("levels", [[3], [4, 3, 5], [8, 5, 5, 5], [8, 6, 5]])
def test_fsq_matches_vector_quantize_pytorch(levels):
    vqp = _vqp()
    z = torch.randn(4, 9, len(levels), generator=torch.Generator().manual_seed(3)) * 2
    z_theirs, idx = vqp.FSQ(levels)(z)
    q = vq.FSQ(levels)(z.view(4, 9, 1, len(levels)).permute(0, 3, 1, 2))
    assert torch.allclose(z_theirs, q.z_q.permute(0, 2, 3, 1).reshape(4, 9, -1), atol=1e-6)
    assert torch.equal(idx.long(), q.codes.view(4, 9))


def test_token_prior_network_evaluations_are_counted():
    """evaluate's hook on prior.net sees every pass: T per sample, 2T with guidance."""
    from coursekit import evaluation
    from coursekit.autoregressive import TokenPrior

    prior = TokenPrior(5, (2, 3), num_classes=3, d_model=16, n_head=2, n_layer=1)
    y = torch.tensor([0, 1, 2, 1])
    for guidance, per_sample in [(1.0, 6), (2.0, 12)]:
        with evaluation.count_calls(prior.net) as calls:
            prior.sample(4, y, guidance=guidance)
        assert calls.per_sample(4) == per_sample


# ----------------------------------------------------------------------------- Gumbel


def test_gumbel_noise_has_the_gumbel_moments_and_gumbel_max_samples_the_softmax():
    g = vq.gumbel_noise((200_000,), generator=torch.Generator().manual_seed(0))
    assert g.mean().item() == pytest.approx(0.5772, abs=0.01)  # Euler-Mascheroni
    assert g.var().item() == pytest.approx(math.pi**2 / 6, rel=0.02)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    noise = vq.gumbel_noise((100_000, 4), generator=torch.Generator().manual_seed(1))
    freq = torch.bincount((logits + noise).argmax(1), minlength=4).float() / 100_000
    assert torch.allclose(freq, torch.softmax(logits, 0), atol=0.01)


def test_gumbel_softmax_relaxes_and_its_hard_variant_is_straight_through():
    logits = torch.randn(6, 5, requires_grad=True)
    noise = vq.gumbel_noise((6, 5), generator=torch.Generator().manual_seed(2))
    soft = vq.gumbel_softmax(logits, 0.5, noise)
    assert torch.allclose(soft, torch.softmax((logits + noise) / 0.5, -1))
    hard = vq.gumbel_softmax(logits, 0.5, noise, hard=True)
    assert torch.equal(hard.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 5).float())
    w = torch.randn(6, 5)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), logits)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), logits)
    assert torch.allclose(g_hard, g_soft)
    # low temperature: the relaxed sample approaches the one-hot of the Gumbel-max
    cold = vq.gumbel_softmax(logits.detach(), 1e-4, noise)
    assert torch.allclose(cold, hard.detach(), atol=1e-3)


def test_kl_to_uniform_closed_form():
    logits = torch.randn(7, 6)
    q = torch.softmax(logits, -1)
    entropy = -(q * q.log()).sum(-1)
    assert torch.allclose(vq.kl_to_uniform(logits), (math.log(6) - entropy).mean())
    assert vq.kl_to_uniform(torch.zeros(3, 6)).abs() < 1e-6


def test_gumbel_quantizer_is_hard_at_evaluation_and_mixes_codes_in_training():
    torch.manual_seed(0)
    quantizer = vq.GumbelQuantizer(5, 3, tau=1.0, kl_weight=0.1)
    logits = torch.randn(2, 5, 3, 3)
    q = quantizer.eval()(logits)
    assert torch.equal(q.codes, logits.argmax(1))
    assert torch.allclose(q.z_q, quantizer.lookup(q.codes))
    assert torch.allclose(q.loss, 0.1 * vq.kl_to_uniform(logits.permute(0, 2, 3, 1).reshape(-1, 5)))
    soft = quantizer.train()(logits.requires_grad_())
    assert not torch.allclose(soft.z_q, q.z_q)  # a mix of code vectors, not one of them
    (grad,) = torch.autograd.grad(soft.z_q.sum(), logits)
    assert grad.abs().sum() > 0


# ----------------------------------------------------------------------------- VAR


@pytest.mark.parametrize("shared", [True, False])
def test_multiscale_tokens_sum_to_the_quantised_latent(shared):
    torch.manual_seed(0)
    quantizer = vq.MultiScaleVQ(16, 3, (1, 2, 4), shared=shared).eval()
    z = torch.randn(5, 3, 4, 4)
    q = quantizer(z)
    assert q.codes.shape == (5, 1 + 4 + 16)
    assert torch.allclose(quantizer.lookup(q.codes), q.z_q, atol=1e-6)
    sums = quantizer.partial_sums(q.codes)
    assert len(sums) == 3 and sums[0].abs().max() == 0
    last = quantizer.upsample(quantizer.scale_vq(2).lookup(quantizer.split(q.codes)[2]), 4)
    assert torch.allclose(sums[2] + last, q.z_q, atol=1e-6)
    # the first token map quantises the image-wide mean of z, with scale 0's codebook
    mean = z.mean((2, 3))
    assert torch.equal(q.codes[:, 0], vq.nearest_code(mean, quantizer.scale_vq(0).embedding))
    if not shared:
        assert not torch.equal(quantizer.scale_vq(0).embedding, quantizer.scale_vq(2).embedding)


def test_multiscale_own_codebooks_learn_from_their_own_scale():
    """shared=False: one EMA step moves scale k's counts by (1 - d) times its s_k^2 B vectors."""
    torch.manual_seed(0)
    quantizer = vq.MultiScaleVQ(16, 3, (1, 2, 4), shared=False, restart=False).train()
    before = [quantizer.scale_vq(k).cluster_size.sum().item() for k in range(3)]
    quantizer(torch.randn(5, 3, 4, 4))
    d = quantizer.scale_vq(0).decay
    for k, s in enumerate((1, 2, 4)):
        after = quantizer.scale_vq(k).cluster_size.sum().item()
        assert after == pytest.approx(d * before[k] + (1 - d) * 5 * s * s)


def test_block_causal_mask_no_scale_sees_a_later_scale_by_jacobians():
    assert torch.equal(
        vq.block_causal_mask([1, 2]),
        torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool),
    )
    torch.manual_seed(0)
    prior = vq.ScalePrior(vq.MultiScaleVQ(6, 2, (1, 2, 3)), d_model=16, n_head=2, n_layer=2)
    sizes, T = prior.sizes, sum(prior.sizes)
    block = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    h = torch.randn(1, T, 16)
    jac = torch.autograd.functional.jacobian(lambda h: prior.net(h), h)  # (1, T, K, 1, T, d)
    dep = jac[0].abs().sum((1, 2, 4)) > 0  # (T out, T in): does output t depend on input s
    assert torch.equal(dep, block[:, None] >= block[None, :])


@pytest.mark.parametrize("shared", [True, False])
def test_scale_prior_probabilities_sum_to_one_and_sampling_takes_one_pass_per_scale(shared):
    from coursekit import evaluation

    torch.manual_seed(0)
    prior = vq.ScalePrior(vq.MultiScaleVQ(3, 2, (1, 2), shared=shared), num_classes=2,
                          d_model=16, n_head=2, n_layer=1)  # fmt: skip
    every = torch.tensor(list(itertools.product(range(3), repeat=5)))  # all 3^5 sequences
    for y in (None, torch.ones(len(every), dtype=torch.long)):
        total = prior.log_prob(every, y).exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-5)
    y = torch.tensor([0, 1, 1, 0])
    for guidance, per_sample in [(1.0, 2), (3.0, 4)]:
        with evaluation.count_calls(prior.net) as calls:
            s = prior.sample(4, y, guidance=guidance, generator=torch.Generator().manual_seed(0))
        assert s.shape == (4, 5) and calls.per_sample(4) == per_sample


# ----------------------------------------------------------------------------- captions, VQ-GAN


def test_caption_prior_probabilities_sum_to_one_given_a_caption():
    torch.manual_seed(0)
    prior = vq.CaptionPrior(3, (2, 2), num_words=4, caption_length=2, d_model=16, n_head=2,
                            n_layer=1)  # fmt: skip
    every = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)
    words = torch.tensor([[1, 3]]).expand(len(every), 2)
    assert prior.log_prob(every, words).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    # the cached sampler draws from the same conditionals as the teacher-forced logits
    g = torch.Generator().manual_seed(0)
    draws = prior.sample(4000, words[:1].expand(4000, 2), generator=g)
    first = torch.bincount(draws[:, 0, 0], minlength=3).float() / 4000
    p_first = torch.softmax(prior.logits(every[:1], words[:1])[0, 0], -1)
    assert torch.allclose(first, p_first, atol=0.03)


def test_vocabulary_and_captions():
    vocab = vq.Vocabulary()
    ids = vocab.encode(["a thin seven", "a bold two"])
    assert ids.shape == (2, 3) and vocab.words[ids[0, 2]] == "seven"
    with pytest.raises(ValueError, match="vocabulary"):
        vocab.encode("a purple seven")
    images = torch.zeros(4, 1, 8, 8)
    images[1, :, :4] = 1.0
    images[3] = 0.5
    labels = torch.tensor([7, 7, 2, 2])
    medians = vq.class_medians(images, labels)
    assert vq.make_captions(images, labels, medians) == [
        "a thin seven", "a bold seven", "a thin two", "a bold two",
    ]  # fmt: skip


def test_vqgan_step_trains_both_players():
    from coursekit import train

    torch.manual_seed(0)
    model = vq.VQAutoencoder(vq.VectorQuantizer(8, 3, ema=0.9, restart=True), hidden=8)
    disc = vq.PatchDiscriminator(1, 8)
    before = [p.clone() for p in disc.parameters()]
    feats = torch.nn.Conv2d(1, 4, 3, padding=1)
    step = vq.VQGANStep(model, features=feats, discriminator=disc, adv_start=2)
    history = train.fit(model, torch.rand(32, 1, 8, 8), steps=4, batch_size=8, step_fn=step,
                        progress=False)  # fmt: skip
    assert {"recon", "feature", "g_adv", "d_loss"} <= set(history.logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.parameters()))


class _ConstantCritic(torch.nn.Module):
    """A critic whose every patch logit is one parameter c (the image is ignored)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(c))

    def forward(self, x):
        return self.c.expand(len(x), 1, 4, 4) + 0 * x[:, :1, ::2, ::2]


@pytest.mark.parametrize("c", [-1.5, 0.3, 2.0])
def test_vqgan_hinge_and_non_saturating_losses(c):
    from coursekit import train

    logs = {}
    for gan_loss in ("hinge", "non_saturating"):
        torch.manual_seed(0)
        model = vq.VQAutoencoder(vq.VectorQuantizer(8, 3, ema=0.9), hidden=8)
        step = vq.VQGANStep(model, discriminator=_ConstantCritic(c), adv_start=1,
                            gan_loss=gan_loss)  # fmt: skip
        h = train.fit(model, torch.rand(16, 1, 8, 8), steps=1, batch_size=16, step_fn=step,
                      progress=False)  # fmt: skip
        logs[gan_loss] = (h.logs["g_adv"][0], h.logs["d_loss"][0])
    t = torch.tensor(c)
    assert logs["hinge"][0] == pytest.approx(-c)
    assert logs["hinge"][1] == pytest.approx(max(0, 1 - c) + max(0, 1 + c))
    assert logs["non_saturating"][0] == pytest.approx(F.softplus(-t).item())
    assert logs["non_saturating"][1] == pytest.approx((F.softplus(-t) + F.softplus(t)).item())


def test_vqgan_adaptive_weight_balances_the_last_layer_gradients():
    """VQGAN eq. 7: the weighted adversarial gradient at the decoder's last layer is as large as
    the reconstruction terms' gradient there, times n / (n + 1e-4) for n its unweighted norm."""
    torch.manual_seed(0)
    model = vq.VQAutoencoder(vq.VectorQuantizer(8, 3), hidden=8)
    disc = vq.PatchDiscriminator(1, 8)
    step = vq.VQGANStep(model, features=torch.nn.Conv2d(1, 4, 3, padding=1), discriminator=disc,
                        gan_loss="hinge", adaptive=True)  # fmt: skip
    x = torch.rand(8, 1, 8, 8)
    x_hat = model.decode_latent(model.quantize(x).z_q)
    rec = F.mse_loss(x_hat, x) + 0.1 * F.mse_loss(step.features(x_hat), step.features(x))
    g_adv = -disc(x_hat).mean()
    lam = step.adaptive_weight(rec, g_adv)
    last = model.decoder[-1].weight
    (g_rec,) = torch.autograd.grad(rec, last, retain_graph=True)
    (g_gan,) = torch.autograd.grad(g_adv, last)
    n = g_gan.norm().item()
    assert not lam.requires_grad and lam > 0
    assert lam.item() * n == pytest.approx(g_rec.norm().item() * n / (n + 1e-4), rel=1e-5)
    with pytest.raises(ValueError, match="gan_loss"):
        vq.VQGANStep(model, discriminator=disc, gan_loss="wasserstein")

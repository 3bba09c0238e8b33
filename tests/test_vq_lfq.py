"""LFQ (lookup-free quantisation) against hand computations and, where it is installed,
``vector_quantize_pytorch.LFQ``: the codes are the binary numbers of the signs, the gradient is
the identity's, the entropy penalty has the sign that spreads a batch over the codes."""

import math

import pytest
import torch

from coursekit import vq


def _grid(flat):
    """(N, D) vectors -> a (N, D, 1, 1) latent grid."""
    return flat[:, :, None, None]


def _binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


@pytest.mark.parametrize("bits", [1, 3, 6])
def test_lfq_codes_are_the_binary_numbers_of_the_signs(bits):
    lfq = vq.LFQ(bits)
    assert lfq.num_codes == 2**bits and lfq.codebook.shape == (2**bits, bits)
    z = torch.randn(300, bits, generator=torch.Generator().manual_seed(bits))
    q = lfq(_grid(z))
    # first channel most significant: code = sum_c [z_c > 0] 2^(D-1-c)
    by_hand = sum((z[:, c] > 0).long() * 2 ** (bits - 1 - c) for c in range(bits))
    assert torch.equal(q.codes.flatten(), by_hand)
    assert torch.equal(q.z_q[:, :, 0, 0], torch.sign(z))
    assert torch.equal(lfq.lookup(q.codes), q.z_q)
    # every corner of the cube is one code, and the lookup inverts the numbering
    corners = lfq.lookup(torch.arange(2**bits)[:, None, None])[:, :, 0, 0]
    assert len(torch.unique(corners, dim=0)) == 2**bits
    assert torch.equal(lfq(_grid(corners)).codes.flatten(), torch.arange(2**bits))


def test_lfq_hand_computed_case():
    """bits = 2, two positions, inv_temperature 1: every term worked out by hand."""
    lfq = vq.LFQ(2, entropy_weight=0.5, gamma=1.0, inv_temperature=1.0, beta=0.25).train()
    z = torch.tensor([[0.3, -0.2], [-0.1, 0.4]])
    q = lfq(_grid(z))
    assert q.codes.flatten().tolist() == [2, 1]  # (+, -) = 0b10, (-, +) = 0b01
    # commitment: mean of (z - sign z)^2 over the four entries
    commitment = ((0.3 - 1) ** 2 + (-0.2 + 1) ** 2 + (-0.1 + 1) ** 2 + (0.4 - 1) ** 2) / 4
    assert q.commitment.item() == pytest.approx(commitment, rel=1e-6)
    # p(k | z) ∝ exp(-||z - c_k||^2) = const * exp(2 z.c_k): it factorises over the channels,
    # p(c_j = +1) = sigmoid(4 z_j); a position's entropy is the sum of its bits' entropies
    s = lambda v: 1 / (1 + math.exp(-4 * v))
    per_sample = (
        _binary_entropy(s(0.3)) + _binary_entropy(s(-0.2))
        + _binary_entropy(s(-0.1)) + _binary_entropy(s(0.4))
    ) / 2  # fmt: skip

    # the batch's mean distribution over the codes 0b00, 0b01, 0b10, 0b11
    def p_codes(a, b):
        pa, pb = s(a), s(b)
        return [(1 - pa) * (1 - pb), (1 - pa) * pb, pa * (1 - pb), pa * pb]

    mean = [(u + v) / 2 for u, v in zip(p_codes(0.3, -0.2), p_codes(-0.1, 0.4))]
    codebook_entropy = -sum(m * math.log(m) for m in mean)
    assert q.entropy.item() == pytest.approx(per_sample - codebook_entropy, rel=1e-5)
    assert q.loss.item() == pytest.approx(
        0.25 * commitment + 0.5 * (per_sample - codebook_entropy), rel=1e-5
    )
    # in evaluation the penalty is not computed (it is a training loss)
    assert lfq.eval()(_grid(z)).entropy.item() == 0.0


def test_lfq_entropy_penalty_sign_rewards_a_batch_spread_over_the_codes():
    """Minimising the penalty must spread the batch: a sign error would collapse it."""
    lfq = vq.LFQ(2, inv_temperature=10.0)
    spread = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])  # 4 codes
    collapsed = torch.tensor([[1.0, 1.0]]).repeat(4, 1)  # one code
    assert lfq.entropy_penalty(spread).item() == pytest.approx(-math.log(4), abs=1e-6)
    assert lfq.entropy_penalty(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    # gradient descent on the penalty alone moves a collapsed batch onto more codes (with the
    # sign flipped, the same descent keeps all 8 positions on one code)
    noise = 0.05 * torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    z = (torch.full((8, 2), 0.3) + noise).requires_grad_()
    opt = torch.optim.SGD([z], lr=0.2)
    assert vq.perplexity(lfq(_grid(z.detach())).codes, 4) == pytest.approx(1.0)
    for _ in range(300):
        opt.zero_grad()
        lfq.entropy_penalty(z).backward()
        opt.step()
    codes = lfq(_grid(z.detach())).codes
    assert vq.codebook_usage(codes, 4) >= 0.75 and vq.perplexity(codes, 4) > 2.0


def test_lfq_straight_through_and_normalisation():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)) * 3
    for normalize in (False, True):
        lfq = vq.LFQ(4, normalize=normalize)
        zz = _grid(z).clone().requires_grad_()
        out = lfq(zz).z_q
        w = torch.randn_like(out)
        (g,) = torch.autograd.grad((out * w).sum(), zz)
        if not normalize:
            assert torch.allclose(g, w)  # the identity's gradient
        else:  # the gradient of z / ||z||: the straight-through part is the identity after it
            h = zz.detach().clone().requires_grad_()
            (g_norm,) = torch.autograd.grad((torch.nn.functional.normalize(h, dim=1) * w).sum(), h)
            assert torch.allclose(g, g_norm, atol=1e-6)
            # codes on the unit sphere, and the commitment cannot grow with ||z||
            assert torch.allclose(out.detach().norm(dim=1), torch.ones(50, 1, 1))
            big = lfq(_grid(z * 100)).commitment
            assert torch.allclose(big, lfq(_grid(z)).commitment)
    with pytest.raises(ValueError, match="D = 4"):
        vq.LFQ(4)(torch.randn(2, 3, 1, 1))
    with pytest.raises(ValueError, match="bits"):
        vq.LFQ(0)


def test_lfq_autoencoder_trains_and_roundtrips():
    torch.manual_seed(0)
    model = vq.VQAutoencoder(vq.LFQ(3), (1, 8, 8), hidden=8)
    x = torch.rand(6, 1, 8, 8)
    terms = model.loss(x)
    assert {"loss", "recon", "entropy", "commitment"} <= set(terms)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    codes = model.encode(x)
    assert codes.shape == (6, 4, 4) and int(codes.max()) < 8
    assert torch.allclose(model.decode(codes), model.reconstruct(x))


# ----------------------------------------------------------------------------- oracle


@pytest.mark.parametrize(
    "bits, inv_temperature, normalize", [(2, 1.0, False), (5, 0.5, False), (4, 1.0, True)]
)
def test_lfq_matches_vector_quantize_pytorch(bits, inv_temperature, normalize):
    """Codes, quantised values, the straight-through gradient and the whole auxiliary loss
    (entropy penalty and commitment) agree with ``vector_quantize_pytorch.LFQ``. The
    temperatures are mild so that no probability falls below the clamp inside its log;
    ``normalize`` is their ``spherical`` (binary spherical quantisation)."""
    vqp = pytest.importorskip("vector_quantize_pytorch")
    theirs = vqp.LFQ(
        dim=bits, codebook_size=2**bits, entropy_loss_weight=0.3, commitment_loss_weight=0.2,
        diversity_gamma=0.7, spherical=normalize,
    ).train()  # fmt: skip
    ours = vq.LFQ(bits, entropy_weight=0.3, gamma=0.7, inv_temperature=inv_temperature,
                  beta=0.2, normalize=normalize).train()  # fmt: skip
    x = 0.4 * torch.randn(3, 10, bits, generator=torch.Generator().manual_seed(bits))
    x_theirs = x.clone().requires_grad_()
    z = x.reshape(30, bits)[:, :, None, None].clone().requires_grad_()
    out = theirs(x_theirs, inv_temperature=inv_temperature)
    quantized, indices, aux = out[0], out[1], out[2]
    q = ours(z)
    assert torch.equal(indices.long().flatten(), q.codes.flatten())
    assert torch.allclose(quantized.reshape(30, bits), q.z_q[:, :, 0, 0])
    assert aux.item() == pytest.approx(q.loss.item(), rel=1e-4, abs=1e-6)
    w = torch.randn(3, 10, bits)
    (g_theirs,) = torch.autograd.grad((quantized * w).sum(), x_theirs)
    (g_ours,) = torch.autograd.grad((q.z_q[:, :, 0, 0] * w.reshape(30, bits)).sum(), z)
    assert torch.allclose(g_theirs.reshape(30, bits), g_ours[:, :, 0, 0], atol=1e-6)

"""Every check of Lecture 07 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: no straight-through estimator, distances without ||e||^2, the
farthest code, swapped stop-gradients, beta on the wrong term, wrong reductions, a size written
as a number, a detached result and an input modified in place."""

import pytest
import torch
import torch.nn.functional as F

from coursekit import vq
from coursekit.exercises import vq as checks

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


# ----------------------------------------------------------------------------- quantiser


@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_passes_the_reference(seed):
    assert checks.check_quantize(checks.reference_quantize, seed=seed)


def test_quantize_with_cdist_passes():
    def via_cdist(z, codebook):
        codes = torch.cdist(z, codebook).argmin(1)
        return z + (codebook[codes] - z).detach(), codes

    assert checks.check_quantize(via_cdist)


def _q(z, codebook, *, dist="full", ste=True, detach_all=True, pick="min"):
    if dist == "full":
        d = ((z[:, None, :] - codebook[None]) ** 2).sum(-1)
    else:  # no ||e||^2
        d = (z**2).sum(1, keepdim=True) - 2 * z @ codebook.t()
    codes = d.argmax(1) if pick == "max" else d.argmin(1)
    e = codebook[codes]
    if not ste:
        return e, codes
    if detach_all:
        return z + (e - z).detach(), codes
    return z + e - z.detach(), codes  # the codebook receives the gradient too


def _q_in_place(z, codebook):
    out = _q(z, codebook)
    z.zero_()
    return out


def _q_first_12(z, codebook):  # the notebook's D = 2 written as a number
    flat = z.reshape(-1, 2)
    codes = ((flat[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(1)
    return (flat + (codebook[codes] - flat).detach()).reshape(z.shape), codes


WRONG_QUANTIZE = [
    (lambda z, c: _q(z, c, ste=False), "straight-through estimator"),
    (lambda z, c: _q(z, c, detach_all=False), "gradient flows from z_q into the codebook"),
    (lambda z, c: _q(z, c, dist="no_e2"), "left out the ||e_k||^2 term"),
    (lambda z, c: _q(z, c, pick="max"), "took the farthest code (argmax)"),
    (lambda z, c: (z, _q(z, c)[1]), "returned z itself"),
    (lambda z, c: (_q(z, c)[0], _q(z, c)[1].float()), "return integer indices"),
    (lambda z, c: (z + (c[_q(z, c)[1]] - z), _q(z, c)[1]), "not the identity's"),
    (lambda z, c: _q(z, c)[0], "should return a pair"),
    (_q_first_12, "It passed with N=12, D=2, K=6"),
    (_q_in_place, "modified its input in place"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_QUANTIZE)
def test_quantize_names_the_mistake(wrong, words):
    _fails_with(checks.check_quantize(wrong), words)


# ----------------------------------------------------------------------------- loss


@pytest.mark.parametrize("seed", SEEDS)
def test_vq_loss_passes_the_reference(seed):
    assert checks.check_vq_loss(checks.reference_vq_loss, seed=seed)


def test_vq_loss_with_explicit_terms_passes():
    def explicit(z, z_q, beta):
        return ((z.detach() - z_q) ** 2).mean() + beta * ((z - z_q.detach()) ** 2).mean()

    assert checks.check_vq_loss(explicit)


def _loss_in_place(z, z_q, beta):
    out = checks.reference_vq_loss(z, z_q, beta)
    z_q.mul_(0)
    return out


def _loss_no_grad(z, z_q, beta):
    with torch.no_grad():
        return checks.reference_vq_loss(z, z_q, beta)


def _loss_fixed_dim(z, z_q, beta):  # the notebook's D = 2 written as a number
    return (1 + beta) * ((z - z_q) ** 2).sum() / (len(z) * 2) * 0 + (
        ((z.detach() - z_q) ** 2).sum() + beta * ((z - z_q.detach()) ** 2).sum()
    ) / (len(z) * 2)


WRONG_LOSS = [
    (
        lambda z, q, b: F.mse_loss(z.detach(), q) * b + F.mse_loss(z, q.detach()),
        "beta weights the codebook term",
    ),  # beta moved: the same gradients as swapped detaches
    (
        lambda z, q, b: F.mse_loss(q.detach(), z) + b * F.mse_loss(z.detach(), q),
        "stop-gradients are swapped",
    ),
    (lambda z, q, b: (1 + b) * F.mse_loss(z, q), "no stop-gradients"),
    (
        lambda z, q, b: F.mse_loss(z.detach(), q) + b * F.mse_loss(z.detach(), q),
        "no gradient reaches z",
    ),
    (
        lambda z, q, b: F.mse_loss(z, q.detach()) + b * F.mse_loss(z, q.detach()),
        "no gradient reaches z_q",
    ),
    (lambda z, q, b: 2 * F.mse_loss(z, q), "forgot beta"),
    (lambda z, q, b: b * F.mse_loss(z, q.detach()), "kept only the commitment term"),
    (lambda z, q, b: (1 + b) * ((z - q) ** 2).sum(), "summed instead of averaged"),
    (lambda z, q, b: (1 + b) * ((z - q) ** 2).sum(1).mean(), "summed over dimensions"),
    (_loss_fixed_dim, "It passed with N=12, D=2, K=6"),
    (_loss_no_grad, "carries no gradient"),
    (lambda z, q, b: checks.reference_vq_loss(z, q, b).detach(), "carries no gradient"),
    (_loss_in_place, "modified its input in place"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_LOSS)
def test_vq_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_vq_loss(wrong), words)


def test_reference_quantize_matches_the_library_quantizer():
    torch.manual_seed(0)
    quantizer = vq.VectorQuantizer(7, 3)
    z = torch.randn(2, 3, 2, 2)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    z_q, codes = checks.reference_quantize(flat, quantizer.embedding.detach())
    out = quantizer(z)
    assert torch.equal(out.codes.flatten(), codes)
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, 3), z_q)


# ----------------------------------------------------------------------------- LFQ entropy


@pytest.mark.parametrize("seed", SEEDS)
def test_lfq_entropy_passes_the_reference(seed):
    assert checks.check_lfq_entropy(checks.reference_lfq_entropy, seed=seed)


def test_lfq_entropy_written_out_passes():
    def written_out(z, codebook, inv_temperature, gamma):
        logp = torch.log_softmax(-inv_temperature * torch.cdist(z, codebook) ** 2, dim=1)
        per_sample = -(logp.exp() * logp).sum(1).mean()
        mean = logp.exp().mean(0)
        return per_sample + gamma * (mean * mean.log()).sum()

    assert checks.check_lfq_entropy(written_out)


def _ent(p):
    return -(p * p.log()).sum(-1)


def _lfq(z, codebook, t, gamma, *, sign=-1.0, scale=None, axis=-1, reduce="mean"):
    d = vq.squared_distances(z, codebook)
    logits = -t * d if scale is None else scale(d, t)
    p = torch.softmax(logits, axis)
    per = _ent(p).mean() if reduce == "mean" else _ent(p).sum()
    return per + sign * gamma * _ent(p.mean(0))


def _lfq_fixed_k(z, codebook, t, gamma):  # the notebook's K = 8 codes written as a number
    p = torch.softmax(-t * vq.squared_distances(z, codebook).reshape(-1, 8), -1)
    return _ent(p).mean() - gamma * _ent(p.mean(0))


def _lfq_no_grad(z, codebook, t, gamma):
    with torch.no_grad():
        return checks.reference_lfq_entropy(z, codebook, t, gamma)


def _lfq_in_place(z, codebook, t, gamma):
    out = checks.reference_lfq_entropy(z, codebook, t, gamma)
    z.data.zero_()
    return out


def _lfq_mean_of_entropies(z, codebook, t, gamma):
    p = torch.softmax(-t * vq.squared_distances(z, codebook), -1)
    return _ent(p).mean() - gamma * _ent(p).mean()


def _lfq_swapped(z, codebook, t, gamma):
    p = torch.softmax(-t * vq.squared_distances(z, codebook), -1)
    return _ent(p.mean(0)) - gamma * _ent(p).mean()


WRONG_LFQ = [
    (lambda z, c, t, g: _lfq(z, c, t, g, sign=+1.0), "added the diversity term"),
    (_lfq_swapped, "swapped the two entropies"),
    (_lfq_mean_of_entropies, "took the mean of the entropies twice"),
    (lambda z, c, t, g: _lfq(z, c, t, g, sign=0.0), "left out the diversity term"),
    (
        lambda z, c, t, g: -g * _ent(torch.softmax(-t * vq.squared_distances(z, c), -1).mean(0)),
        "left out the per-position entropy",
    ),  # fmt: skip
    (lambda z, c, t, g: _lfq(z, c, t, g, scale=lambda d, t: -d / t), "divided the distances"),
    (lambda z, c, t, g: _lfq(z, c, t, g, axis=0), "softmax over the positions"),
    (lambda z, c, t, g: _lfq(z, c, t, g, reduce="sum"), "summed the per-position entropies"),
    (_lfq_fixed_k, "It passed with N=12, D=3"),
    (_lfq_no_grad, "carries no gradient"),
    (_lfq_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_LFQ)
def test_lfq_entropy_names_the_mistake(wrong, words):
    _fails_with(checks.check_lfq_entropy(wrong), words)


def test_reference_lfq_entropy_is_the_library_quantizers():
    lfq = vq.LFQ(3, inv_temperature=2.0, gamma=0.8)
    z = torch.randn(10, 3)
    assert torch.allclose(
        checks.reference_lfq_entropy(z, lfq.codebook, 2.0, 0.8), lfq.entropy_penalty(z)
    )


# ----------------------------------------------------------------------------- Gumbel-softmax


@pytest.mark.parametrize("seed", SEEDS)
def test_gumbel_softmax_passes_the_reference(seed):
    assert checks.check_gumbel_softmax(checks.reference_gumbel_softmax, seed=seed)


def test_gumbel_softmax_written_out_passes():
    def written_out(logits, tau, u):
        y = (logits - torch.log(-torch.log(u))) / tau
        y = y - y.max(1, keepdim=True).values
        return y.exp() / y.exp().sum(1, keepdim=True)

    assert checks.check_gumbel_softmax(written_out)


def _gs_in_place(logits, tau, u):
    out = checks.reference_gumbel_softmax(logits, tau, u)
    u.fill_(0.5)
    return out


def _gs_fixed_k(logits, tau, u):  # the notebook's K = 6 written as a number
    g = -torch.log(-torch.log(u))
    return torch.softmax(((logits + g) / tau).reshape(-1, 6), -1).reshape(logits.shape)


def _gs_no_grad(logits, tau, u):
    with torch.no_grad():
        return checks.reference_gumbel_softmax(logits, tau, u)


def _gs_hard_st(logits, tau, u):  # straight-through: right value only if one-hot, wrong here
    soft = checks.reference_gumbel_softmax(logits, tau, u)
    return F.one_hot(soft.argmax(-1), soft.shape[-1]).float() + soft - soft.detach()


WRONG_GUMBEL = [
    (lambda l, t, u: torch.softmax((l - torch.log(u)) / t, -1), "used -log(u) as the noise"),
    (lambda l, t, u: torch.softmax((l + torch.log(-torch.log(u))) / t, -1), "flipped the sign"),
    (lambda l, t, u: torch.softmax((l - torch.log(-torch.log(u))) * t, -1), "multiplied by the"),
    (lambda l, t, u: torch.softmax(l - torch.log(-torch.log(u)), -1), "left out the temperature"),
    (lambda l, t, u: torch.softmax(l - torch.log(-torch.log(u)) / t, -1), "divided only the noise"),
    (lambda l, t, u: torch.softmax(l / t, -1), "forgot the noise"),
    (lambda l, t, u: torch.softmax((l - torch.log(-torch.log(u))) / t, 0), "wrong axis"),
    (_gs_hard_st, "returned the hard one-hot"),
    (_gs_fixed_k, "It passed with N=8, K=6"),
    (_gs_no_grad, "carries no gradient"),
    (_gs_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_GUMBEL)
def test_gumbel_softmax_names_the_mistake(wrong, words):
    _fails_with(checks.check_gumbel_softmax(wrong), words)


def test_reference_gumbel_softmax_is_the_library_one():
    logits, u = torch.randn(4, 5), torch.rand(4, 5)
    noise = -torch.log(-torch.log(u))
    assert torch.allclose(
        checks.reference_gumbel_softmax(logits, 0.3, u), vq.gumbel_softmax(logits, 0.3, noise)
    )


# ----------------------------------------------------------------------------- VAR mask


@pytest.mark.parametrize("seed", SEEDS)
def test_block_causal_mask_passes_the_reference(seed):
    assert checks.check_block_causal_mask(checks.reference_block_causal_mask, seed=seed)


def test_block_causal_mask_by_loops_passes():
    def loops(sizes):
        T = sum(sizes)
        block = [b for b, n in enumerate(sizes) for _ in range(n)]
        return torch.tensor([[block[s] <= block[t] for s in range(T)] for t in range(T)])

    assert checks.check_block_causal_mask(loops)


def _blocks(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def _mask_notebook_only(sizes):  # the notebook's 1 + 4 + 16 tokens written as numbers
    block = torch.tensor([0] + [1] * 4 + [2] * 16)
    return block[:, None] >= block[None, :]


def _mask_in_place(sizes):
    out = checks.reference_block_causal_mask(sizes)
    sizes.append(1)
    return out


WRONG_MASK = [
    (lambda s: torch.ones(sum(s), sum(s), dtype=torch.bool).tril(), "plain causal"),
    (lambda s: _blocks(s)[:, None] > _blocks(s)[None, :], "hid the query's own scale"),
    (lambda s: _blocks(s)[:, None] <= _blocks(s)[None, :], "transposed the mask"),
    (lambda s: _blocks(s)[:, None] == _blocks(s)[None, :], "see only itself"),
    (lambda s: torch.ones(sum(s), sum(s), dtype=torch.bool), "masked nothing"),
    (lambda s: (_blocks(s)[:, None] >= _blocks(s)[None, :]).float(), "return a bool tensor"),
    (_mask_notebook_only, "It passed with n=3"),
    (_mask_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_MASK)
def test_block_causal_mask_names_the_mistake(wrong, words):
    _fails_with(checks.check_block_causal_mask(wrong), words)

"""The token prior: normalization over the full support, causality, guidance, sampling."""

import itertools

import pytest
import torch

from coursekit.autoregressive import TokenPrior

K, GRID, C = 3, (1, 3), 2


@pytest.fixture
def prior():
    torch.manual_seed(0)
    model = TokenPrior(K, GRID, num_classes=C, d_model=16, n_head=2, n_layer=2)
    with torch.no_grad():  # make the conditionals far from uniform
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def _support():
    return torch.tensor(list(itertools.product(range(K), repeat=3))).view(-1, *GRID)  # (27, 1, 3)


@pytest.mark.parametrize("label", [None, 0, 1])
def test_probabilities_sum_to_one_over_every_token_grid(prior, label):
    s = _support()
    y = None if label is None else torch.full((len(s),), label)
    logp = prior.log_prob(s, y)
    assert logp.shape == (K**3,)
    assert torch.logsumexp(logp, 0).item() == pytest.approx(0.0, abs=1e-5)
    assert logp.exp().std() > 1e-3, "a uniform model would pass trivially"


def test_classes_give_different_distributions(prior):
    s = _support()
    a = prior.log_prob(s, torch.zeros(len(s), dtype=torch.long))
    b = prior.log_prob(s, torch.ones(len(s), dtype=torch.long))
    assert not torch.allclose(a, b)


def test_logits_of_token_t_depend_only_on_earlier_tokens(prior):
    torch.manual_seed(1)
    prior = TokenPrior(4, (2, 3), num_classes=C, d_model=16, n_head=2, n_layer=2).eval()
    s = torch.randint(0, 4, (5, 2, 3))
    y = torch.tensor([0, 1, 0, 1, 0])
    base = prior.logits(s, y)  # (B, T, K)
    T = 6
    for j in range(T):  # perturbation: changing token j moves only the logits of t > j
        s2 = s.clone().view(5, T)
        s2[:, j] = (s2[:, j] + 1) % 4
        out = prior.logits(s2.view(5, 2, 3), y)
        assert torch.equal(out[:, : j + 1], base[:, : j + 1]), f"token {j} leaked backwards"
        if j < T - 1:
            assert not torch.allclose(out[:, j + 1 :], base[:, j + 1 :])
    # autograd: d logits_t / d embedding of input position u is zero for u > t
    emb = {}
    hook = prior.net.tok.register_forward_hook(lambda m, i, o: emb.setdefault("e", o))
    logits = prior.logits(s, y)
    hook.remove()
    for t in range(T):
        (g,) = torch.autograd.grad(logits[:, t].sum(), emb["e"], retain_graph=True)
        seen = g.abs().sum((0, 2)) > 0  # (T,) input positions (0: class token, u: s_{u-1})
        assert seen[: t + 1].all() and not seen[t + 1 :].any()


def test_guidance_zero_and_one_are_the_unconditional_and_conditional_logits(prior):
    s = _support()[:7]
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    cond, uncond = prior.logits(s, y), prior.logits(s, None)
    assert torch.allclose(prior.guided_logits(s, y, 0.0), uncond)
    assert torch.allclose(prior.guided_logits(s, y, 1.0), cond)
    assert torch.allclose(prior.guided_logits(s, y, 3.0), uncond + 3 * (cond - uncond), atol=1e-5)


@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.5])
def test_top_1_sampling_is_greedy_decoding_of_the_guided_logits(prior, guidance):
    y = torch.tensor([0, 1, 1, 0])
    s = prior.sample(4, y, guidance=guidance, top_k=1, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, *GRID) and s.dtype == torch.long
    # teacher forcing on the sampled grid: every token is the argmax given its prefix
    logits = prior.guided_logits(s, y, guidance)  # (B, T, K)
    assert torch.equal(logits.argmax(-1), s.flatten(1))


def test_sample_frequencies_match_the_model_probabilities():
    torch.manual_seed(0)
    prior = TokenPrior(2, (2,), num_classes=C, d_model=16, n_head=2, n_layer=1).eval()
    with torch.no_grad():
        for p in prior.parameters():
            p.mul_(3.0)
    n = 20000
    y = torch.ones(n, dtype=torch.long)
    s = prior.sample(n, y, generator=torch.Generator().manual_seed(0))
    support = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    p = prior.log_prob(support, torch.ones(4, dtype=torch.long)).exp()
    freq = torch.stack([(s == row).all(1).float().mean() for row in support])
    assert torch.allclose(freq, p, atol=0.015)  # 4.5 sigma at n = 20000


def test_temperature_sharpens_towards_the_mode(prior):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    y = torch.zeros(2000, dtype=torch.long)
    cold = prior.sample(2000, y, generator=g(), temperature=0.05)
    greedy = prior.sample(1, y[:1], generator=g(), top_k=1)
    assert (cold == greedy).flatten(1).all(1).float().mean() > 0.95


def test_label_dropout_trains_the_null_class():
    torch.manual_seed(0)
    prior = TokenPrior(3, (2,), num_classes=2, p_uncond=1.0, d_model=8, n_head=2, n_layer=1)
    s, y = torch.randint(0, 3, (4, 2)), torch.tensor([0, 1, 0, 1])
    # p_uncond = 1: the training loss is the unconditional NLL whatever the labels say
    assert torch.allclose(prior.loss(s, y)["loss"], -prior.log_prob(s, None).mean())
    prior.eval()  # no dropout at evaluation
    assert torch.allclose(prior.loss(s, y)["loss"], -prior.log_prob(s, y).mean())


@pytest.mark.parametrize(
    "tokens, match",
    [
        (torch.rand(2, 1, 3), "integer tensor"),
        (torch.zeros(2, 3, dtype=torch.long), r"shape \(B, 1, 3\)"),
        (torch.full((2, 1, 3), 3), "vocabulary of 3 codes"),
        (torch.full((2, 1, 3), -1), "vocabulary of 3 codes"),
    ],
)
def test_bad_tokens_are_rejected_with_a_message(prior, tokens, match):
    with pytest.raises((TypeError, ValueError), match=match):
        prior.log_prob(tokens)


def test_bad_classes_and_sampling_options_are_rejected(prior):
    s = _support()[:2]
    with pytest.raises(ValueError, match="classes must lie in 0..1"):
        prior.log_prob(s, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="one integer class per sequence"):
        prior.log_prob(s, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="without classes"):
        TokenPrior(3, (2,)).log_prob(torch.zeros(1, 2, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="temperature"):
        prior.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        prior.sample(2, top_k=K + 1)

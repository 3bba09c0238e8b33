"""Autoregressive models: the autoregressive property by gradients, normalization by
enumeration, samplers against the model's own probabilities, and the caches."""

import copy
import itertools
import math

import pytest
import torch

from coursekit import autoregressive as ar
from coursekit.data import audio


def _input_gradients(model, k: torch.Tensor) -> torch.Tensor:
    """(D, D) bool: G[i, j] = the logits of dimension i have a nonzero gradient w.r.t. input j.

    The gradient is taken w.r.t. the first float tensor each model computes from x: the
    scaled levels (FVSBN, NADE, MADE, PixelCNNs) or the token embeddings (Transformer,
    WaveNet), mapped back to the input positions they hold.
    """
    captured = {}
    if isinstance(model, ar.CausalTransformer):
        hook = model.tok.register_forward_hook(lambda m, i, o: captured.setdefault("e", o))

        def to_inputs(g):  # token t holds x_order[t-1]; token 0 is the start token
            per_token = g.abs().sum(-1)[:, 1:]  # (B, D-1)
            out = torch.zeros(g.shape[0], model.num_dims)
            out[:, model.order[:-1]] = per_token
            return out
    elif isinstance(model, ar.WaveNet):
        hook = model.embed.register_forward_hook(lambda m, i, o: captured.setdefault("e", o))
        to_inputs = lambda g: g.abs().sum(-1)  # (B, T)
    else:
        original = model.from_levels

        def from_levels(kk):
            x = original(kk).requires_grad_()
            captured["e"] = x
            return x

        model.from_levels = from_levels
        hook = None
        to_inputs = lambda g: g.abs().flatten(1)
    try:
        logits = model.logits(k).flatten(2)  # (B, K, D)
        e = captured["e"]
        if not e.requires_grad:
            e.requires_grad_()
        D = model.num_dims
        G = torch.zeros(D, D, dtype=torch.bool)
        for i in range(D):
            (g,) = torch.autograd.grad(
                logits[:, :, i].sum(), e, retain_graph=True, allow_unused=True
            )
            G[i] = to_inputs(g).sum(0) > 0 if g is not None else False
    finally:
        if hook is not None:
            hook.remove()
        else:
            del model.from_levels
    return G


def _rank(order: torch.Tensor) -> torch.Tensor:
    r = torch.empty_like(order)
    r[order] = torch.arange(len(order))
    return r


def _models():
    shuffled = torch.tensor([5, 2, 7, 0, 3, 8, 1, 6, 4])
    return {
        "fvsbn": ar.FVSBN((1, 3, 3), 3),
        "fvsbn-shuffled": ar.FVSBN((1, 3, 3), 3, order=shuffled),
        "nade": ar.NADE((1, 3, 3), 3, hidden=8),
        "nade-shuffled": ar.NADE((1, 3, 3), 3, hidden=8, order=shuffled),
        "made": ar.MADE((1, 3, 3), 3, hidden=(32, 32)),
        "pixelcnn": ar.PixelCNN((1, 3, 3), 3, channels=8, num_layers=2, first_kernel=3),
        "gated-pixelcnn": ar.GatedPixelCNN((1, 3, 3), 3, channels=8, num_layers=3),
        "transformer": ar.CausalTransformer((1, 3, 3), 3, d_model=16, n_head=2, n_layer=2),
        "transformer-shuffled": ar.CausalTransformer(
            (1, 3, 3), 3, d_model=16, n_head=2, n_layer=2, order=shuffled
        ),
        "wavenet": ar.WaveNet(9, levels=3, channels=8, skip_channels=8, dilations=(1, 2, 4)),
    }


MODELS = _models()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_autoregressive_property_by_gradients(name):
    torch.manual_seed(0)
    model = MODELS[name]
    for p in model.parameters():  # random, nonzero weights everywhere
        torch.nn.init.normal_(p, std=0.5)
    k = torch.randint(0, model.levels, (2, *model.data_shape))
    G = _input_gradients(model, k)
    rank = _rank(model.order)
    at_or_after = rank[None, :] >= rank[:, None]  # (D, D): input j is not before output i
    assert not (G & at_or_after).any(), f"{name}: output i depends on inputs at or after i"
    if name != "pixelcnn":  # every other model sees its whole past (WaveNet: RF 8 >= 8)
        assert G[~at_or_after].all(), f"{name}: some output ignores an input before it"


@pytest.mark.parametrize("shifted", [False, True])
def test_made_every_order_is_autoregressive_and_the_ensemble_normalized(shifted):
    torch.manual_seed(0)
    model = ar.MADE((1, 2, 2), 3, hidden=(16,), num_orders=3, seed=int(shifted))
    for m in range(3):
        model.use_order(m)
        G = _input_gradients(model, torch.randint(0, 3, (2, 1, 2, 2)))
        rank = _rank(model.order)
        assert not (G & (rank[None, :] >= rank[:, None])).any()
        assert G[rank[None, :] < rank[:, None]].all()
    model.use_order(0)
    x = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 1, 2, 2)
    assert torch.logsumexp(model.log_prob(x), 0).abs() < 1e-5


def test_pixelcnn_has_a_blind_spot_and_the_gated_one_has_none():
    torch.manual_seed(0)
    shape = (1, 7, 7)
    plain = ar.PixelCNN(shape, 2, channels=8, num_layers=3, first_kernel=3)
    gated = ar.GatedPixelCNN(shape, 2, channels=8, num_layers=3, kernel_size=3)
    for m in (plain, gated):
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.5)
    k = torch.randint(0, 2, (1, *shape))
    centre = 3 * 7 + 3
    seen_plain = _input_gradients(plain, k)[centre].view(7, 7)
    seen_gated = _input_gradients(gated, k)[centre].view(7, 7)
    # up and to the right, inside the reach of 4 layers of 3x3: the blind spot of PixelCNN
    assert not seen_plain[2, 5] and not seen_plain[2, 6] and not seen_plain[1, 6]
    assert seen_plain[0, 6] and seen_plain[2, 4], "the triangle around the blind spot is seen"
    assert seen_gated[:3].all() and seen_gated[3, :3].all(), "gated: the whole past within reach"
    assert not seen_gated[3, 3:].any() and not seen_gated[4:].any()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_probabilities_sum_to_one_over_the_full_support(name):
    model = MODELS[name]
    shape = (1, 4) if isinstance(model, ar.WaveNet) else (1, 2, 2)
    small = {
        "fvsbn": lambda: ar.FVSBN(shape, 3),
        "nade": lambda: ar.NADE(shape, 3, hidden=4),
        "made": lambda: ar.MADE(shape, 3, hidden=(8,), num_orders=2),
        "pixelcnn": lambda: ar.PixelCNN(shape, 3, channels=4, num_layers=1, first_kernel=3),
        "gated-pixelcnn": lambda: ar.GatedPixelCNN(shape, 3, channels=4, num_layers=2),
        "transformer": lambda: ar.CausalTransformer(shape, 3, d_model=8, n_head=2, n_layer=1),
        "wavenet": lambda: ar.WaveNet(4, levels=3, channels=4, skip_channels=4, dilations=(1, 2)),
    }[name.removesuffix("-shuffled")]
    torch.manual_seed(0)
    model = small()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.0)
    x = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, *shape)  # (81, ...)
    total = torch.logsumexp(model.log_prob(x).double(), 0)
    assert total.abs() < 1e-5, f"{name}: log sum p(x) = {total.item():.2e}, not 0"
    # floats in [0, 1] and integer levels are the same data
    assert torch.allclose(model.log_prob(x), model.log_prob(x.float() / 2))


def test_histogram_is_normalized_and_counts_parameters():
    h = ar.Histogram(3, 4)
    torch.nn.init.normal_(h.table)
    assert torch.logsumexp(h.log_prob(h.support()), 0).abs() < 1e-5
    assert h.num_free_parameters == 4**3 - 1
    # the chain rule with full conditional tables has the same count
    assert sum(4**i * (4 - 1) for i in range(3)) == h.num_free_parameters


@pytest.mark.parametrize("name", ["fvsbn", "made", "transformer", "histogram"])
def test_samples_follow_the_models_own_probabilities(name):
    torch.manual_seed(0)
    model = {
        "fvsbn": lambda: ar.FVSBN((1, 1, 2), 3),
        "made": lambda: ar.MADE((1, 1, 2), 3, hidden=(8,), num_orders=2, seed=3),
        "transformer": lambda: ar.CausalTransformer((1, 1, 2), 3, d_model=8, n_head=2, n_layer=1),
        "histogram": lambda: ar.Histogram(2, 3),
    }[name]()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.0)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    k = torch.round(s * 2).long().view(n, 2)
    counts = torch.bincount(k[:, 0] * 3 + k[:, 1], minlength=9).double()
    support = torch.tensor(list(itertools.product(range(3), repeat=2)))
    p = model.log_prob(support.view(9, *s.shape[1:])).exp().double()
    # each count is Binomial(n, p): within 5 standard deviations
    assert ((counts - n * p).abs() <= 5 * (n * p * (1 - p)).sqrt() + 1).all(), (counts / n, p)


def test_transformer_cache_gives_the_same_conditionals_as_the_full_pass():
    torch.manual_seed(0)
    model = ar.CausalTransformer((1, 3, 3), 5, d_model=16, n_head=2, n_layer=2).eval()
    k = torch.randint(0, 5, (3, 1, 3, 3))
    tokens = model.tokens(k)  # (3, 9)
    full = model.forward_tokens(tokens)  # (3, 9, 5)
    caches = [{} for _ in model.blocks]
    steps = [model.forward_tokens(tokens[:, t : t + 1], start=t, caches=caches) for t in range(9)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    a = model.sample(4, generator=torch.Generator().manual_seed(1), use_cache=True)
    b = model.sample(4, generator=torch.Generator().manual_seed(1), use_cache=False)
    assert torch.equal(a, b)


def test_wavenet_receptive_field_and_windowed_sampling():
    torch.manual_seed(0)
    model = ar.WaveNet(40, levels=4, channels=8, skip_channels=8, dilations=(1, 2, 4, 8)).eval()
    assert model.receptive_field == 16
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    k = torch.randint(0, 4, (1, 1, 40))
    G = _input_gradients(model, k)
    t = 30
    assert G[t].nonzero().squeeze(1).tolist() == list(range(t - 16, t))
    # the last output of a window of R + 1 samples equals the full pass at that step
    full = model.logits(k)[0, :, 0, t]
    window = model.logits(k[:, :, t - 16 : t + 1])[0, :, 0, -1]
    assert torch.allclose(full, window, atol=1e-5)


def test_levels_are_checked_with_a_clear_message():
    model = ar.FVSBN((1, 2, 2), 3)
    with pytest.raises(ValueError, match="outside the 3 levels"):
        model.log_prob(torch.full((1, 1, 2, 2), 5))
    with pytest.raises(ValueError, match=r"expects x of shape \(B, 1, 2, 2\)"):
        model.log_prob(torch.zeros(1, 4))


def test_loss_reports_bits_per_dim():
    model = ar.FVSBN((1, 2, 2), 3)
    x = torch.randint(0, 3, (5, 1, 2, 2))
    out = model.loss(x)
    assert torch.allclose(out["bpd"], -model.log_prob(x).mean() / (4 * math.log(2)))
    # an untrained model with zero weights is uniform: log2(3) bits per dimension
    assert abs(out["bpd"].item() - math.log2(3)) < 1e-6


def test_tones_are_deterministic_mu_law_codes():
    a, b = audio.tones(3, 512, seed=1), audio.tones(3, 512, seed=1)
    assert a.codes.dtype == torch.uint8 and a.codes.shape == (3, 1, 512)
    assert torch.equal(a.codes, b.codes) and not torch.equal(
        a.codes, audio.tones(3, 512, seed=2).codes
    )
    x = torch.linspace(-1, 1, 1001)
    err = (audio.mu_law_decode(audio.mu_law_encode(x)) - x).abs()
    # half a code step: ~1e-4 near zero, ~0.022 near +-1 (mu-law spends its levels on quiet sounds)
    assert err.max() < 0.022 and err[500] < 1e-3
    assert a.float().min() >= 0 and a.float().max() <= 1


def test_made_order_cycle_is_in_its_state_dict_so_resume_is_bit_for_bit():
    x = torch.randint(0, 3, (8, 1, 2, 2)).float() / 2

    def run(model, opt, steps):
        out = []
        for _ in range(steps):
            loss = model.loss(x)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    torch.manual_seed(0)
    a = ar.MADE((1, 2, 2), 3, hidden=(16,), num_orders=3)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    run(a, opt_a, 4)  # stops in the middle of the cycle of 3 orders
    state, opt_state = copy.deepcopy(a.state_dict()), copy.deepcopy(opt_a.state_dict())
    a.use_order(2)  # the active order is saved too
    state2 = copy.deepcopy(a.state_dict())
    a.use_order(0)
    expected = run(a, opt_a, 5)

    b = ar.MADE((1, 2, 2), 3, hidden=(16,), num_orders=3)
    b.load_state_dict(state)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    opt_b.load_state_dict(opt_state)
    assert run(b, opt_b, 5) == expected  # bit-for-bit: same orders, same updates
    b.load_state_dict(state2)
    assert b.active == 2 and torch.equal(b.order, b.orders[2])


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.tensor([[0, 1, 3]]), r"outside the 3 levels \(levels 0..3 found\)"),  # used to alias
        (torch.tensor([[0, -1, 2]]), "outside the 3 levels"),
        (torch.tensor([[0.0, 0.25, 1.0]]), "values between them"),  # not k / 2
        (torch.tensor([[0.0, float("nan"), 1.0]]), "NaN"),
        (torch.tensor([[0, 1]]), r"shape \(B, 3\)"),
        (torch.tensor([0, 1, 2]), r"shape \(B, 3\)"),
    ],
)
def test_histogram_rejects_what_it_used_to_alias(x, match):
    hist = ar.Histogram(3, 3)
    with pytest.raises(ValueError, match=match):
        hist.log_prob(x)


@pytest.mark.parametrize("name", ["fvsbn", "made", "transformer", "pixelcnn"])
def test_every_model_rejects_levels_between_levels_and_nan(name):
    model = _models()[name]
    x = torch.zeros(2, 1, 3, 3)
    x[0, 0, 1, 1] = 0.3  # between 0 and 1/2 for 3 levels
    with pytest.raises(ValueError, match="values between them"):
        model.log_prob(x)
    x[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.loss(x)
    # on-grid floats and integers give the same answer
    k = torch.randint(0, 3, (2, 1, 3, 3))
    assert torch.allclose(model.log_prob(k), model.log_prob(k / 2))

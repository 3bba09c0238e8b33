"""The flows of lecture 04 against their oracles: every layer's log-det against the autograd
Jacobian (log|det| by slogdet in float64), x -> z -> x round trips, MAF against zuko, the
dequantization bound against a known discrete answer and normalised over a full support."""

import math

import pytest
import torch

from coursekit import flows
from coursekit.flows import builders, coupling, glow


def _randomise(module, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for m in module.modules():
        if isinstance(m, glow.ActNorm):
            m.initialised.fill_(True)
    return module.double().eval()


def _jacobian_logdet(fn, x):
    """log|det d fn(x_b) / d x_b| per example by autograd, (B,)."""
    out = []
    for xb in x:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].flatten(), xb)
        out.append(torch.linalg.slogdet(J.reshape(J.shape[0], -1)).logabsdet)
    return torch.stack(out)


def _img_net(C, hidden=8):
    return coupling.ConvNet(C, hidden)


LAYERS = {
    "elementwise-affine": (lambda: flows.ElementwiseAffine(3), (3,)),
    "planar": (lambda: flows.Planar(3), (3,)),
    "radial": (lambda: flows.Radial(3), (3,)),
    "affine-coupling": (
        lambda: flows.AffineCoupling(coupling.checkerboard_mask((4,)), flows.MLPNet(4, 8)),
        (4,),
    ),
    "additive-coupling": (
        lambda: flows.AffineCoupling(
            coupling.checkerboard_mask((4,), 1), flows.MLPNet(4, 8), additive=True
        ),
        (4,),
    ),
    "coupling-checkerboard-image": (
        lambda: flows.AffineCoupling(coupling.checkerboard_mask((2, 4, 4)), _img_net(2)),
        (2, 4, 4),
    ),
    "coupling-channel-image": (
        lambda: flows.AffineCoupling(coupling.channel_mask((2, 4, 4)), _img_net(2)),
        (2, 4, 4),
    ),
    "actnorm-image": (lambda: flows.ActNorm(2), (2, 3, 3)),
    "actnorm-vector": (lambda: flows.ActNorm(5), (5,)),
    "invconv": (lambda: flows.InvConv1x1(3), (3, 2, 2)),
    "invconv-lu": (lambda: flows.InvConv1x1(3, lu=True), (3, 2, 2)),
    "squeeze": (lambda: flows.Squeeze(), (1, 4, 4)),
    "split": (lambda: flows.Split(flows.ActNorm(1), (2, 2, 2)), (2, 2, 2)),
    "maf": (lambda: flows.MAF(flows.MADEConditioner(4, (16,))), (4,)),
    "iaf": (lambda: flows.IAF(flows.MADEConditioner(4, (16,))), (4,)),
    "logit": (lambda: flows.Logit(0.05), (3,)),
    "histogram-cdf": (lambda: flows.HistogramCDF((3,), 5), (3,)),
    "reverse": (lambda: flows.Reverse(), (4,)),
    "glow-multiscale": (lambda: builders.glow_multiscale((1, 4, 4), steps=1, hidden=8), (1, 4, 4)),
    "realnvp-flat": (lambda: builders.realnvp_flat((1, 2, 2), num_layers=2, hidden=8), (1, 2, 2)),
    "maf-stack": (lambda: builders.maf(3, num_layers=2, hidden=(8,)), (3,)),
}

UNIT_INTERVAL = {"logit", "histogram-cdf", "glow-multiscale", "realnvp-flat"}


def _inputs(name, shape, B=3):
    g = torch.Generator().manual_seed(1)
    if name in UNIT_INTERVAL:
        return torch.rand(B, *shape, generator=g, dtype=torch.float64) * 0.9 + 0.05
    return torch.randn(B, *shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_log_det_is_the_autograd_jacobian(name):
    build, shape = LAYERS[name]
    layer = _randomise(build())
    x = _inputs(name, shape)
    z, logdet = layer(x)
    assert logdet.shape == (x.shape[0],)
    expected = _jacobian_logdet(lambda v: layer(v)[0], x)
    torch.testing.assert_close(logdet, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_inverse_round_trips_and_its_log_det_is_minus_the_forward(name):
    build, shape = LAYERS[name]
    layer = _randomise(build())
    x = _inputs(name, shape)
    z, logdet = layer(x)
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=1e-5, atol=1e-5)
    # and the inverse's own log-det is its own Jacobian's (the sign of the inverse direction)
    torch.testing.assert_close(
        logdet_inv, _jacobian_logdet(lambda v: layer.inverse(v)[0], z), rtol=1e-6, atol=1e-6
    )
    assert tuple(z.shape[1:]) == layer.out_shape(shape)


def test_planar_u_hat_makes_w_dot_u_at_least_minus_one_dividing_by_the_squared_norm():
    layer = flows.Planar(3)
    with torch.no_grad():
        layer.w.copy_(torch.tensor([2.0, -1.0, 0.5]))  # ||w|| != 1: /||w|| would be wrong
        layer.u.copy_(-3.0 * layer.w)  # w.u = -15.75 < -1: not invertible as given
    wu = layer.w @ layer.u
    wu_hat = layer.w @ layer.u_hat()
    torch.testing.assert_close(wu_hat, -1 + torch.nn.functional.softplus(wu))
    assert wu_hat > -1
    # invertible: the planar map is monotone along w, and the numerical inverse finds z
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    x, _ = layer.inverse(z)
    torch.testing.assert_close(layer(x)[0], z, rtol=1e-4, atol=1e-4)


def test_actnorm_initialises_on_the_first_batch_and_survives_a_zero_variance_channel():
    x = torch.randn(50, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 1
    x[:, 1] = 0.0  # a constant channel, like the blank border of the 8x8 digits
    layer = flows.ActNorm(3).train()
    z, logdet = layer(x)
    assert bool(layer.initialised)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
    assert layer.log_scale[1] == 0
    for c in (0, 2):
        assert (
            abs(float(z[:, c].mean().detach())) < 1e-5
            and abs(float(z[:, c].std(correction=0).detach()) - 1) < 1e-4
        )
    # the same on flattened digits: constant pixels (dims) of a vector
    digits = torch.rand(40, 6)
    digits[:, 0] = 0.0
    zd, ldd = flows.ActNorm(6).train()(digits)
    assert torch.isfinite(zd).all() and torch.isfinite(ldd).all()


def test_actnorm_flag_is_saved_and_a_loaded_layer_is_not_reinitialised():
    layer = flows.ActNorm(2).train()
    layer(torch.randn(20, 2, 3, 3) * 3 + 2)
    state = layer.state_dict()
    assert "initialised" in state and bool(state["initialised"])
    fresh = flows.ActNorm(2).train()
    fresh.load_state_dict(state)
    other = torch.randn(20, 2, 3, 3)
    z, _ = fresh(other)
    torch.testing.assert_close(z, layer(other)[0])
    torch.testing.assert_close(fresh.bias, layer.bias)


def test_lu_and_plain_invconv_give_the_same_log_det_for_the_same_matrix():
    lu = _randomise(flows.InvConv1x1(5, lu=True, generator=torch.Generator().manual_seed(3)))
    plain = flows.InvConv1x1(5).double()
    with torch.no_grad():
        plain.weight.copy_(lu.matrix())
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    (z1, ld1), (z2, ld2) = lu(x), plain(x)
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(ld1, ld2)
    torch.testing.assert_close(lu.log_abs_det(), torch.linalg.slogdet(lu.matrix()).logabsdet)
    # a matrix with a negative determinant: log|det| is still right (slogdet's sign is not lost)
    assert plain.log_abs_det().isfinite()


def test_squeeze_moves_each_2x2_block_into_four_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z, _ = flows.Squeeze()(x)
    assert z.shape == (1, 4, 2, 2)
    torch.testing.assert_close(z[0, :, 0, 0], torch.tensor([0.0, 1.0, 4.0, 5.0]))


def test_masks():
    cb = coupling.checkerboard_mask((2, 3, 3))
    assert cb[0, 0, 0] == 1 and cb[0, 0, 1] == 0 and cb[1, 1, 1] == 1
    torch.testing.assert_close(cb + coupling.checkerboard_mask((2, 3, 3), 1), torch.ones(2, 3, 3))
    ch = coupling.channel_mask((4, 2, 2))
    assert ch[:2].eq(1).all() and ch[2:].eq(0).all()


def test_coupling_output_of_a_masked_dimension_depends_on_the_masked_part_only():
    layer = _randomise(flows.AffineCoupling(coupling.checkerboard_mask((6,)), flows.MLPNet(6, 8)))
    x = torch.randn(1, 6, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: layer(v)[0], x)[0, :, 0, :]  # (6, 6)
    m = layer.mask.bool()
    # transformed dims see the kept dims and themselves only (diagonal), never each other
    off = J[~m][:, ~m] - torch.diag(torch.diagonal(J[~m][:, ~m]))
    assert off.abs().max() == 0
    assert J[m][:, ~m].abs().max() == 0


def test_maf_and_iaf_are_autoregressive_and_one_pass_in_their_fast_direction():
    net = _randomise(flows.MADEConditioner(5, (16,)))
    x = torch.randn(1, 5, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: flows.MAF(net)(v)[0], x)[0, :, 0, :]
    assert torch.triu(J, 1).abs().max() == 0  # z_i depends on x_<=i only


def test_maf_matches_zuko_with_the_same_network():
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(0)
    t = zuko.flows.MaskedAutoregressiveTransform(features=3, hidden_features=(16, 16))
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))

    class ZukoConditioner(torch.nn.Module):
        """zuko's masked network, read as (shift, log_scale) like zuko's affine transform."""

        def __init__(self, hyper):
            super().__init__()
            self.hyper = hyper

        def forward(self, v):
            shift, scale = self.hyper(v).unflatten(-1, (3, 2)).unbind(-1)
            slope = 1e-3  # zuko's MonotonicAffineTransform default
            return shift, scale / (1 + abs(scale / math.log(slope)))

    mine = flows.MAF(ZukoConditioner(t.hyper))
    x = torch.randn(7, 3)
    transform = t()
    z, logdet = mine(x)
    torch.testing.assert_close(z, transform(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logdet, transform.log_abs_det_jacobian(x, z), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine.inverse(z)[0], transform.inv(z), rtol=1e-4, atol=1e-4)
    # the density of the whole flow: zuko's Flow with a standard normal base
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(3), torch.ones(3), buffer=True
    )
    oracle = zuko.flows.Flow(transform=[t], base=base)
    model = flows.FlowModel(mine, (3,))
    torch.testing.assert_close(model.log_prob(x), oracle().log_prob(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- dequantization


def test_uniform_dequantized_histogram_flow_gives_the_exact_discrete_likelihood():
    """The known answer: a histogram density with L bins, dequantized uniformly, is exactly an
    independent categorical model; its bound must equal the categorical log-likelihood, so
    its bits/dim carry the offset log2 L (L = 17 for the digits), not log2 256 or log2 16."""
    L, shape = 17, (1, 2, 3)
    g = torch.Generator().manual_seed(0)
    hist = flows.HistogramCDF(shape, L)
    with torch.no_grad():
        hist.logits.normal_(generator=g)
    model = flows.DequantizedFlow(hist, shape, levels=L)
    k = torch.randint(0, L, (8, *shape), generator=g)
    log_pi = hist.logits.log_softmax(-1)  # (*shape, L)
    exact = torch.gather(log_pi.expand(8, *shape, L), -1, k[..., None])[..., 0].flatten(1).sum(1)
    bound = model.bound(k.float() / (L - 1))
    torch.testing.assert_close(bound, exact, rtol=1e-4, atol=1e-4)
    bpd = model.loss(k.float() / (L - 1))["bpd"]
    torch.testing.assert_close(bpd, -exact.mean() / (6 * math.log(2)), rtol=1e-4, atol=1e-4)
    # a uniform histogram: exactly log2(17) bits per dimension
    flat = flows.DequantizedFlow(flows.HistogramCDF(shape, L), shape, levels=L)
    torch.testing.assert_close(
        flat.loss(k.float() / (L - 1))["bpd"], torch.tensor(math.log2(L)), rtol=1e-5, atol=1e-5
    )


def test_dequantized_flow_is_normalised_over_the_full_discrete_support():
    torch.manual_seed(0)
    L, shape = 3, (2,)
    flow = _randomise(builders.coupling_stack(2, 2, 8), seed=2).float()
    # alpha = 0: the logit maps [0, 1] onto R exactly (with alpha > 0 some mass falls outside
    # [0, 1] and the discrete model sums to less than 1, still a valid but looser model)
    model = flows.DequantizedFlow(flows.Compose(flows.Logit(0.0), flow), shape, levels=L)
    support = torch.cartesian_prod(torch.arange(L), torch.arange(L)).float() / (L - 1)  # (9, 2)
    # uniform dequantization: P(k) = E_u[p_Y((k + u)/L)] / L^D, so the S-sample estimate
    # converges to log P(k) and the P(k) sum to 1
    g = torch.Generator().manual_seed(0)
    log_p = model.log_prob_bound(support, num_samples=4000, generator=g)
    assert abs(float(log_p.exp().sum()) - 1) < 0.02
    leaky = flows.DequantizedFlow(flows.Compose(flows.Logit(0.05), flow), shape, levels=L)
    assert float(leaky.log_prob_bound(support, num_samples=4000, generator=g).exp().sum()) < 0.98


def test_variational_dequantizer_log_q_is_its_jacobian_and_u_lies_in_the_unit_cube():
    deq = _randomise(flows.VariationalDequantizer(3, 5, hidden=8, num_layers=2))
    k = torch.tensor([[0, 2, 4]])
    eps = torch.randn(1, 3, dtype=torch.float64)
    u, log_q = deq(k, eps)
    assert (u > 0).all() and (u < 1).all()
    J = torch.autograd.functional.jacobian(lambda e: deq(k, e)[0], eps)[0, :, 0, :]
    expected = flows.standard_normal_log_prob(eps) - torch.linalg.slogdet(J).logabsdet
    torch.testing.assert_close(log_q, expected)


def test_dequantized_flow_rejects_values_between_levels_and_samples_levels():
    model = flows.DequantizedFlow(builders.realnvp_flat((1, 2, 2), 2, 8), (1, 2, 2), levels=5)
    with pytest.raises(ValueError, match="between"):
        model.loss(torch.full((2, 1, 2, 2), 0.1))
    with pytest.raises(NotImplementedError, match="log_prob_bound"):
        model.log_prob(torch.zeros(2, 1, 2, 2))
    s = model.sample(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s * 4, (s * 4).round())


def test_flow_model_sample_with_log_prob_matches_log_prob():
    model = builders.realnvp(2, num_layers=3, hidden=8)
    _randomise(model, seed=4)
    model.float()
    x, log_p = model.sample_with_log_prob(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_p, model.log_prob(x), rtol=1e-4, atol=1e-4)


# ---- rational-quadratic spline coupling (Neural Spline Flows), zuko as the oracle ----


def test_rq_spline_matches_zuko_forward_inverse_and_logdet():
    zuko = pytest.importorskip("zuko")
    from coursekit.flows import spline

    g = torch.Generator().manual_seed(0)
    n, K, bound = 400, 6, 3.0
    w, h, d = (torch.randn(n, k, generator=g, dtype=torch.float64) for k in (K, K, K - 1))
    ref = zuko.transforms.MonotonicRQSTransform(w, h, d, bound=bound)
    x = 2.5 * torch.randn(n, generator=g, dtype=torch.float64)  # some points outside the bound
    y_ref, ladj_ref = ref.call_and_ladj(x)
    y, ladj = spline.rq_spline(x, ref.horizontal, ref.vertical, ref.derivatives)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(ladj, ladj_ref)
    x_back, ladj_inv = spline.rq_spline(y_ref, ref.horizontal, ref.vertical, ref.derivatives,
                                        inverse=True)  # fmt: skip
    torch.testing.assert_close(x_back, ref.inv(y_ref))
    torch.testing.assert_close(ladj_inv, -ladj)


def test_spline_knots_from_zeros_are_the_identity():
    from coursekit.flows import spline

    kx, ky, d = spline.knots(torch.zeros(8), torch.zeros(8), torch.zeros(7), bound=4.0)
    x = torch.linspace(-5, 5, 101)
    y, ladj = spline.rq_spline(x, kx, ky, d)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ladj, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_spline_coupling_logdet_against_autograd_and_round_trip():
    from coursekit.flows import spline

    torch.manual_seed(0)
    net = coupling.MLPNet(4, 16, out_mult=3 * 5 - 1)
    torch.nn.init.normal_(net.out.weight, std=0.5)  # not the identity
    layer = spline.SplineCoupling(coupling.checkerboard_mask((4,), 0), net, bins=5, bound=3.0)
    layer = layer.double()
    x = 1.5 * torch.randn(6, 4, dtype=torch.float64)
    z, logdet = layer(x)
    torch.testing.assert_close(logdet, _jacobian_logdet(lambda v: layer(v)[0], x))
    x_back, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet)
    assert not torch.allclose(z, x)  # the spline moved the transformed half


def test_spline_coupling_refuses_image_masks():
    from coursekit.flows import spline

    with pytest.raises(ValueError, match="flatten"):
        spline.SplineCoupling(torch.ones(1, 2, 2), coupling.MLPNet(4, 8))

"""Conditional flows of lecture 04 against their oracles: for a fixed condition the log-det is
the autograd Jacobian's and x -> z -> x round trips; p(x | y) integrates to one over a grid for
every y; the class marginal and posterior follow Bayes' rule; the paired (C-Flow) joint density
integrates to one and factorises as log p_A(a) + log p_B(b | f_A(a))."""

import math

import pytest
import torch

from coursekit import flows
from coursekit.flows import conditional


def _randomise(module, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.double().eval()


def _class_flow(dim=4, num_classes=3, layers=4, seed=0):
    with torch.random.fork_rng():  # the networks' default init draws from the global RNG
        torch.manual_seed(seed)
        return _build_class_flow(dim, num_classes, layers, seed)


def _build_class_flow(dim, num_classes, layers, seed):
    flow = flows.ConditionalCompose(
        flows.ActNorm(dim), *flows.conditional_coupling_stack(dim, num_classes, layers, hidden=8)
    )
    model = flows.ConditionalFlowModel(
        flow, (dim,), flows.OneHot(num_classes), num_classes=num_classes
    )
    for m in model.modules():
        if isinstance(m, flows.ActNorm):
            m.initialised.fill_(True)
    return _randomise(model, seed)


def _jacobian_logdet(fn, x):
    out = []
    for xb in x:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].flatten(), xb)
        out.append(torch.linalg.slogdet(J.reshape(J.shape[0], -1)).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("which", ["coupling", "stack"])
def test_conditional_log_det_is_the_autograd_jacobian_for_each_condition(which):
    model = _class_flow()
    layer = model.flow.layers[1] if which == "coupling" else model.flow
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for label in range(3):
        c = model.condition(torch.full((5,), label))
        _, logdet = layer(x, c)
        expected = _jacobian_logdet(lambda v, c=c: layer(v, c[:1]), x)
        assert torch.allclose(logdet, expected, atol=1e-6)


def test_conditional_round_trip_and_inverse_log_det_given_y():
    model = _class_flow()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c = model.condition(torch.tensor([0, 1, 2, 2, 1, 0]))
    z, ld = model.flow(x, c)
    x_back, ld_inv = model.flow.inverse(z, c)
    assert torch.allclose(x_back, x, atol=1e-5)
    assert torch.allclose(ld_inv, -ld, atol=1e-6)
    # the wrong condition does not invert: the context really enters the map
    wrong = model.condition(torch.tensor([1, 2, 0, 0, 2, 1]))
    assert (model.flow.inverse(z, wrong)[0] - x).abs().max() > 1e-2


def test_conditional_density_integrates_to_one_for_every_class():
    model = _class_flow(dim=2, num_classes=3, layers=4, seed=3)
    axis = torch.linspace(-9, 9, 601, dtype=torch.float64)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    cell = float((axis[1] - axis[0]) ** 2)
    with torch.no_grad():
        masses = [
            float(model.log_prob(grid, torch.full((len(grid),), c)).exp().sum() * cell)
            for c in range(3)
        ]
        marginal = float(model.log_prob(grid).exp().sum() * cell)
        per_class = torch.stack([model.log_prob(grid[:50], torch.full((50,), c)) for c in range(3)])
    assert masses == pytest.approx([1.0] * 3, abs=2e-3)
    assert marginal == pytest.approx(1.0, abs=2e-3)
    assert per_class.std(0).max() > 1e-2  # the classes have different densities


def test_marginal_and_posterior_follow_bayes_rule():
    model = _class_flow()
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        cond = torch.stack([model.log_prob(x, torch.full((7,), c)) for c in range(3)], 1)
        marginal = model.log_prob(x)
        post = model.class_log_posterior(x)
    assert torch.allclose(marginal, torch.logsumexp(cond, 1) - math.log(3), atol=1e-10)
    assert torch.allclose(post, cond - torch.logsumexp(cond, 1, keepdim=True), atol=1e-10)


def test_samples_given_y_are_the_inverse_of_the_base_draws():
    model = _class_flow()
    y = torch.tensor([0, 2, 1, 1])
    x = model.sample(4, y, generator=torch.Generator().manual_seed(5))
    z = torch.randn(4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(model.flow(x, model.condition(y))[0], z, atol=1e-6)
    without_y = model.sample(6, generator=torch.Generator().manual_seed(5))
    assert without_y.shape == (6, 4)  # classes 0, 1, 2, 0, 1, 2


def test_a_conditional_coupling_never_lets_a_dimension_see_itself():
    model = _class_flow()
    layer = model.flow.layers[1]
    x = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    c = model.condition(torch.tensor([1]))
    z, _ = layer(x, c)
    J = torch.stack([torch.autograd.grad(z[0, i], x, retain_graph=True)[0][0] for i in range(4)])
    m = layer.mask.bool()
    assert torch.equal(J[m][:, ~m], torch.zeros_like(J[m][:, ~m]))  # kept part: no dependence
    off = J[~m][:, ~m] - torch.diag(torch.diagonal(J[~m][:, ~m]))
    assert torch.equal(off, torch.zeros_like(off))  # transformed part: own dimension only


def test_missing_or_bad_conditions_say_what_to_do():
    flow = flows.ConditionalCompose(*flows.conditional_coupling_stack(2, 4, 2, hidden=8))
    model = flows.ConditionalFlowModel(flow, (2,), torch.nn.Identity())
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="needs the condition y"):
        model.loss(x)
    with pytest.raises(ValueError, match="needs the condition y"):
        model.sample(3)
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        model.log_prob(x[:2], torch.randn(3, 4))
    with pytest.raises(ValueError, match="lie in 0..2"):
        flows.OneHot(3)(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="integer indices"):
        flows.OneHot(3)(torch.tensor([0.0, 1.0]))


def _paired_1d():
    """a and b one number each: a by a planar flow, b | z_a by a fully conditioned affine."""
    with torch.random.fork_rng():  # the networks' default init draws from the global RNG
        torch.manual_seed(0)
        return _build_paired_1d()


def _build_paired_1d():
    model_a = flows.FlowModel(flows.Compose(flows.ElementwiseAffine(1), flows.Planar(1)), (1,))
    net = conditional.coupling_net(1, 1, hidden=8)
    b_flow = flows.ConditionalCompose(flows.ConditionalAffineCoupling(torch.zeros(1), net))
    model_b = flows.ConditionalFlowModel(b_flow, (1,), torch.nn.Identity())
    return _randomise(flows.PairedFlow(model_a, model_b), seed=6, scale=0.5)


def test_paired_flow_is_a_normalised_joint_density_that_factorises():
    model = _paired_1d()
    axis = torch.linspace(-30, 30, 2401, dtype=torch.float64)
    gb, ga = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([ga.reshape(-1), gb.reshape(-1)], 1)  # (n, 2): [a, b]
    with torch.no_grad():
        lp = model.log_prob(grid)
        mass = float(lp.exp().sum() * (axis[1] - axis[0]) ** 2)
        a, b = model.split(grid[:20])
        z_a, log_pa = model.encode_a(a)
        by_hand = model.model_a.log_prob(a) + model.model_b.log_prob(b, z_a)
    assert mass == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(log_pa, model.model_a.log_prob(a), atol=1e-10)
    assert torch.allclose(lp[:20], by_hand, atol=1e-10)
    # b's density changes with a: the second flow really reads the first one's latent
    b0 = torch.zeros(2, 1, dtype=torch.float64)
    a2 = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    lp_b = model.model_b.log_prob(b0, model.encode_a(a2)[0])
    assert (lp_b[0] - lp_b[1]).abs() > 1e-3


def test_paired_flow_translate_and_sample_shapes():
    case = conditional._tiny_paired()
    model = case.model
    a = case.x[:, :1]
    b = model.translate(a, generator=torch.Generator().manual_seed(0))
    assert b.shape == a.shape
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 2, 2, 2)
    with pytest.raises(ValueError, match="spatial shape"):
        flows.PairedFlow(model.model_a, flows.ConditionalFlowModel(
            model.model_b.flow, (1, 4), torch.nn.Identity()))  # fmt: skip

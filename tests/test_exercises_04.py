"""Every check of Lecture 04 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: a log-det with the inverse direction's sign, a mask that lets a
dimension see itself, log|s| without the absolute value, the pixel count forgotten, wrong
reductions, a size written as a number, a detached result and an input modified in place."""

import math

import pytest
import torch

from coursekit import flows
from coursekit.exercises import flows as checks

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


# ----------------------------------------------------------------------------- log-density


def _log_normal(z):
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def _lp(x, layers, *, sign=1.0, base_at_x=False, const=True, reverse=False, last_only=False):
    z, total, lds = x, 0.0, []
    for layer in reversed(layers) if reverse else layers:
        z, ld = layer(z)
        lds.append(ld)
    total = lds[-1] if last_only else sum(lds)
    base = _log_normal(x if base_at_x else z)
    if not const:
        base = base + 0.5 * z.shape[1] * math.log(2 * math.pi)
    return base + sign * total


@pytest.mark.parametrize("seed", SEEDS)
def test_log_prob_passes_the_reference(seed):
    assert checks.check_flow_log_prob(checks.reference_log_prob, seed=seed)


def test_log_prob_with_compose_passes():
    def via_compose(x, layers):
        z, ld = flows.Compose(*layers)(x)
        return flows.standard_normal_log_prob(z) + ld

    assert checks.check_flow_log_prob(via_compose)


def _lp_in_place(x, layers):
    out = _lp(x, layers)
    x.zero_()
    return out


def _lp_no_grad(x, layers):
    with torch.no_grad():
        return _lp(x, layers)


WRONG_LOG_PROB = [
    (lambda x, ls: _lp(x, ls, sign=-1.0), "subtracted the log-determinants"),
    (lambda x, ls: _lp(x, ls, sign=0.0), "forgot the log-determinants"),
    (lambda x, ls: _lp(x, ls, last_only=True), "kept only the last layer's log-det"),
    (lambda x, ls: _lp(x, ls, base_at_x=True), "evaluated the base density at x"),
    (lambda x, ls: _lp(x, ls, const=False), "forgot the constant -D/2 log(2 pi)"),
    (lambda x, ls: _lp(x, ls, reverse=True), "applied the layers in reverse order"),
    (lambda x, ls: _lp(x, ls).mean(), "averaged over the batch"),
    (lambda x, ls: _lp(x, ls).sum(), "summed over the batch"),
    # the notebook's D = 2 written as a number
    (
        lambda x, ls: _lp(x, ls, const=False) - 0.5 * 2 * math.log(2 * math.pi),
        "It passed with B=4, D=2, K=3",
    ),
    (lambda x, ls: _lp(x, ls[:3]), "It passed with B=4, D=2, K=3"),
    (_lp_no_grad, "carries no gradient"),
    (lambda x, ls: _lp(x, ls).detach(), "carries no gradient"),
    (_lp_in_place, "modified its input in place (line"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_LOG_PROB)
def test_log_prob_names_the_mistake(wrong, words):
    _fails_with(checks.check_flow_log_prob(wrong), words)


def test_log_prob_partly_detached_is_a_wrong_gradient():
    def detached_logdets(x, layers):
        z, total = x, 0.0
        for layer in layers:
            z, ld = layer(z)
            total = total + ld.detach()
        return _log_normal(z) + total

    _fails_with(checks.check_flow_log_prob(detached_logdets), "wrong gradient")


# ----------------------------------------------------------------------------- affine coupling


def _fwd(x, m, net, *, see_self=False, neg=False, all_dims=False, swap=False, shift_first=False):
    t, s = net(x if see_self else m * x)
    scale = (-s).exp() if neg else s.exp()
    if shift_first:
        moved = (x + t) * scale
    else:
        moved = x * scale + t
    if all_dims:
        z = moved
    elif swap:
        z = (1 - m) * x + m * moved
    else:
        z = m * x + (1 - m) * moved
    return z, ((1 - m) * s).sum(1)


def _inv(z, m, net):
    return checks.reference_coupling_inverse(z, m, net)


def _ld_variant(kind):
    def fwd(x, m, net):
        z, ld = _fwd(x, m, net)
        t, s = net(m * x)
        return z, {
            "all": s.sum(1),
            "neg": -ld,
            "exp": ((1 - m) * s.exp()).sum(1),
            "nosum": (1 - m) * s,
            "batch": ld.sum(),
        }[kind]

    return fwd


@pytest.mark.parametrize("seed", SEEDS)
def test_coupling_passes_the_reference(seed):
    assert checks.check_affine_coupling(
        checks.reference_coupling_forward, checks.reference_coupling_inverse, seed=seed
    )


def _inv_variant(kind):
    def inv(z, m, net):
        t, s = net(z if kind == "see_self" else m * z)
        if kind == "times":
            return m * z + (1 - m) * (z - t) * s.exp()
        if kind == "order":
            return m * z + (1 - m) * (z * (-s).exp() - t)
        if kind == "all":
            return (z - t) * (-s).exp()
        if kind == "see_self":
            return m * z + (1 - m) * (z - t) * (-s).exp()
        return z

    return inv


def _fwd_in_place(x, m, net):
    out = _fwd(x, m, net)
    m.mul_(0)
    return out


WRONG_COUPLING = [
    ((lambda x, m, n: _fwd(x, m, n, see_self=True), _inv), "see themselves"),
    ((lambda x, m, n: _fwd(x, m, n, neg=True), _inv), "scaled by exp(-s) in the forward"),
    ((lambda x, m, n: _fwd(x, m, n, all_dims=True), _inv), "transformed every dimension"),
    ((lambda x, m, n: _fwd(x, m, n, swap=True), _inv), "swapped the roles of mask"),
    ((lambda x, m, n: _fwd(x, m, n, shift_first=True), _inv), "added the shift before scaling"),
    ((_ld_variant("all"), _inv), "summed s over all dimensions"),
    ((_ld_variant("neg"), _inv), "flipped the sign of the log-det"),
    ((_ld_variant("exp"), _inv), "summed exp(s)"),
    ((_ld_variant("nosum"), _inv), "forgot to sum over the dimensions"),
    ((_ld_variant("batch"), _inv), "summed over the batch too"),
    (
        (checks.reference_coupling_forward, _inv_variant("times")),
        "multiplied by exp(s) in the inverse",
    ),
    ((checks.reference_coupling_forward, _inv_variant("order")), "divided before subtracting"),
    ((checks.reference_coupling_forward, _inv_variant("all")), "inverted every dimension"),
    ((checks.reference_coupling_forward, _inv_variant("see_self")), "gave the network z instead"),
    ((checks.reference_coupling_forward, _inv_variant("same")), "returned z unchanged"),
    # a width hard-coded at the notebook's D = 4
    (
        (lambda x, m, n: checks.reference_coupling_forward(x, m, n)[0][:, :4], _inv),
        "forward should return a pair",
    ),
    (
        (
            lambda x, m, n: (
                x[:, :4] * 0 + checks.reference_coupling_forward(x, m, n)[0][:, :4],
                checks.reference_coupling_forward(x, m, n)[1],
            ),
            _inv,
        ),
        "It passed with B=4, D=4",
    ),
    (
        (
            lambda x, m, n: tuple(t.detach() for t in checks.reference_coupling_forward(x, m, n)),
            _inv,
        ),
        "carries no gradient",
    ),
    ((_fwd_in_place, _inv), "modified its input `m` in place"),
    ((stub, _inv), "not implemented yet"),
    ((checks.reference_coupling_forward, stub), "not implemented yet"),
]


@pytest.mark.parametrize("fns, words", WRONG_COUPLING)
def test_coupling_names_the_mistake(fns, words):
    _fails_with(checks.check_affine_coupling(*fns), words)


def test_coupling_with_a_detached_network_is_a_wrong_gradient():
    def detached_net(x, m, net):
        t, s = net(m * x)
        t, s = t.detach(), s.detach()
        return m * x + (1 - m) * (x * s.exp() + t), ((1 - m) * s).sum(1)

    _fails_with(
        checks.check_affine_coupling(detached_net, checks.reference_coupling_inverse),
        "wrong gradient",
    )


# ----------------------------------------------------------------------------- LU 1x1 conv


def _lu(x, P, L, U, s, *, ld="ok", W="ok"):
    mats = {
        "ok": P @ L @ (U + torch.diag(s)),
        "noP": L @ (U + torch.diag(s)),
        "nos": P @ L @ U,
        "order": (U + torch.diag(s)) @ L @ P,
        "T": (P @ L @ (U + torch.diag(s))).T,
    }
    z = torch.einsum("oc,bchw->bohw", mats[W], x)
    B, C, H, Wd = x.shape
    la = s.abs().log().sum()
    lds = {
        "ok": (H * Wd * la).expand(B),
        "noHW": la.expand(B),
        "s": (H * Wd * s.sum()).expand(B),
        "neg": -(H * Wd * la).expand(B),
        "scalar": H * Wd * la,
        "H+W": ((H + Wd) * la).expand(B),
        "noabs": (H * Wd * s.log().sum()).expand(B),
        "12": (12 * la).expand(B),  # the notebook's H * W = 4 * 3
    }
    return z, lds[ld]


@pytest.mark.parametrize("seed", SEEDS)
def test_lu_passes_the_reference(seed):
    assert checks.check_lu_conv(checks.reference_lu_conv, seed=seed)


def test_lu_with_slogdet_passes_too():
    def full(x, P, L, U, s):
        W = P @ L @ (U + torch.diag(s))
        H, Wd = x.shape[2:]
        ld = H * Wd * torch.linalg.slogdet(W).logabsdet
        return torch.einsum("oc,bchw->bohw", W, x), ld.expand(x.shape[0])

    assert checks.check_lu_conv(full)


def _lu_in_place(x, P, L, U, s):
    out = _lu(x, P, L, U, s)
    s.abs_()
    return out


WRONG_LU = [
    (lambda *a: _lu(*a, W="noP"), "forgot the permutation P"),
    (lambda *a: _lu(*a, W="nos"), "left out diag(s)"),
    (lambda *a: _lu(*a, W="order"), "multiplied in the wrong order"),
    (lambda *a: _lu(*a, W="T"), "applied W transposed"),
    (lambda *a: _lu(*a, ld="noHW"), "forgot the factor H * W"),
    (lambda *a: _lu(*a, ld="s"), "summed s itself"),
    (lambda *a: _lu(*a, ld="neg"), "flipped the sign"),
    (lambda *a: _lu(*a, ld="scalar"), "one number for the batch"),
    (lambda *a: _lu(*a, ld="H+W"), "H + W"),
    (lambda *a: _lu(*a, ld="noabs"), "absolute value"),
    (lambda *a: _lu(*a, ld="12"), "It passed with B=2, C=3, H=4, W=3"),
    (lambda *a: (_lu(*a)[0], _lu(*a)[1].detach()), "carries no gradient"),
    (_lu_in_place, "modified its input in place (line"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_LU)
def test_lu_names_the_mistake(wrong, words):
    _fails_with(checks.check_lu_conv(wrong), words)


@pytest.mark.parametrize(
    "run",
    [
        lambda spy, seed: checks.check_flow_log_prob(spy, seed=seed),
        lambda spy, seed: checks.check_affine_coupling(spy, stub, seed=seed),
        lambda spy, seed: checks.check_lu_conv(spy, seed=seed),
    ],
)
def test_seeds_change_sizes_and_values(run):
    seen = set()
    for seed in SEEDS:

        def spy(*args, seed=seed):
            seen.add((seed, tuple(args[0].shape), float(args[0].detach().flatten()[0])))
            raise NotImplementedError

        run(spy, seed)
    assert len({s for _, s, _ in seen}) == len(SEEDS)
    assert len({v for _, _, v in seen}) == len(SEEDS)


# ----------------------------------------------------------------------------- latent edit


def _edit(z, ys, yt, flow, cond, *, enc=None, dec=None, out="x"):
    w, _ = flow(z, cond(ys if enc is None else enc(ys, yt)))
    if out == "w":
        return w
    x = flow.inverse(w, cond(yt if dec is None else dec(ys, yt)))
    return x if out == "pair" else x[0]


def _edit_in_place(z, ys, yt, flow, cond):
    out = _edit(z, ys, yt, flow, cond)
    z.mul_(2)
    return out


def _edit_ten_classes(z, ys, yt, flow, cond):
    """The notebook's 10 classes written as a number in a hand-made one-hot."""
    one_hot = lambda y: torch.nn.functional.one_hot(y, 10).float()  # noqa: E731
    w, _ = flow(z, one_hot(ys))
    return flow.inverse(w, one_hot(yt))[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_latent_edit_passes_the_reference(seed):
    assert checks.check_latent_edit(checks.reference_edit_latent, seed=seed)


def test_latent_edit_with_the_model_method_passes():
    def via_model(z, ys, yt, flow, cond):
        model = flows.ConditionalFlowModel(flow, (z.shape[1],), cond)
        return model.change_condition(z, ys, yt)

    assert checks.check_latent_edit(via_model)


WRONG_EDIT = [
    (lambda *a: _edit(*a, out="w"), "returned the flow's code w"),
    (lambda *a: _edit(*a, enc=lambda s, t: t), "encoded with the target class"),
    (lambda *a: _edit(*a, enc=lambda s, t: t, dec=lambda s, t: s), "swapped source and target"),
    (
        lambda z, ys, yt, flow, cond: flow(flow.inverse(z, cond(ys))[0], cond(yt))[0],
        "ran the flow the wrong way",
    ),
    (
        lambda z, ys, yt, flow, cond: flow(flow(z, cond(ys))[0], cond(yt))[0],
        "forward twice",
    ),
    (lambda *a: _edit(*a, out="pair"), "returned a tuple"),
    (_edit_ten_classes, "It passed with B=5, D=4, K=10"),
    (_edit_in_place, "modified its input `z` in place"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_EDIT)
def test_latent_edit_names_the_mistake(wrong, words):
    _fails_with(checks.check_latent_edit(wrong), words)


def test_latent_edit_seeds_change_sizes_and_values():
    seen = set()
    for seed in SEEDS:

        def spy(*args, seed=seed):
            seen.add((seed, tuple(args[0].shape), float(args[0].flatten()[0])))
            raise NotImplementedError

        checks.check_latent_edit(spy, seed=seed)
    assert len({s for _, s, _ in seen}) == len(SEEDS)
    assert len({v for _, _, v in seen}) == len(SEEDS)

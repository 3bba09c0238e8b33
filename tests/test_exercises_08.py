"""Every check of Lecture 08 passes the reference (at several seeds) and names the mistake of
plausible wrong answers: the time direction swapped, the target's sign, a sum instead of a
mean, the first or the last Euler step skipped, a step too many, the velocity read at the end
of a step, a size written as a number, a detached loss and an input modified in place."""

import pytest
import torch

from coursekit.exercises import flow_matching as checks

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


def _b(t, x):
    return t.view(-1, *([1] * (x.ndim - 1)))


# ----------------------------------------------------------------------------- the path


@pytest.mark.parametrize("seed", SEEDS)
def test_path_passes_the_reference(seed):
    assert checks.check_path_sample(checks.reference_path_sample, seed=seed)


def _path_in_place(x0, x1, t):
    x0.mul_(1 - _b(t, x0))
    return x0 + _b(t, x1) * x1


WRONG_PATH = [
    (lambda x0, x1, t: _b(t, x0) * x0 + (1 - _b(t, x0)) * x1, "swapped the time direction"),
    (lambda x0, x1, t: _b(t, x0) * x1, "forgot the noise"),
    (lambda x0, x1, t: x0 + _b(t, x0) * x1, "kept all of the noise"),
    (lambda x0, x1, t: (1 - _b(t, x0)).sqrt() * x0 + _b(t, x0).sqrt() * x1, "square roots"),
    (lambda x0, x1, t: (1 - _b(t, x0)) * x0 - _b(t, x0) * x1, "subtracted"),
    # the notebook's vectors (B, 2): t reshaped to (B, 1) breaks on images
    (lambda x0, x1, t: (1 - t.view(-1, 1)) * x0 + t.view(-1, 1) * x1, "It passed with B=5"),
    (lambda x0, x1, t: checks.reference_path_sample(x0, x1, t).detach(), "carries no gradient"),
    (_path_in_place, "modified its input in place (line"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_PATH)
def test_path_names_the_mistake(wrong, words):
    _fails_with(checks.check_path_sample(wrong), words)


# ----------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("seed", SEEDS)
def test_loss_passes_the_reference(seed):
    assert checks.check_cfm_loss(checks.reference_cfm_loss, seed=seed)


def _loss(net, x0, x1, t, *, sign=1.0, reduce="mean", swap=False, net_t=None, target=None):
    x_t = (
        checks.reference_path_sample(x1, x0, t) if swap else checks.reference_path_sample(x0, x1, t)
    )
    u = sign * (x1 - x0) if target is None else target
    err2 = (net(x_t, t if net_t is None else net_t) - u) ** 2
    if reduce == "sum":
        return err2.sum()
    if reduce == "per_example":
        return err2.flatten(1).mean(1)
    return err2.mean()


def _loss_no_grad(net, x0, x1, t):
    with torch.no_grad():
        return _loss(net, x0, x1, t)


def _loss_in_place(net, x0, x1, t):
    x1.sub_(x0)  # the target, computed in the caller's tensor
    x_t = x0 + _b(t, x0) * x1
    return ((net(x_t, t) - x1) ** 2).mean()


WRONG_LOSS = [
    (lambda n, x0, x1, t: _loss(n, x0, x1, t, sign=-1.0), "regressed onto x0 − x1"),
    (lambda n, x0, x1, t: _loss(n, x0, x1, t, swap=True), "swapped the time direction in the path"),
    (
        lambda n, x0, x1, t: _loss(n, x0, x1, t, swap=True, net_t=1 - t),
        "swapped the time direction (path and network",
    ),
    (lambda n, x0, x1, t: _loss(n, x0, x1, t, net_t=1 - t), "gave the network 1 − t"),
    (lambda n, x0, x1, t: _loss(n, x0, x1, t, reduce="sum"), "summed instead of averaging"),
    (
        lambda n, x0, x1, t: _loss(n, x0, x1, t, reduce="per_example"),
        "returned one loss per example",
    ),
    (lambda n, x0, x1, t: _loss(n, x0, x1, t, target=x1), "regressed onto the data x1"),
    (lambda n, x0, x1, t: ((n(x1, t) - (x1 - x0)) ** 2).mean(), "fed the data x1"),
    (
        lambda n, x0, x1, t: (
            (n(checks.reference_path_sample(x0, x1, t), t) - (x1 - x0)).abs().mean()
        ),
        "forgot to square",
    ),
    # the notebook's B = 6 written as a number
    (
        lambda n, x0, x1, t: _loss(n, x0, x1, t, reduce="sum") / (6 * x0[0].numel()),
        "It passed with B=6",
    ),
    (_loss_no_grad, "carries no gradient"),
    (lambda n, x0, x1, t: _loss(n, x0, x1, t).item(), "Python float"),
    (_loss_in_place, "modified its input"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_LOSS)
def test_loss_names_the_mistake(wrong, words):
    _fails_with(checks.check_cfm_loss(wrong), words)


def test_loss_with_a_detached_target_network_input_is_a_wrong_gradient():
    def detached_net_params(net, x0, x1, t):
        x_t = checks.reference_path_sample(x0, x1, t)
        pred = net.a.detach() * x_t + net.b * (net(x_t, t) - net.a * x_t) / net.b
        return ((pred - (x1 - x0)) ** 2).mean()

    _fails_with(checks.check_cfm_loss(detached_net_params), "wrong gradient")


# ----------------------------------------------------------------------------- Euler


@pytest.mark.parametrize("seed", SEEDS)
def test_euler_passes_the_reference(seed):
    assert checks.check_euler_sample(checks.reference_euler_sample, seed=seed)


def test_euler_written_as_a_loop_passes():
    def euler(velocity, x0, num_steps):
        h, x = 1.0 / num_steps, x0
        for i in range(num_steps):
            x = x + h * velocity(x, torch.full((x.shape[0],), i * h))
        return x

    assert checks.check_euler_sample(euler)


def _euler(velocity, x0, n, *, times=None, h=None, sign=1.0):
    h = 1.0 / n if h is None else h
    times = [i / n for i in range(n)] if times is None else times
    x = x0
    for t in times:
        x = x + sign * h * velocity(x, torch.full((x.shape[0],), t))
    return x


def _euler_in_place(velocity, x0, n):
    x = x0
    for i in range(n):
        x += velocity(x, torch.full((x.shape[0],), i / n)) / n
    return x


def _euler_scalar_t(velocity, x0, n):
    x = x0
    for i in range(n):
        x = x + velocity(x, torch.tensor(i / n)) / n
    return x


WRONG_EULER = [
    (
        lambda v, x, n: _euler(v, x, n, times=[1 - i / n for i in range(n)], sign=-1.0),
        "integrated backwards",
    ),
    (
        lambda v, x, n: _euler(v, x, n, times=[1 - i / n for i in range(n)]),
        "ran the time from 1 down to 0",
    ),
    (
        lambda v, x, n: _euler(v, x, n, times=[(i + 1) / n for i in range(n)]),
        "at the end of each step",
    ),
    (lambda v, x, n: _euler(v, x, n, times=[i / n for i in range(1, n)]), "skipped the first step"),
    (lambda v, x, n: _euler(v, x, n, times=[i / n for i in range(n - 1)]), "skipped the last step"),
    (lambda v, x, n: _euler(v, x, n, times=[i / n for i in range(n + 1)]), "one step too many"),
    (lambda v, x, n: _euler(v, x, n - 1 if n > 1 else 1), "made num_steps − 1 steps"),
    (lambda v, x, n: _euler(v, x, n, h=1.0), "forgot the step size"),
    (lambda v, x, n: _euler(v, x, n, sign=-1.0), "subtracted the velocity"),
    # the notebook's 10 steps written as a number
    (lambda v, x, n: _euler(v, x, 10), "It passed with B=4, D=2, N=10"),
    (_euler_scalar_t, "takes t as a tensor of shape (B,)"),
    (_euler_in_place, "modified its input `x0` in place"),
    (stub, "not implemented yet"),
]


@pytest.mark.parametrize("wrong, words", WRONG_EULER)
def test_euler_names_the_mistake(wrong, words):
    _fails_with(checks.check_euler_sample(wrong), words)


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_euler_boundary_mistakes_fail_at_other_seeds(seed):
    for wrong, words in WRONG_EULER[3:6]:
        _fails_with(checks.check_euler_sample(wrong, seed=seed), words)

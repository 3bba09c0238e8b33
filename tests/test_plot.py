"""Every plot function returns a Figure for plain and grad-tracking tensors, and never shows."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from coursekit import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("library code must not call plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    yield
    plt.close("all")


@pytest.fixture(params=["plain", "requires_grad"])
def make(request):
    """Build a tensor, optionally one that requires grad (as a model's output would)."""

    def _make(*shape, fn=torch.rand):
        x = fn(*shape, generator=torch.Generator().manual_seed(0))
        return x.requires_grad_() if request.param == "requires_grad" else x

    return _make


@pytest.mark.parametrize("C", [1, 3])
def test_image_grid(make, C):
    fig = plot.image_grid(make(10, C, 8, 8), nrow=4, title="digits")
    assert isinstance(fig, Figure)
    img = fig.axes[0].images[0].get_array()
    # 3 rows of 4 images with 1 pixel of padding: (3 * 9 + 1, 4 * 9 + 1)
    assert img.shape[:2] == (28, 37)
    fig, ax = plt.subplots()
    assert plot.image_grid(make(4, 1, 28, 28), ax=ax) is fig


def test_image_grid_values_and_bad_shape():
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0
    img = np.asarray(plot.image_grid(x, vmin=0, vmax=1).axes[0].images[0].get_array())
    assert img[1, 1] == 1.0 and img[1, 2] == 0.0  # the pixel lands after the 1-pixel pad
    with pytest.raises(ValueError, match="N, 1 or 3, H, W"):
        plot.image_grid(torch.rand(2, 2, 8, 8))


def test_scatter_density_compare(make):
    x = make(100, 2, fn=torch.randn)
    assert isinstance(plot.scatter_2d(x, lims=(-3, 3), title="x"), Figure)
    log_prob = lambda z: torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    fig = plot.density_2d(log_prob, lims=(-3, 3), n=50)
    assert fig.axes[0].images[0].get_array().shape == (50, 50)
    assert isinstance(plot.density_2d(np.random.rand(20, 30), lims=((0, 3), (0, 2))), Figure)
    assert isinstance(plot.compare_2d(x, x + 1), Figure)
    with pytest.raises(ValueError, match="N, 2"):
        plot.scatter_2d(torch.rand(5, 3))


def test_trajectories_and_vector_field(make):
    xs = make(10, 30, 2, fn=torch.randn)
    assert isinstance(plot.trajectories(xs, n=20), Figure)
    w = torch.tensor([[0.0, -1.0], [1.0, 0.0]], requires_grad=True)
    fig = plot.vector_field(lambda z: z @ w, lims=(-2, 2), n=8)  # a rotation field with grad
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="T, N, 2"):
        plot.trajectories(torch.rand(10, 2))


class FakeHistory:
    def __init__(self):
        self.steps = [0, 10, 20]
        self.logs = {"loss": [3.0, 2.0, 1.5], "kl": [torch.tensor(0.5, requires_grad=True)] * 3}


def test_loss_curves_history_and_dict():
    fig = plot.loss_curves(FakeHistory())
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_xdata(), [0, 10, 20])
    fig = plot.loss_curves({"loss": [1.0, 0.5], "bpd": [8.0, 4.0]}, keys=["bpd"], logy=True)
    assert len(fig.axes[0].get_lines()) == 1
    with pytest.raises(KeyError, match="available"):
        plot.loss_curves({"loss": [1.0]}, keys=["nope"])


def test_bar():
    fig = plot.bar({"VAE": 1.2, "flow": torch.tensor(0.9), "DDPM": 0.8}, ylabel="bits/dim")
    assert len(fig.axes[0].patches) == 3

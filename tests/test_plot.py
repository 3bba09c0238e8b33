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


def test_image_grid_row_and_column_labels():
    fig = plot.image_grid(torch.rand(6, 1, 4, 4), nrow=3, row_labels=["linear", "cosine"],
                          col_labels=["0", "50", "999"], title="t")  # fmt: skip
    ax = fig.axes[0]
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert set(texts) == {"linear", "cosine", "0", "50", "999"}
    assert texts["linear"][1] < texts["cosine"][1]  # image rows go down: row 0 on top
    assert texts["linear"][0] < 0 and texts["0"][1] < 0  # left of and above the canvas
    assert texts["0"][0] < texts["50"][0] < texts["999"][0]
    # every column label sits over the centre of its column: pad 1 + c * (4 + 1) + 1.5
    np.testing.assert_allclose([texts[k][0] for k in ("0", "50", "999")], [2.5, 7.5, 12.5])
    with pytest.raises(ValueError, match="3 labels for 2 rows"):
        plot.image_grid(torch.rand(6, 1, 4, 4), nrow=3, row_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 labels for 3 columns"):
        plot.image_grid(torch.rand(6, 1, 4, 4), nrow=3, col_labels=["a", "b"])


def test_padded_lims_hold_every_point():
    x = torch.tensor([[-3.0, -1.0], [3.0, 1.0], [0.0, 0.0]])
    (x0, x1), (y0, y1) = plot.padded_lims(x, margin=0.1, q=0)
    assert (x0, x1) == pytest.approx((-3.6, 3.6)) and (y0, y1) == pytest.approx((-1.2, 1.2))
    (x0, x1), _ = plot.padded_lims(x, x + 10, margin=0.0, q=0)  # several sets: their union
    assert (x0, x1) == pytest.approx((-3.0, 13.0))


def test_vector_field_covers_a_wide_region():
    """Arrows on an (n_x, n_y) grid reach every edge of rectangular limits."""
    fig = plot.vector_field(lambda z: -z, lims=((-4, 4), (-2, 2)), n=(9, 5))
    offsets = fig.axes[0].collections[0].get_offsets()  # (n_x * n_y, 2) arrow tails
    assert offsets.shape == (45, 2)
    assert offsets[:, 0].min() == -4 and offsets[:, 0].max() == 4
    assert offsets[:, 1].min() == -2 and offsets[:, 1].max() == 2
    with pytest.raises(ValueError, match="must map"):
        plot.vector_field(lambda z: z[:3], lims=(-1, 1), n=(3, 2))


def _visible_labels(ax, axis="y"):
    ax.figure.canvas.draw()
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(a.get_view_interval())
    ticks = a.get_major_ticks() + a.get_minor_ticks()
    return [t.label1.get_text() for t in ticks if t.label1.get_text() and lo <= t.get_loc() <= hi]


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(2.3, 14, {"3", "5", "10"}), (5.5, 9, {"6", "7", "8", "9"}), (0.2, 40, {"0.5", "1", "10"})],
)
def test_plain_log_axis_labels_plain_numbers(lo, hi, expected):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [lo, hi])
    ax.set_yscale("log")
    assert any("times" in s or "^" in s for s in _visible_labels(ax))  # matplotlib's "6×10⁰"
    plot.plain_log_axis(ax)
    labels = _visible_labels(ax)
    assert expected <= set(labels)
    for s in labels:  # each label is a plain number that float() reads
        assert float(s) > 0 and "times" not in s and "^" not in s and "$" not in s


def test_plain_log_axis_both_axes_and_bad_axis():
    fig, ax = plt.subplots()
    ax.plot([5, 250], [2.5, 15])
    ax.set(xscale="log", yscale="log")
    plot.plain_log_axis(ax, "both")
    assert {"10", "100"} <= set(_visible_labels(ax, "x"))
    with pytest.raises(ValueError, match='"x", "y" or "both"'):
        plot.plain_log_axis(ax, "z")

"""Plots for the lectures: image grids, 2-D scatter and density, trajectories, fields, curves.

Every function accepts tensors on any device (with or without ``requires_grad``) or NumPy
arrays, draws on ``ax`` when given (else on a new figure) and returns the matplotlib
``Figure``. Nothing here calls ``plt.show()``: a notebook shows the returned figure, a
script saves it (``fig.savefig(...)``) and closes it (``plt.close(fig)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Lims = tuple[float, float] | tuple[tuple[float, float], tuple[float, float]]


def _np(x) -> np.ndarray:
    """Tensor (any device, any grad state) or array -> float NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4, 4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _xy_lims(lims: Lims) -> tuple[tuple[float, float], tuple[float, float]]:
    """(lo, hi) for both axes, or ((xlo, xhi), (ylo, yhi))."""
    if isinstance(lims[0], (tuple, list)):
        return tuple(lims[0]), tuple(lims[1])
    return (lims[0], lims[1]), (lims[0], lims[1])


# ---------------------------------------------------------------------------------------------
# Images


def image_grid(
    x,
    nrow: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    pad: int = 1,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> Figure:
    """Show images (N, 1|3, H, W) as one grid, ``nrow`` images per row (default ~sqrt(N)).

    Values are shown on [vmin, vmax] (clipped): [0, 1] is the course's image range.
    ``row_labels`` (one per row of the grid) are written left of the rows, ``col_labels``
    (one per column) above the columns, e.g. the schedule of each row and the time of each
    column.
    """
    x = _np(x)
    if x.ndim == 3:  # (N, H, W): grey images without a channel axis
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (N, 1 or 3, H, W), got shape {x.shape}.")
    N, C, H, W = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(N)))
    ncol_rows = math.ceil(N / nrow)
    # a canvas with `pad` pixels of background (vmax, i.e. white) between images
    canvas = np.full((C, ncol_rows * (H + pad) + pad, nrow * (W + pad) + pad), vmax, np.float32)
    for i in range(N):
        r, c = divmod(i, nrow)
        top, left = pad + r * (H + pad), pad + c * (W + pad)
        canvas[:, top : top + H, left : left + W] = x[i]
    canvas = np.clip((canvas - vmin) / (vmax - vmin), 0.0, 1.0)  # (C, H_grid, W_grid) in [0, 1]
    fig, ax = _axes(ax, figsize=(min(8, 0.6 * nrow + 1), min(8, 0.6 * ncol_rows + 1)))
    if C == 1:
        ax.imshow(canvas[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(canvas.transpose(1, 2, 0), interpolation="nearest")  # (H_grid, W_grid, 3)
    ax.set_axis_off()
    for labels, count, where in ((row_labels, ncol_rows, "rows"), (col_labels, nrow, "columns")):
        if labels is not None and len(labels) != count:
            raise ValueError(f"image_grid: {len(labels)} labels for {count} {where} of the grid.")
    for r, label in enumerate(row_labels or ()):  # right-aligned, just left of the canvas
        ax.text(-1, pad + r * (H + pad) + H / 2 - 0.5, label, ha="right", va="center")
    for c, label in enumerate(col_labels or ()):  # centred, just above the canvas
        ax.text(pad + c * (W + pad) + W / 2 - 0.5, -1, label, ha="center", va="bottom")
    if title:
        ax.set_title(title, pad=16 if col_labels else 6)
    return fig


# ---------------------------------------------------------------------------------------------
# 2-D data


def padded_lims(*xs, margin: float = 0.1, q: float = 0.5) -> tuple[tuple[float, float], ...]:
    """((xlo, xhi), (ylo, yhi)) that hold the points (N, 2) of all ``xs``, with a margin.

    The ends are the ``q``-th and ``(100 - q)``-th percentiles (so a few outliers do not
    shrink the picture), widened by ``margin`` times the range on each side.
    """
    both = np.concatenate([_np(x) for x in xs])  # (sum N, 2)
    lo, hi = np.percentile(both, q, axis=0), np.percentile(both, 100 - q, axis=0)
    pad = margin * (hi - lo)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )


def scatter_2d(
    x,
    ax: Axes | None = None,
    title: str | None = None,
    s: float = 2,
    lims: Lims | None = None,
    c=None,
    alpha: float = 0.5,
    label: str | None = None,
) -> Figure:
    """Scatter plot of points (N, 2); ``c`` colours them (e.g. labels), ``lims`` fixes the axes."""
    x = _np(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"scatter_2d expects (N, 2) points, got shape {x.shape}.")
    fig, ax = _axes(ax)
    if isinstance(c, torch.Tensor):
        c = _np(c)  # per-point values (e.g. labels); strings name one colour
    ax.scatter(x[:, 0], x[:, 1], s=s, c=c, alpha=alpha, label=label, linewidths=0)
    if lims is not None:
        (x0, x1), (y0, y1) = _xy_lims(lims)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return fig


def density_2d(
    fn_or_values,
    lims: Lims = (-4.0, 4.0),
    ax: Axes | None = None,
    n: int = 200,
    title: str | None = None,
    log: bool = False,
) -> Figure:
    """Image of a 2-D density: ``fn_or_values`` is a log-density function or grid values.

    A function is called once on the (n*n, 2) grid points (float32, CPU) and must return
    log p of shape (n*n,); the plot shows p = exp(log p) (``log=True``: log p itself).
    Grid values are an (n_y, n_x) array of the quantity to show, rows going up in y.
    """
    (x0, x1), (y0, y1) = _xy_lims(lims)
    if callable(fn_or_values):
        xs = torch.linspace(x0, x1, n)
        ys = torch.linspace(y0, y1, n)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (n, n) each, rows = y
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (n*n, 2)
        with torch.no_grad():
            logp = fn_or_values(grid)
        values = _np(logp).reshape(n, n)  # (n_y, n_x)
        values = values if log else np.exp(values - values.max())  # max-shift: no overflow
    else:
        values = _np(fn_or_values)
        if values.ndim != 2:
            raise ValueError(f"density_2d grid values must be 2-D (n_y, n_x), got {values.shape}.")
    fig, ax = _axes(ax)
    ax.imshow(values, origin="lower", extent=(x0, x1, y0, y1), cmap="viridis", aspect="equal")
    if title:
        ax.set_title(title)
    return fig


def compare_2d(
    real,
    samples,
    lims: Lims | None = None,
    titles: Sequence[str] = ("data", "samples"),
    s: float = 2,
) -> Figure:
    """Data and samples side by side, on shared axes."""
    if lims is None:
        lims = padded_lims(real, samples)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    scatter_2d(real, ax=axes[0], title=titles[0], s=s, lims=lims)
    scatter_2d(samples, ax=axes[1], title=titles[1], s=s, lims=lims, c="tab:orange")
    return fig


def trajectories(
    xs,
    ax: Axes | None = None,
    n: int = 100,
    title: str | None = None,
    lims: Lims | None = None,
) -> Figure:
    """Paths (T, N, 2) of a sampler: grey lines, noise start (blue) and end point (orange).

    At most ``n`` paths are drawn, the first ones.
    """
    xs = _np(xs)
    if xs.ndim != 3 or xs.shape[2] != 2:
        raise ValueError(f"trajectories expects (T, N, 2), got shape {xs.shape}.")
    xs = xs[:, :n]  # (T, n, 2)
    fig, ax = _axes(ax)
    ax.plot(xs[:, :, 0], xs[:, :, 1], color="grey", alpha=0.3, lw=0.7)
    ax.scatter(xs[0, :, 0], xs[0, :, 1], s=6, c="tab:blue", label="start", zorder=3)
    ax.scatter(xs[-1, :, 0], xs[-1, :, 1], s=6, c="tab:orange", label="end", zorder=3)
    if lims is not None:
        (x0, x1), (y0, y1) = _xy_lims(lims)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def vector_field(
    fn: Callable[[torch.Tensor], torch.Tensor],
    lims: Lims = (-4.0, 4.0),
    ax: Axes | None = None,
    n: int | tuple[int, int] = 20,
    title: str | None = None,
) -> Figure:
    """Quiver plot of a 2-D field (a score or a velocity): fn((N, 2) float32 CPU) -> (N, 2).

    The arrows sit on an ``n`` x ``n`` grid over ``lims``, or ``(n_x, n_y)`` for a wide or
    tall region. For a field that also takes time, pass
    ``lambda x: v(x, torch.full((len(x),), t))``. Arrows are coloured by their length.
    """
    (x0, x1), (y0, y1) = _xy_lims(lims)
    n_x, n_y = (n, n) if isinstance(n, int) else n
    gy, gx = torch.meshgrid(
        torch.linspace(y0, y1, n_y), torch.linspace(x0, x1, n_x), indexing="ij"
    )  # (n_y, n_x) each
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (n_y * n_x, 2)
    with torch.no_grad():
        v = _np(fn(grid))  # (n_y * n_x, 2)
    if v.shape != (n_x * n_y, 2):
        raise ValueError(f"vector_field: fn must map (N, 2) to (N, 2), got {v.shape}.")
    fig, ax = _axes(ax)
    ax.quiver(
        grid[:, 0].numpy(),
        grid[:, 1].numpy(),
        v[:, 0],
        v[:, 1],
        np.linalg.norm(v, axis=1),
        cmap="viridis",
    )
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Curves and bars


def plain_log_axis(ax: Axes, axis: str = "y", subs: Sequence[int] = (2, 3, 5)) -> None:
    """Label a log-scaled axis with plain numbers (2, 5, 10, 20, 0.5), not "5×10⁰" or "10¹".

    Every power of ten is labelled, and the minor ticks at ``subs`` × 10^k; on an axis that
    spans less than a factor of 3, every minor tick, so that a short axis keeps some labels.
    Call it after the axis is log-scaled; ``axis`` is "x", "y" or "both".
    """
    if axis not in ("x", "y", "both"):
        raise ValueError(f'plain_log_axis: axis must be "x", "y" or "both", got {axis!r}.')
    for a in {"x": [ax.xaxis], "y": [ax.yaxis], "both": [ax.xaxis, ax.yaxis]}[axis]:

        def minor(v, _, a=a):
            lo, hi = sorted(a.get_view_interval())
            mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9))  # 2 for 0.2, 20, 200
            return f"{v:g}" if mantissa in subs or hi < 3 * lo else ""

        a.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_minor_formatter(mticker.FuncFormatter(minor))


def loss_curves(
    history_or_dict,
    ax: Axes | None = None,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Training curves from a ``train.History`` (``.logs``, ``.steps``) or a dict name -> list.

    ``keys`` picks which curves to draw (default: all). With a History, the x-axis is
    ``.steps`` when its length matches a curve, else the index.
    """
    if hasattr(history_or_dict, "logs"):
        logs: Mapping[str, Sequence[float]] = history_or_dict.logs
        steps = getattr(history_or_dict, "steps", None)
    elif isinstance(history_or_dict, Mapping):
        logs, steps = history_or_dict, None
    else:
        raise TypeError(
            f"loss_curves expects a History (with .logs) or a dict, got {type(history_or_dict)}."
        )
    keys = list(keys) if keys is not None else list(logs)
    missing = [k for k in keys if k not in logs]
    if missing:
        raise KeyError(f"loss_curves: no curve named {missing}; available: {list(logs)}.")
    fig, ax = _axes(ax, figsize=(6, 3.5))
    for k in keys:
        y = np.array([float(_np(v)) for v in logs[k]])  # floats or 0-d tensors alike
        x = _np(steps) if steps is not None and len(steps) == len(y) else np.arange(len(y))
        ax.plot(x, y, label=k)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if keys:
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


def bar(
    values: Mapping[str, float],
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    fmt: str = "{:.3g}",
) -> Figure:
    """Bar chart of named numbers (e.g. a comparison table), each bar labelled with its value."""
    names = list(values)
    heights = [float(_np(values[k])) for k in names]  # floats or 0-d tensors
    fig, ax = _axes(ax, figsize=(max(4, 0.8 * len(names) + 1), 3.5))
    bars = ax.bar(range(len(names)), heights, color="tab:blue")
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=30 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
    )
    ax.bar_label(bars, labels=[fmt.format(h) for h in heights], fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig

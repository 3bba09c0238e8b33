"""What ``fit`` returns: the logged terms at every step, and the EMA model if any."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from coursekit.train.ema import EMA


@dataclass
class History:
    """What ``fit`` returns: the logged terms at every step, and the EMA model if any.

    ``steps``: the step numbers (1-based: step k is the k-th update).
    ``logs``: term name -> one float per entry of ``steps`` (``"loss"``, ``"kl"``, ...).
    ``seconds``: wall-clock training time, summed over resumed sessions.
    ``ema``: the :class:`EMA` of the parameters when ``fit(..., ema=decay)`` (of the generator
    for an ``Adversarial(..., ema_decay=decay)``), else ``None``.
    """

    steps: list[int] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    ema: EMA | None = field(default=None, repr=False)

    def final(self, name: str = "loss", last: int = 50) -> float:
        """The mean of the last ``last`` logged values of ``name`` (less noisy than the last one)."""
        if name not in self.logs:
            raise KeyError(f"No term {name!r} was logged; the terms are {sorted(self.logs)}.")
        values = self.logs[name][-last:]
        if not values:
            raise ValueError("The history is empty: fit() has not completed any step.")
        return sum(values) / len(values)

    def plot(self, ax=None, smooth: int | None = None):
        """Plot every logged term against the step; log-scale y when all values are positive.

        Each term is drawn faintly as logged and solidly as a moving average over
        ``smooth`` steps (default: 1/50 of the run). Returns the matplotlib axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        window = smooth or max(1, len(self.steps) // 50)
        for name, values in self.logs.items():
            (line,) = ax.plot(self.steps, values, alpha=0.3 if window > 1 else 1.0, lw=0.8)
            if window > 1:
                ax.plot(
                    self.steps, _moving_average(values, window), color=line.get_color(), label=name
                )
            else:
                line.set_label(name)
        finite = [v for values in self.logs.values() for v in values if math.isfinite(v)]
        if finite and min(finite) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend(loc="upper right")
        return ax


def _moving_average(values: list[float], window: int) -> list[float]:
    # trailing mean over the last `window` values (fewer at the start)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out

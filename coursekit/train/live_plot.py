"""Redraw the loss curves in a Jupyter output while ``fit`` trains (``live_plot=True``)."""

from __future__ import annotations

import io
import math
import time

from coursekit.train.history import History


class LivePlot:
    """Redraws the loss curves in a Jupyter output in place; does nothing elsewhere."""

    def __init__(self, min_seconds: float = 1.0):
        self.min_seconds, self.last, self.handle = min_seconds, -math.inf, None
        self.enabled = _in_jupyter()

    def update(self, history: History, final: bool = False) -> None:
        if not self.enabled or (not final and time.perf_counter() - self.last < self.min_seconds):
            return
        from IPython.display import Image, display
        from matplotlib.figure import Figure

        # a Figure outside pyplot renders to PNG bytes on any backend and is never shown twice
        fig = Figure(figsize=(6, 3.5))
        history.plot(ax=fig.add_subplot())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:  # updating a display handle keeps the progress bar above it
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)
        self.last = time.perf_counter()


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})

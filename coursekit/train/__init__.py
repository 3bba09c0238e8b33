"""One training loop for every model in the course (after minGPT's ``trainer.py``).

- ``loop``: ``fit``, the loop (``fit(model, data, steps=...) -> History``); the model supplies
  ``loss(x, y)``, or trains itself with ``train_step`` (``Adversarial``);
- ``adversarial``: ``Adversarial``, a two-player (GAN) step with two optimizers, ``n_critic``,
  a gradient-penalty hook, EMA of the generator, AMP and clipping for both players;
- ``history``: ``History``, what ``fit`` returns (logged terms, seconds, the EMA model);
- ``ema``: ``EMA``, the exponential moving average of a model's parameters;
- ``checkpoint``: verified, atomic checkpoints that resume a run bit for bit, never a
  poisoned one (``load_checkpoint(path)`` reads one, checked);
- ``batching``: where the batches come from and how their position is saved;
- ``live_plot``: the loss curves redrawn in Jupyter while training.

Import the package, not its modules: ``from coursekit import train; train.fit(...)``.
"""

from coursekit.train.adversarial import Adversarial, gaussian_noise
from coursekit.train.checkpoint import load_checkpoint
from coursekit.train.ema import EMA
from coursekit.train.history import History
from coursekit.train.loop import fit

__all__ = ["EMA", "Adversarial", "History", "fit", "gaussian_noise", "load_checkpoint"]

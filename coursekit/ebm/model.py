"""EnergyModel: p(x) = exp(-E(x)) / Z, trained by contrastive divergence with a replay buffer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from coursekit import models, solvers, utils
from coursekit.ebm import grid, losses
from coursekit.ebm.buffer import ReplayBuffer


class EnergyModel(models.GenerativeModel):
    """An energy network ``net(x) -> (B,)`` (or (B, 1)) on data of ``data_shape`` in ``box``.

    ``loss`` is contrastive divergence: model samples are ``train_steps`` Langevin steps of
    size ``step_size`` from the replay buffer (``buffer_size`` states, a fraction ``reinit``
    restarted uniformly in ``box`` each draw), or from fresh uniform noise when
    ``buffer_size=0`` (short-run chains, no persistence). ``sample`` runs ``sample_steps``
    Langevin steps from uniform noise in ``box`` (from the buffer's states with
    ``from_buffer=True``), clamped to the box after each call.
    """

    likelihood_hint = (
        "An EBM's Z is intractable: compare energies, use samples (FCD), or on 2-D use "
        "ebm.GridEnergyModel, whose log_prob normalises on a grid."
    )

    def __init__(
        self,
        net: nn.Module,
        data_shape: tuple[int, ...],
        *,
        box: tuple[float, float] = (0.0, 1.0),
        step_size: float = 1e-3,
        train_steps: int = 20,
        sample_steps: int = 200,
        alpha: float = 0.1,
        buffer_size: int = 1000,
        reinit: float = 0.05,
    ):
        super().__init__()
        self.net, self.data_shape, self.box = net, tuple(data_shape), box
        self.step_size, self.train_steps, self.sample_steps = step_size, train_steps, sample_steps
        self.alpha = alpha
        self.buffer = ReplayBuffer(buffer_size, self._init, reinit=reinit) if buffer_size else None
        self.generator: torch.Generator | None = None  # for the training chains

    def energy(self, x: Tensor) -> Tensor:
        """E(x), (B,)."""
        return self.net(x).reshape(x.shape[0])

    def _init(self, n: int, generator: torch.Generator | None) -> Tensor:
        lo, hi = self.box
        return lo + (hi - lo) * utils.rand((n, *self.data_shape), self.device, generator)

    def langevin(self, x: Tensor, num_steps: int, generator: torch.Generator | None = None):
        x = solvers.langevin(
            x,
            energy=self.energy,
            step_size=self.step_size,
            num_steps=num_steps,
            generator=generator,
        )
        return x.clamp(*self.box)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        models.check_data(self, x)
        n = x.shape[0]
        start = (
            self.buffer.draw(n, generator=self.generator)
            if self.buffer is not None
            else self._init(n, self.generator)
        )
        was_training = self.training
        self.eval()
        samples = self.langevin(start.to(x), self.train_steps, self.generator)
        self.train(was_training)
        if self.buffer is not None:
            self.buffer.push(samples)
        return losses.contrastive_divergence(self.energy, x, samples, alpha=self.alpha)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
    ) -> Tensor:
        steps = self.sample_steps if num_steps is None else num_steps
        return self.langevin(self._init(n, generator), steps, generator)

    # the buffer travels with the weights, so a checkpoint resumes the chains
    def get_extra_state(self):
        return None if self.buffer is None else self.buffer.state_dict()

    def set_extra_state(self, state) -> None:
        if state is not None and self.buffer is not None:
            self.buffer.load_state_dict(state)


class GridEnergyModel(EnergyModel):
    """A 2-D EnergyModel whose ``log_prob`` is exact up to quadrature: -E(x) - log Z(grid).

    Z is the midpoint rule over ``box``^2 with ``grid_size``^2 cells (recomputed at each call,
    so it follows training); mass outside the box counts as zero.
    """

    def __init__(self, net: nn.Module, *, box=(-4.0, 4.0), grid_size: int = 200, **kwargs):
        super().__init__(net, (2,), box=box, **kwargs)
        self.grid_size = grid_size

    def log_z(self) -> float:
        return grid.grid_log_z(self.energy, *self.box, self.grid_size)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        models.check_data(self, x)
        return -self.energy(x) - self.log_z()

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
    ``from_buffer=True``), clamped to the box after each call. ``sampler="mala"`` makes every
    chain (training and sampling) Metropolis-adjusted (``solvers.mala``; its acceptance rate
    is kept in ``acceptance``), which removes unadjusted Langevin's O(step) bias.
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
        sampler: str = "langevin",
    ):
        super().__init__()
        if sampler not in ("langevin", "mala"):
            raise ValueError(f"sampler is 'langevin' (ULA) or 'mala', got {sampler!r}.")
        self.sampler = sampler
        self.acceptance: float | None = None  # MALA's acceptance rate in the last chain
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
        if self.sampler == "mala":
            x, self.acceptance = solvers.mala(
                x,
                energy=self.energy,
                step_size=self.step_size,
                num_steps=num_steps,
                generator=generator,
            )
        else:
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
        from_buffer: bool = False,
    ) -> Tensor:
        """n samples: ``num_steps`` (default ``sample_steps``) Langevin steps from uniform noise,
        or, with ``from_buffer=True``, from n distinct states of the training chains' buffer
        (``num_steps=0`` returns those states as they are)."""
        steps = self.sample_steps if num_steps is None else num_steps
        if from_buffer:
            if self.buffer is None or self.buffer.states is None:
                raise ValueError(
                    "from_buffer=True needs the replay buffer of a trained model "
                    "(buffer_size > 0 and at least one training step)."
                )
            if n > self.buffer.capacity:
                raise ValueError(f"asked for {n} states from a buffer of {self.buffer.capacity}.")
            dev = generator.device if generator is not None else self.buffer.states.device
            idx = torch.randperm(self.buffer.capacity, generator=generator, device=dev)[:n]
            start = self.buffer.states[idx.to(self.buffer.states.device)].to(self.device)
            return start.clone() if steps == 0 else self.langevin(start, steps, generator)
        return self.langevin(self._init(n, generator), steps, generator)

    # the buffer travels with the weights, so a checkpoint resumes the chains
    def get_extra_state(self):
        return None if self.buffer is None else self.buffer.state_dict()

    def set_extra_state(self, state) -> None:
        if state is not None and self.buffer is not None:
            self.buffer.load_state_dict(state)


class GridEnergyModel(EnergyModel):
    """A 2-D EnergyModel whose ``log_prob`` is exact up to quadrature: -E(x) - log Z(grid).

    Z is the midpoint rule over ``box``^2 with ``grid_size``^2 cells; mass outside the box
    counts as zero. ``log_z()`` is cached against the energy's weights: the cache key holds
    every parameter's and buffer's storage, dtype, device and autograd version counter, which
    an optimiser step, ``load_state_dict`` or ``.to(...)`` changes, so it follows training and
    costs one grid pass per weight change, not per call. An edit through ``p.data`` bypasses
    the version counter: call ``clear_log_z()`` after one.
    """

    def __init__(self, net: nn.Module, *, box=(-4.0, 4.0), grid_size: int = 200, **kwargs):
        super().__init__(net, (2,), box=box, **kwargs)
        self.grid_size = grid_size
        self._log_z_cache: tuple[tuple, float] | None = None

    def _weights_key(self) -> tuple:
        tensors = [*self.net.parameters(), *self.net.buffers()]
        state = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        return (tuple(self.box), self.grid_size, state)

    def clear_log_z(self) -> None:
        """Forget the cached log Z (after editing weights through ``.data``)."""
        self._log_z_cache = None

    def log_z(self) -> float:
        key = self._weights_key()
        if self._log_z_cache is None or self._log_z_cache[0] != key:
            self._log_z_cache = (key, grid.grid_log_z(self.energy, *self.box, self.grid_size))
        return self._log_z_cache[1]

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        models.check_data(self, x)
        return -self.energy(x) - self.log_z()


class ClassifierEnergy(nn.Module):
    """The energy a classifier hides (Grathwohl et al., 2020): E(x) = -logsumexp_y f(x)[y].

    ``classifier(x) -> (B, K)`` logits; p(x, y) ∝ exp(f(x)[y]), so p(y | x) is the classifier's
    softmax and p(x) ∝ sum_y exp(f(x)[y]) = exp(-E(x)).
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return -torch.logsumexp(self.classifier(x), dim=1)


class JointEnergyModel(EnergyModel):
    """JEM: a classifier trained as p(y | x) (cross-entropy) and as the EBM p(x) (CD) at once.

    ``loss(x, y)`` is ``ce_weight`` * cross-entropy of the logits on (x, y) plus the
    contrastive-divergence loss of E(x) = -logsumexp f(x) with the replay buffer's chains (the
    same as :class:`EnergyModel`); it logs the batch accuracy. ``ce_weight=0`` trains the
    generative part only; without labels only the CD term is used. ``logits(x)`` classifies.
    """

    def __init__(self, classifier: nn.Module, data_shape, *, ce_weight: float = 1.0, **kwargs):
        super().__init__(ClassifierEnergy(classifier), data_shape, **kwargs)
        self.ce_weight = ce_weight

    def logits(self, x: Tensor) -> Tensor:
        return self.net.classifier(x)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        out = super().loss(x)
        if y is not None:
            logits = self.logits(x)
            ce = nn.functional.cross_entropy(logits, y)
            out["loss"] = out["loss"] + self.ce_weight * ce
            out["ce"] = ce.detach()
            out["accuracy"] = (logits.argmax(1) == y).float().mean()
        return out

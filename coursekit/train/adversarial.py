"""A two-player training step for ``fit``: a generator and a critic, each with its optimizer.

GANs (Goodfellow et al. 2014), WGAN-GP (Gulrajani et al. 2017) and the variational critics
of lecture 01 (f-GAN, Nowozin et al. 2016) alternate two updates::

    critic:     minimise  d_loss(D(x), D(G(z)))  [+ gradient_penalty(D, x, G(z))]
    generator:  minimise  g_loss(D(G(z)))         once every n_critic critic updates

``Adversarial`` holds both players and is trained by the one loop, which still logs, guards
against NaNs and checkpoints::

    gan = train.Adversarial(generator, critic, g_loss, d_loss,
                            g_opt=torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999)),
                            d_opt=torch.optim.Adam(critic.parameters(), 2e-4, betas=(0.5, 0.999)),
                            noise=train.gaussian_noise(64), ema_decay=0.999)
    history = train.fit(gan, images, steps=...)
    samples = history.ema.module(torch.randn(16, 64))       # the averaged generator

Conventions:

- One ``fit`` step is one critic update on the step's batch ``x`` (its labels are ignored);
  after every ``n_critic``-th one the generator is updated on fresh noise. ``steps`` therefore
  counts critic updates.
- ``d_loss(d_real, d_fake)`` and ``g_loss(d_fake)`` get the critic's raw outputs, in float32,
  and return a scalar or a dict whose ``"loss"`` is minimised (other entries are logged).
- Logged terms: ``d_loss`` (and ``d_<name>`` for the other entries), ``d_gp`` with a
  gradient penalty, ``d_grad_norm`` with clipping; ``g_loss``, ``g_<name>``, ``g_grad_norm``
  for the generator, those of its latest update (before its first update: measured without
  updating it). ``d_loss`` excludes the penalty; the critic minimises ``d_loss + d_gp``.
- ``noise(n, rng) -> z`` draws the generator's input with the torch.Generator ``rng`` (named
  so because ``generator`` is the network); ``train.gaussian_noise(dim)`` is the usual one.
- ``g_opt=None`` (and ``g_loss=None``): only the critic trains, against the fixed samples
  ``generator(noise(n, rng))`` (lecture 01's bounds use ``nn.Identity()`` and their sampler).
- The EMA (``ema_decay``) averages the generator only; it is ``gan.ema`` and ``History.ema``.
- ``amp=True``: both players' forward passes run under ``utils.autocast`` (bf16 on CUDA, a
  no-op on CPU); losses and the gradient penalty run in float32 outside it. bf16 keeps
  float32's exponent range, so no loss scaling (``GradScaler``) is needed.
- ``clip_grad`` clips each player's global gradient norm separately.
- ``state_dict()`` holds both players, the EMA, and (as the module's extra state) both
  optimizers, the update counters, the noise generator's state and the generator's latest
  logged terms: ``fit``'s checkpoints resume it bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from coursekit import utils
from coursekit.train.checkpoint import load_optimizer
from coursekit.train.ema import EMA

Terms = Tensor | dict[str, Tensor]


def gaussian_noise(*shape: int) -> Callable[[int, torch.Generator | None], Tensor]:
    """``noise(n, rng)`` drawing ``z ~ N(0, I)`` of shape ``(n, *shape)`` on the CPU."""

    def noise(n: int, rng: torch.Generator | None) -> Tensor:
        return torch.randn(n, *shape, generator=rng)

    return noise


class Adversarial(nn.Module):
    """A generator and a critic trained against each other by ``train.fit`` (see the module doc).

    Args:
        generator: maps ``noise(n, rng)`` to samples shaped like the data.
        critic: maps samples to scores (a discriminator's logits, a WGAN critic, a bound's T).
        g_loss: ``g_loss(d_fake) -> Tensor | dict``; ``None`` when the generator is fixed.
        d_loss: ``d_loss(d_real, d_fake) -> Tensor | dict``, minimised by the critic.
        g_opt, d_opt: optimizers over the generator's and the critic's parameters.
        noise: ``noise(n, rng) -> Tensor``, the generator's input.
        n_critic: critic updates per generator update (WGAN: 5).
        gradient_penalty: ``gradient_penalty(critic, x_real, x_fake) -> Tensor`` added to the
            critic's loss (``x_fake`` without gradient), e.g. WGAN-GP's.
        ema_decay: keep an exponential moving average of the generator.
        clip_grad: clip each player's gradient norm to this value.
        amp: bf16 autocast of the forward passes on CUDA (no effect on CPU).
        rng: the torch.Generator of the noise (default: a CPU generator seeded with 0).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        g_loss: Callable[[Tensor], Terms] | None,
        d_loss: Callable[[Tensor, Tensor], Terms],
        *,
        g_opt: torch.optim.Optimizer | None,
        d_opt: torch.optim.Optimizer,
        noise: Callable[[int, torch.Generator | None], Tensor],
        n_critic: int = 1,
        gradient_penalty: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
        ema_decay: float | None = None,
        clip_grad: float | None = None,
        amp: bool = False,
        rng: torch.Generator | None = None,
    ):
        super().__init__()
        if n_critic < 1:
            raise ValueError(
                f"n_critic counts critic updates per generator update; got {n_critic}."
            )
        if (g_opt is None) != (g_loss is None):
            raise ValueError(
                "Give both g_loss and g_opt to train the generator, or neither to train only "
                f"the critic; got g_loss={'set' if g_loss else None}, g_opt={'set' if g_opt else None}."
            )
        _check_optimizer(d_opt, critic, "d_opt", "critic")
        if g_opt is not None:
            _check_optimizer(g_opt, generator, "g_opt", "generator")
        self.generator, self.critic = generator, critic
        self.g_loss, self.d_loss, self.g_opt, self.d_opt = g_loss, d_loss, g_opt, d_opt
        self.noise, self.n_critic, self.gradient_penalty = noise, n_critic, gradient_penalty
        self.clip_grad, self.amp = clip_grad, amp
        self.rng = rng if rng is not None else torch.Generator().manual_seed(0)
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        if self.ema is not None:
            self.generator_ema = self.ema.module  # a submodule: moved by .to(), in state_dict
        self.d_steps = self.g_steps = 0  # updates done by each player
        self._g_terms: dict[str, Tensor] | None = None  # the generator's latest logged terms

    # ------------------------------------------------------------------------- one step

    def train_step(self, batch: tuple[Tensor, Tensor | None], step: int) -> dict[str, Tensor]:
        """One critic update on ``batch``'s ``x``; a generator update after every n_critic-th."""
        real, _ = batch
        n, dev = real.shape[0], real.device
        with torch.no_grad(), utils.autocast(dev, self.amp):
            fake = self.generator(self._noise(n, dev))
        terms = self._critic_update(real, fake.detach().to(real.dtype))
        self.d_steps += 1
        if self.g_opt is not None:
            if self.d_steps % self.n_critic == 0:
                self._g_terms = self._generator_step(real, update=True)
                self.g_steps += 1
            elif self._g_terms is None:
                self._g_terms = self._generator_step(real, update=False)
            terms.update(self._g_terms)
        return terms

    def _noise(self, n: int, dev: torch.device) -> Tensor:
        return self.noise(n, self.rng).to(dev, non_blocking=True)

    def _critic_update(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        self.d_opt.zero_grad(set_to_none=True)
        with utils.autocast(real.device, self.amp):
            d_real, d_fake = self.critic(real), self.critic(fake)
        terms = _as_terms(self.d_loss(d_real.float(), d_fake.float()), "d_loss")
        total = terms["loss"]
        if self.gradient_penalty is not None:
            terms["gp"] = self.gradient_penalty(self.critic, real, fake)
            total = total + terms["gp"]
        total.backward()
        if self.clip_grad is not None:
            terms["grad_norm"] = nn.utils.clip_grad_norm_(self.critic.parameters(), self.clip_grad)
        self.d_opt.step()
        return {f"d_{k}": v.detach() for k, v in terms.items()}

    def _generator_step(self, real: Tensor, update: bool) -> dict[str, Tensor]:
        n, dev = real.shape[0], real.device
        # the critic's parameters take no gradient from the generator's loss
        frozen = [(p, p.requires_grad) for p in self.critic.parameters()]
        self.critic.requires_grad_(False)
        try:
            self.g_opt.zero_grad(set_to_none=True)
            with utils.autocast(dev, self.amp):
                d_fake = self._score_fake(self.generator(self._noise(n, dev)), real)
            terms = _as_terms(self.g_loss(d_fake.float()), "g_loss")
            terms["loss"].backward()
            if self.clip_grad is not None:
                limit = self.clip_grad if update else math.inf  # measure only, before 1st update
                terms["grad_norm"] = nn.utils.clip_grad_norm_(self.generator.parameters(), limit)
            if update:
                self.g_opt.step()
                if self.ema is not None:
                    self.ema.update(self.generator)
            self.g_opt.zero_grad(set_to_none=True)
        finally:
            for p, flag in frozen:
                p.requires_grad_(flag)
        return {f"g_{k}": v.detach() for k, v in terms.items()}

    def _score_fake(self, fake: Tensor, real: Tensor) -> Tensor:
        """The critic's scores of the generator's samples, as the generator's loss sees them.

        Here the critic as it is now; ``gan.UnrolledAdversarial`` scores with the critic after
        a few look-ahead updates on ``real`` and ``fake``.
        """
        return self.critic(fake)

    def describe_term(self, name: str) -> str:
        """Which player and which term a logged name is (``fit`` names them when one is NaN)."""
        player = {"d": "the critic's", "g": "the generator's"}.get(name[:1], "the")
        what = {"loss": "loss", "gp": "gradient penalty", "grad_norm": "gradient norm"}
        return f"{name} is {player} {what.get(name[2:], repr(name[2:]) + ' term')}"

    def train(self, mode: bool = True) -> Adversarial:
        super().train(mode)
        if self.ema is not None:
            self.ema.module.eval()  # the average is sampled from, never trained
        return self

    # ------------------------------------------------------------------------- state

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "d_opt": self.d_opt.state_dict(),
            "g_opt": self.g_opt.state_dict() if self.g_opt is not None else None,
            "d_steps": self.d_steps,
            "g_steps": self.g_steps,
            "ema_updates": self.ema.updates if self.ema is not None else None,
            "rng": self.rng.get_state(),
            "g_terms": (
                {k: v.cpu() for k, v in self._g_terms.items()}
                if self._g_terms is not None
                else None
            ),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        load_optimizer(self.d_opt, state["d_opt"])  # keeps this run's lr
        if self.g_opt is not None and state["g_opt"] is not None:
            load_optimizer(self.g_opt, state["g_opt"])
        self.d_steps, self.g_steps = state["d_steps"], state["g_steps"]
        if self.ema is not None:  # the averaged weights are the generator_ema submodule's
            self.ema.updates = state.get("ema_updates") or self.g_steps
        self.rng.set_state(state["rng"])
        dev = next(self.critic.parameters()).device
        terms = state["g_terms"]
        self._g_terms = {k: v.to(dev) for k, v in terms.items()} if terms is not None else None


def _as_terms(out: Terms, name: str) -> dict[str, Tensor]:
    if isinstance(out, Tensor):
        return {"loss": out}
    if not isinstance(out, dict) or "loss" not in out:
        raise KeyError(
            f'{name} must return a scalar Tensor or a dict with a "loss" entry; got '
            f"{sorted(out) if isinstance(out, dict) else type(out).__name__}."
        )
    return dict(out)


def _check_optimizer(opt: torch.optim.Optimizer, module: nn.Module, arg: str, player: str) -> None:
    own = {id(p) for p in module.parameters()}
    foreign = sum(id(p) not in own for group in opt.param_groups for p in group["params"])
    if foreign:
        raise ValueError(
            f"{arg} updates {foreign} parameter(s) that are not the {player}'s; build it over "
            f"{player}.parameters() only, so each player's step moves only its own weights."
        )

"""Unrolled GANs (Metz et al. 2017): the generator plays against the critic's *response*.

A plain generator step minimises ``g_loss(D(G(z)))`` for the critic as it is now. If all
samples sit on one mode, the best move is to jump to the mode the critic currently likes
least; the critic then follows, and the pair chases each other round the modes (mode
hopping, or collapse). Unrolling looks ahead: the generator's loss is taken at the critic's
parameters after ``k`` further critic updates,

    θ_D^0 = θ_D,   θ_D^{j+1} = θ_D^j − η ∇_θ d_loss(D_θ(x), D_θ(G(z))) |_{θ = θ_D^j}   (eq. 3-5),
    generator:  minimise  g_loss(D_{θ_D^k}(G(z))),  differentiating through all k updates,

so a generator that collapses onto one mode is charged for the critic's answer to it. Only
the generator's update sees the look-ahead; the critic itself is updated as usual. The k
steps here are plain SGD with learning rate ``unroll_lr`` (the paper unrolls Adam; SGD keeps
the look-ahead a few lines). Cost: about ``k + 1`` critic forward/backward passes, with
second derivatives, per generator update.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from coursekit import train
from coursekit.train.adversarial import _as_terms


def unrolled_params(
    critic: nn.Module,
    d_loss: Callable[[Tensor, Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    steps: int,
    lr: float,
) -> dict[str, Tensor]:
    """The critic's parameters after ``steps`` differentiable SGD steps on ``d_loss``.

    ``fake`` keeps its graph, so the result depends on the generator: backpropagating a loss
    evaluated with these parameters (``torch.func.functional_call``) reaches the generator
    through every look-ahead step. The critic's own parameters are not changed.
    """
    if steps < 0:
        raise ValueError(f"steps counts look-ahead critic updates; got {steps}.")
    params = {k: v.detach().requires_grad_(True) for k, v in critic.named_parameters()}
    buffers = dict(critic.named_buffers())
    for _ in range(steps):
        state = {**params, **buffers}
        loss = d_loss(
            functional_call(critic, state, (real,)), functional_call(critic, state, (fake,))
        )
        loss = loss["loss"] if isinstance(loss, dict) else loss
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads)}  # eq. 4
    return {**params, **buffers}


class UnrolledAdversarial(train.Adversarial):
    """``train.Adversarial`` whose generator step looks ``unroll_steps`` critic updates ahead.

    Same arguments as ``train.Adversarial`` plus ``unroll_steps`` (k; the paper uses 5-10)
    and ``unroll_lr`` (the look-ahead's SGD step size). ``unroll_steps=0`` is the plain GAN.
    The look-ahead uses the step's real batch; ``d_loss`` must return a scalar (or a dict with
    ``"loss"``) and the critic must not use batch norm in training mode (its statistics
    would be updated by the look-ahead). ``amp`` is not supported here.
    """

    def __init__(self, *args, unroll_steps: int = 5, unroll_lr: float = 1e-2, **kwargs):
        super().__init__(*args, **kwargs)
        if unroll_steps < 0:
            raise ValueError(f"unroll_steps counts look-ahead critic updates; got {unroll_steps}.")
        if self.g_opt is None:
            raise ValueError("UnrolledAdversarial trains a generator: give g_loss and g_opt.")
        if self.amp:
            raise ValueError("UnrolledAdversarial runs in float32; use amp=False.")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.critic.modules()):
            raise ValueError(
                "the unrolled critic must not use batch norm (the look-ahead would update its "
                "running statistics); use a critic without it, e.g. gan.MLPCritic."
            )
        self.unroll_steps, self.unroll_lr = unroll_steps, unroll_lr
        self._real: Tensor | None = None

    def train_step(self, batch: tuple[Tensor, Tensor | None], step: int) -> dict[str, Tensor]:
        self._real = batch[0]  # the look-ahead's real data
        try:
            return super().train_step(batch, step)
        finally:
            self._real = None

    def _generator_step(self, n: int, dev: torch.device, update: bool) -> dict[str, Tensor]:
        self.g_opt.zero_grad(set_to_none=True)
        fake = self.generator(self._noise(n, dev))
        params = unrolled_params(
            self.critic, self.d_loss, self._real, fake, steps=self.unroll_steps, lr=self.unroll_lr
        )
        terms = _as_terms(
            self.g_loss(functional_call(self.critic, params, (fake,)).float()), "g_loss"
        )
        terms["loss"].backward()  # reaches only the generator: the look-ahead starts detached
        if self.clip_grad is not None:
            limit = self.clip_grad if update else float("inf")
            terms["grad_norm"] = nn.utils.clip_grad_norm_(self.generator.parameters(), limit)
        if update:
            self.g_opt.step()
            if self.ema is not None:
                self.ema.update(self.generator)
        self.g_opt.zero_grad(set_to_none=True)
        return {f"g_{k}": v.detach() for k, v in terms.items()}

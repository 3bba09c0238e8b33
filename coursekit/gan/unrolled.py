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

    def _score_fake(self, fake: Tensor, real: Tensor) -> Tensor:
        # the look-ahead starts from detached copies of the critic's parameters, so the
        # generator's loss reaches the generator only, through all k updates
        params = unrolled_params(
            self.critic, self.d_loss, real, fake, steps=self.unroll_steps, lr=self.unroll_lr
        )
        return functional_call(self.critic, params, (fake,))

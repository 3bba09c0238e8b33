"""Scores: denoising score matching and annealed Langevin dynamics (Song & Ermon, 2019).

The score of a density is s(x) = ∇_x log p(x). Two facts tie it to diffusion:

- Denoising score matching (Vincent, 2011): for x̃ = x + σ z, z ~ N(0, I), the minimizer of
  E ||s_θ(x̃, σ) + z / σ||² is the score of the noised data density p_σ. With the weight σ²
  (Song & Ermon, eq. 6) this reads E ||σ s_θ(x̃, σ) + z||²: an ε-prediction loss.
- For a DDPM, ε_θ(x_t, t) = −sqrt(1 − ᾱ_t) ∇ log p_t(x_t) (``paths.VPPath.eps_to_score``):
  predicting the noise *is* estimating the score, up to the scale σ_t = sqrt(1 − ᾱ_t).

``ScoreModel`` is the noise-conditional score network of Song & Ermon on vector data: the network
sees (x̃, level) with level = log(σ / σ_min) / log(σ_max / σ_min) in [0, 1] and returns
σ s_θ(x̃, σ); ``sample`` runs annealed Langevin dynamics from σ_max down to σ_min (Alg. 1).
Convention as for diffusion: small σ is data, large σ is noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from coursekit import models, solvers, utils


def geometric_sigmas(sigma_max: float, sigma_min: float, num: int) -> Tensor:
    """``num`` noise levels from sigma_max down to sigma_min, equally spaced in log (float32)."""
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), num)


def dsm_loss(scaled_score: Tensor, noise: Tensor) -> Tensor:
    """σ²-weighted denoising score matching for one batch: mean ||σ s_θ(x̃, σ) + z||² per example.

    ``scaled_score`` is σ s_θ(x + σ z, σ) (B, ...), ``noise`` is z; returns (B,).
    """
    return (scaled_score + noise).pow(2).flatten(1).sum(1)


class ScoreModel(models.GenerativeModel):
    """A noise-conditional score network ``net(x, level, y)`` over vector data (B, D).

    ``sigmas`` (L,) descending. ``score(x, i)`` is s_θ at level ``sigmas[i]``.
    """

    likelihood_hint = (
        "A score model has no normalized density; integrate the probability-flow ODE of its "
        "diffusion with a trace estimator (Song et al., 2021) to get a likelihood"
    )

    def __init__(
        self,
        net: nn.Module,
        sigmas: Tensor,
        *,
        steps_per_level: int = 100,
        step_scale: float = 2e-5,
    ):
        super().__init__()
        self.net = net
        # vector data (B, D): D is the width of the net's input layer
        self.data_shape = (net.inp.in_features,) if hasattr(net, "inp") else None
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))
        self.steps_per_level = steps_per_level
        self.step_scale = step_scale

    def level(self, i: Tensor) -> Tensor:
        """The network's time input for level indices ``i`` (B,): 0 at σ_min, 1 at σ_max."""
        s = self.sigmas
        return torch.log(s[i] / s[-1]) / torch.log(s[0] / s[-1])

    def score(self, x: Tensor, i: Tensor | int) -> Tensor:
        """s_θ(x, σ_i) ≈ ∇ log p_σ(x); ``i`` an int or (B,) level indices."""
        i = torch.as_tensor(i, device=x.device).expand(x.shape[0])
        sigma = self.sigmas[i].view(-1, *([1] * (x.ndim - 1)))
        return self.net(x, self.level(i), None) / sigma

    def loss(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        noise: Tensor | None = None,
        i: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Denoising score matching over a level drawn uniformly per example (Song & Ermon, eq. 6)."""
        B = x.shape[0]
        if i is None:
            i = utils.randint(0, len(self.sigmas), (B,), x, generator)
        if noise is None:
            noise = utils.randn(x.shape, x, generator)
        sigma = self.sigmas[i].view(-1, *([1] * (x.ndim - 1)))
        x_noisy = x + sigma * noise
        # the net outputs σ s_θ directly: its target −z has unit scale at every level
        loss = dsm_loss(self.net(x_noisy, self.level(i), None), noise).mean()
        return {"loss": loss}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        x_init: Tensor | None = None,
    ) -> Tensor:
        """Annealed Langevin dynamics from N(0, σ_max² I); returns (n, D)."""
        if x_init is None:
            if self.data_shape is None:
                raise ValueError("Pass x_init: the data dimension cannot be read from the net.")
            x_init = utils.randn((n, *self.data_shape), self.sigmas, generator) * self.sigmas[0]
        return annealed_langevin(
            self.score,
            self.sigmas,
            x_init,
            generator=generator,
            steps_per_level=self.steps_per_level,
            step_scale=self.step_scale,
        )


@torch.no_grad()
def annealed_langevin(
    score: Callable[[Tensor, int], Tensor],
    sigmas: Tensor,
    x: Tensor,
    *,
    steps_per_level: int = 100,
    step_scale: float = 2e-5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Song & Ermon's Algorithm 1: Langevin at each level with step α_i = ε σ_i² / σ_L².

    ``score(x, i)`` is the score at level ``sigmas[i]``; ``step_scale`` is ε. Each level runs
    ``solvers.langevin``, whose update x + a s(x) + sqrt(2a) z is theirs with a = α_i / 2.
    """
    for i in range(len(sigmas)):
        alpha = step_scale * float(sigmas[i] / sigmas[-1]) ** 2
        x = solvers.langevin(
            x,
            score=lambda x_, i=i: score(x_, i),
            step_size=alpha / 2,
            num_steps=steps_per_level,
            generator=generator,
        )
    return x


@models.register_conformance("score-toy")
def _tiny_score_model() -> models.ConformanceCase:
    from coursekit import networks

    net = networks.TimeConditionedMLP(in_dim=2, hidden=16, depth=2)
    model = ScoreModel(net, geometric_sigmas(1.0, 0.05, 4), steps_per_level=3)
    return models.ConformanceCase(model=model, x=torch.randn(4, 2), data_range=None)

"""Diffusion models (lecture 06), split the way the field splits them:

- ``schedules``: noise schedules (linear, cosine) as buffers: ᾱ_t, SNR, posterior coefficients;
- ``ddpm``: the ``Diffusion(net, schedule)`` objective, q(x_t | x_0) and the posterior; the
  ε / x_0 / v / score conversions are on its ``path`` (``coursekit.paths.VPPath``);
- ``sampling``: DDPM and DDIM steps and loops, the probability-flow ODE on
  ``coursekit.solvers``, classifier-free guidance, over plain callables;
- ``score``: denoising score matching and annealed Langevin dynamics on 2-D toys;
- ``latent``: diffusion in an autoencoder's latent space.
- ``controlnet`` (a frozen model steered by a control) and ``editing`` (SDEdit, inpainting).

Convention (Ho et al., 2020): ``x_0`` is data, large ``t`` is noise.
"""

from coursekit.diffusion import ddpm, sampling, schedules

__all__ = ["ddpm", "sampling", "schedules"]

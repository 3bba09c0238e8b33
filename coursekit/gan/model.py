"""``GAN``: a trained generator (and its critic) on the shared model interface.

Training is ``train.Adversarial`` + ``train.fit`` (two players, two optimizers); the model
wraps the result for sampling and evaluation::

    model = gan.GAN(generator, critic, latent=32, data_shape=(1, 8, 8))
    adv = train.Adversarial(model.generator, model.critic, gan.g_nonsaturating, gan.d_gan, ...)
    train.fit(adv, images, steps=...)
    x = model.sample(16, generator=torch.Generator().manual_seed(0))

``loss(x)`` is the critic's loss on x against fresh samples (the generator's loss is logged
beside it); ``log_prob`` raises: a GAN defines no density.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from coursekit import models
from coursekit.gan import losses


class GAN(models.GenerativeModel):
    likelihood_hint = (
        "A GAN is an implicit model: it can sample but defines no density (its samples lie on "
        "a low-dimensional manifold). Compare GANs by sample metrics instead: "
        "evaluation.evaluate(model, train, test) reports FCD, precision/recall and memorisation."
    )

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        *,
        latent: int,
        data_shape: tuple[int, ...],
        d_loss: Callable[[Tensor, Tensor], Tensor] = losses.d_gan,
        g_loss: Callable[[Tensor], Tensor] = losses.g_nonsaturating,
        data_range: tuple[float, float] | None = (0.0, 1.0),
    ):
        super().__init__()
        self.generator, self.critic = generator, critic
        self.latent, self.data_shape = latent, tuple(data_shape)
        self.d_loss_fn, self.g_loss_fn, self.data_range = d_loss, g_loss, data_range

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        models.check_data(self, x)
        z = torch.randn(x.shape[0], self.latent, device=x.device)
        fake = self.generator(z)
        d = self.d_loss_fn(self.critic(x), self.critic(fake.detach()))
        d = d["loss"] if isinstance(d, dict) else d
        g = self.g_loss_fn(self.critic(fake))
        return {"loss": d, "d_loss": d.detach(), "g_loss": g.detach()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        psi: float = 1.0,
    ) -> Tensor:
        """n samples G(psi * z), z ~ N(0, I) (psi < 1: the truncation trick in z)."""
        was = self.generator.training
        self.generator.eval()
        try:
            z = torch.randn(n, self.latent, generator=generator).to(self.device)
            x = self.generator(psi * z)
        finally:
            self.generator.train(was)
        if self.data_range is not None:
            x = x.clamp(*self.data_range)
        return x


@models.register_conformance("gan_dcgan")
def _conformance_case() -> models.ConformanceCase:
    from coursekit.gan.networks import DCCritic, DCGenerator

    torch.manual_seed(0)
    model = GAN(
        DCGenerator(8, 1, 8, width=8), DCCritic(1, 8, width=8), latent=8, data_shape=(1, 8, 8)
    )
    return models.ConformanceCase(model, torch.rand(4, 1, 8, 8), checks_input=True)

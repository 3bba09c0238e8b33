"""VQ-GAN's training step (Esser et al. 2021): the VQ autoencoder's loss plus a perceptual-style
feature loss and a patch discriminator.

- :class:`PatchDiscriminator`: a small conv net giving one real/fake logit per image patch
  (PatchGAN, Isola et al. 2017), so it judges local texture, the part that squared error blurs.
- :class:`VQGANStep`: a ``train.fit`` ``step_fn`` holding both optimizers. The autoencoder
  minimises ``recon + quantiser loss + w_feat * feature loss + lambda * w_adv * L_G``, the
  discriminator its own loss, both only from step ``adv_start`` on, once reconstructions are
  roughly right (the paper's code: ``disc_start``; before it the discriminator is not trained).
  ``gan_loss="hinge"`` (the paper's): ``L_G = -D(x_hat)``, ``L_D = relu(1 - D(x)) + relu(1 +
  D(x_hat))``; ``"non_saturating"``: ``L_G = softplus(-D(x_hat))``, ``L_D = softplus(-D(x)) +
  softplus(D(x_hat))``. ``adaptive=True`` is the paper's adaptive weight (eq. 7),
  ``lambda = ||grad_L L_rec|| / (||grad_L L_G|| + 1e-4)`` at the decoder's last layer L
  (``L_rec`` = squared error + weighted feature loss), so the adversarial gradient there is
  ``w_adv`` times as large as the reconstruction's whatever the two losses' scales; otherwise
  ``lambda = 1``. No pretrained perceptual network can be downloaded, so the feature loss
  compares activations of a frozen network passed in (the lecture uses the first conv block of
  the course's digits classifier).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit.gan import losses as gan_losses
from coursekit.vq.autoencoder import VQAutoencoder


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, 1, H/2, W/2) logits, one per overlapping patch."""

    def __init__(self, channels: int = 1, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class VQGANStep:
    """One VQ-GAN training step for ``train.fit(model, data, step_fn=VQGANStep(...))``.

    Args:
        model: the :class:`VQAutoencoder` being trained (its optimizer covers all of its
            parameters: encoder, decoder and a learned codebook).
        features: a frozen network mapping images to feature maps, or None for no feature loss.
        discriminator: the critic, or None for no adversarial loss.
        w_feat, w_adv: the weights of the two terms; ``adv_start``: the first adversarial step.
        gan_loss: ``"hinge"`` or ``"non_saturating"``.
        adaptive: scale the generator's adversarial term by the adaptive weight lambda.
    """

    def __init__(
        self,
        model: VQAutoencoder,
        *,
        features: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        w_feat: float = 0.1,
        w_adv: float = 0.05,
        adv_start: int = 0,
        lr: float = 2e-3,
        lr_d: float = 1e-3,
        gan_loss: str = "non_saturating",
        adaptive: bool = False,
    ):
        if gan_loss not in ("hinge", "non_saturating"):
            raise ValueError(f"gan_loss is 'hinge' or 'non_saturating', got {gan_loss!r}.")
        self.model, self.features, self.disc = model, features, discriminator
        self.w_feat, self.w_adv, self.adv_start = w_feat, w_adv, adv_start
        self.gan_loss, self.adaptive = gan_loss, adaptive
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr)
        self.opt_d = (
            None
            if discriminator is None
            else torch.optim.AdamW(discriminator.parameters(), lr=lr_d, betas=(0.5, 0.9))
        )
        if features is not None:
            for p in features.parameters():
                p.requires_grad_(False)

    def __call__(self, model: VQAutoencoder, batch, step: int) -> dict[str, Tensor]:
        x = batch[0]
        q = model.quantize(x)
        x_hat = model.decode_latent(q.z_q)
        recon = F.mse_loss(x_hat, x)
        rec, terms = recon, {"recon": recon.detach()}  # rec: the reconstruction terms
        if self.features is not None:
            feat = F.mse_loss(self.features(x_hat), self.features(x))
            rec = rec + self.w_feat * feat
            terms["feature"] = feat.detach()
        loss = rec + q.loss
        adversarial = self.disc is not None and step >= self.adv_start
        if adversarial:
            self.disc.requires_grad_(False)
            logits = self.disc(x_hat)
            self.disc.requires_grad_(True)
            g_loss = gan_losses.g_hinge if self.gan_loss == "hinge" else gan_losses.g_nonsaturating
            g_adv = g_loss(logits)
            weight = self.adaptive_weight(rec, g_adv) if self.adaptive else 1.0
            loss = loss + self.w_adv * weight * g_adv
            terms["g_adv"] = g_adv.detach()
            if self.adaptive:
                terms["adaptive_weight"] = weight
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if adversarial:
            d_fn = gan_losses.d_hinge if self.gan_loss == "hinge" else gan_losses.d_gan
            d_loss = d_fn(self.disc(x), self.disc(x_hat.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            terms["d_loss"] = d_loss.detach()
        terms["loss"] = loss.detach()
        return terms

    def adaptive_weight(self, rec: Tensor, g_adv: Tensor) -> Tensor:
        """VQGAN's eq. 7: ||grad_L rec|| / (||grad_L g_adv|| + 1e-4) at the decoder's last layer
        L, clamped to [0, 1e4] and detached (a weight, not a path for gradients)."""
        last = self.model.decoder[-1].weight
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_gan = torch.autograd.grad(g_adv, last, retain_graph=True)[0]
        return (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0.0, 1e4).detach()

    def state_dict(self) -> dict:
        state = {"opt": self.opt.state_dict()}
        if self.disc is not None:
            state |= {"disc": self.disc.state_dict(), "opt_d": self.opt_d.state_dict()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        if self.disc is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])

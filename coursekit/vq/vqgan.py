"""VQ-GAN's training step (Esser et al. 2021): the VQ autoencoder's loss plus a perceptual-style
feature loss and a patch discriminator.

- :class:`PatchDiscriminator`: a small conv net giving one real/fake logit per image patch
  (PatchGAN, Isola et al. 2017), so it judges local texture, the part that squared error blurs.
- :class:`VQGANStep`: a ``train.fit`` ``step_fn`` holding both optimizers. The autoencoder
  minimises ``recon + quantiser loss + w_feat * feature loss + w_adv * softplus(-D(x_hat))``
  (the non-saturating GAN loss), the discriminator ``softplus(-D(x)) + softplus(D(x_hat))``;
  the adversarial term starts after ``adv_start`` steps, once reconstructions are roughly
  right (as in the paper's code). No pretrained perceptual network can be downloaded, so the
  feature loss compares activations of a frozen network passed in (the lecture uses the first
  conv block of the course's digits classifier).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
    ):
        self.model, self.features, self.disc = model, features, discriminator
        self.w_feat, self.w_adv, self.adv_start = w_feat, w_adv, adv_start
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
        loss, terms = recon + q.loss, {"recon": recon.detach()}
        if self.features is not None:
            feat = F.mse_loss(self.features(x_hat), self.features(x))
            loss = loss + self.w_feat * feat
            terms["feature"] = feat.detach()
        adversarial = self.disc is not None and step >= self.adv_start
        if adversarial:
            self.disc.requires_grad_(False)
            g_adv = F.softplus(-self.disc(x_hat)).mean()
            self.disc.requires_grad_(True)
            loss = loss + self.w_adv * g_adv
            terms["g_adv"] = g_adv.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if adversarial:
            d_loss = F.softplus(-self.disc(x)).mean() + F.softplus(self.disc(x_hat.detach())).mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            terms["d_loss"] = d_loss.detach()
        terms["loss"] = loss.detach()
        return terms

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

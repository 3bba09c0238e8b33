"""Image-to-image translation: pix2pix (paired), CycleGAN (unpaired), BicycleGAN's noise input.

- **pix2pix** (Isola et al. 2017): a conditional GAN G(a) -> b trained on pairs (a, b), with
  the loss  GAN(D(a, G(a)))  +  lambda * ||G(a) - b||_1  (eq. 4; lambda = 100 in the paper).
  The L1 term gets the low frequencies right, the GAN term the sharpness. D is a **patch**
  discriminator: it outputs a grid of logits, one per overlapping patch of (a, b) stacked as
  channels, so it judges local texture and the L1 term keeps the global layout.
- **CycleGAN** (Zhu et al. 2017): two translators G: A -> B, F: B -> A and a critic per domain,
  trained on *unpaired* sets, with the cycle-consistency loss (eq. 2)
  ||F(G(a)) - a||_1 + ||G(F(b)) - b||_1 (weight 10) so that translation keeps the content.
- **BicycleGAN** (Zhu et al. 2017b): pix2pix ignores a noise input (the L1 term rewards the one
  mean answer). BicycleGAN encodes the target, z ~ E(b), and reconstructs b from G(a, z)
  (cVAE-GAN, eq. 5), and also draws z ~ N(0, I) and recovers it from the output,
  E(G(a, z)) ~ z (cLR-GAN, eq. 6), which forces different z to give different outputs.

``Pix2Pix`` and ``CycleGAN`` train themselves through ``train.fit`` (``train_step``) on the
tuple ``(a, b)``: paired for pix2pix, two independently shuffled domains for CycleGAN. The
critics use the logits losses of ``gan.losses``; images in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit.gan import losses


def edges(x: Tensor) -> Tensor:
    """Edge map of images (B, C, H, W) in [0, 1]: Sobel gradient magnitude, scaled to [0, 1]."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device) / 4
    k = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    B, C, H, W = x.shape
    padded = F.pad(x.reshape(B * C, 1, H, W), (1, 1, 1, 1), mode="replicate")  # no border edge
    g = F.conv2d(padded, k)  # (B*C, 2, H, W)
    return g.pow(2).sum(1).sqrt().view(B, C, H, W).clamp(0, 1)


def thicken(x: Tensor) -> Tensor:
    """Thicker strokes: each pixel becomes the maximum of its 3x3 neighbourhood (a dilation),
    averaged with the original so the stroke keeps its grey levels at the centre."""
    return 0.5 * (x + F.max_pool2d(x, 3, stride=1, padding=1))


def cycle_consistency_loss(G_ab: nn.Module, G_ba: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """||G_ba(G_ab(a)) - a||_1 + ||G_ab(G_ba(b)) - b||_1, each a mean over pixels (eq. 2)."""
    return (G_ba(G_ab(a)) - a).abs().mean() + (G_ab(G_ba(b)) - b).abs().mean()


class Translator(nn.Module):
    """A small U-Net, (B, c_in, H, W) -> (B, c_out, H, W) in [0, 1], H and W even.

    One downsampling (stride-2 convolution), one upsampling, a skip connection between the
    full-resolution features. ``noise_dim`` > 0: a noise z (B, noise_dim) is broadcast to
    constant channels and concatenated to the input (BicycleGAN's input).
    """

    def __init__(self, c_in: int = 1, c_out: int = 1, width: int = 32, noise_dim: int = 0):
        super().__init__()
        self.noise_dim = noise_dim
        self.inp = nn.Sequential(
            nn.Conv2d(c_in + noise_dim, width, 3, padding=1), nn.LeakyReLU(0.2)
        )
        self.down = nn.Sequential(
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(2 * width, c_out, 3, padding=1)

    def forward(self, a: Tensor, z: Tensor | None = None) -> Tensor:
        if self.noise_dim:
            if z is None or z.shape != (a.shape[0], self.noise_dim):
                raise ValueError(
                    f"this translator takes a noise z of shape ({a.shape[0]}, {self.noise_dim}); "
                    f"got {None if z is None else tuple(z.shape)}."
                )
            a = torch.cat([a, z[:, :, None, None].expand(-1, -1, *a.shape[2:])], 1)
        h = self.inp(a)  # (B, width, H, W)
        u = self.up(self.down(h))  # (B, width, H, W) after (B, 2 width, H/2, W/2)
        return torch.sigmoid(self.out(torch.cat([h, u], 1)))


class PatchCritic(nn.Module):
    """(B, c_in, H, W) -> (B, 1, H/2, W/2) logits, one per overlapping patch (PatchGAN)."""

    def __init__(self, c_in: int = 2, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr, betas=(0.5, 0.999))


def _step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class Pix2Pix(nn.Module):
    """pix2pix on pairs ``(a, b)``: G(a) -> b, patch critic D on (a, b) stacked as channels.

    ``adversarial`` = 0: no critic at all, G trained on the L1 term alone (the baseline that
    shows what the GAN term adds). ``noise_dim`` > 0 alone: pix2pix with a noise input
    G(a, z) (which it learns to ignore).
    With ``latent_regression`` > 0 as well: BicycleGAN (Zhu et al. 2017b) at small scale, an
    encoder E(b) -> (mu, log var) and two paths per step:

    - cVAE-GAN: z ~ E(b), G(a, z) must match b (L1) and fool D; KL(E(b) || N(0, I)) * ``kl``;
    - cLR-GAN: z ~ N(0, I), G(a, z) must fool D, and E must recover z from it:
      ``latent_regression`` * |mu(G(a, z)) - z|, which makes the output depend on z.
    """

    def __init__(
        self,
        c: int = 1,
        width: int = 32,
        l1: float = 100.0,
        lr: float = 2e-4,
        noise_dim: int = 0,
        latent_regression: float = 0.0,
        kl: float = 0.01,
        adversarial: float = 1.0,
    ):
        super().__init__()
        self.G = Translator(c, c, width, noise_dim)
        self.D = PatchCritic(2 * c, width)
        self.l1, self.noise_dim, self.latent_regression, self.kl = (
            l1,
            noise_dim,
            latent_regression,
            kl,
        )
        self.adversarial = adversarial
        self.E = None
        if noise_dim and latent_regression:
            self.E = nn.Sequential(
                nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Flatten(), nn.LazyLinear(2 * noise_dim),
            )  # fmt: skip
            self.E(torch.zeros(1, c, 8, 8))  # materialise the lazy layer for 8x8 images
        self.g_opt = torch.optim.Adam(
            [*self.G.parameters(), *(self.E.parameters() if self.E is not None else [])],
            lr, betas=(0.5, 0.999),
        )  # fmt: skip
        self.d_opt = _adam(self.D, lr)

    def translate(self, a: Tensor, z: Tensor | None = None) -> Tensor:
        """G(a), or G(a, z) with z ~ N(0, I) unless given (noise_dim > 0)."""
        if self.noise_dim and z is None:
            z = torch.randn(a.shape[0], self.noise_dim, device=a.device)
        return self.G(a, z)

    def encode(self, b: Tensor) -> tuple[Tensor, Tensor]:
        """BicycleGAN's encoder: (mu, log var), each (B, noise_dim)."""
        return self.E(b).chunk(2, dim=1)

    def train_step(self, batch: tuple[Tensor, Tensor], step: int) -> dict[str, Tensor]:
        a, b = batch
        terms: dict[str, Tensor] = {}
        z = torch.randn(a.shape[0], self.noise_dim, device=a.device) if self.noise_dim else None
        if self.E is not None:  # BicycleGAN: the cVAE path reconstructs b from its own code
            mu, logvar = self.encode(b)
            z_rand = z
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        fake = self.G(a, z)
        fakes = [fake] if self.E is None else [fake, self.G(a, z_rand)]
        l1 = (fake - b).abs().mean()
        g_loss = self.l1 * l1
        terms.update(g_l1=l1.detach())
        if self.adversarial:
            # the critic's step: the fakes detached (no gradient into G)
            real_logit = self.D(torch.cat([a, b], 1))
            d_loss = sum(
                losses.d_gan(real_logit, self.D(torch.cat([a, f.detach()], 1))) for f in fakes
            ) / len(fakes)
            _step(self.d_opt, d_loss)
            # the generator's step: fool D on the pair, stay within L1 of the target
            self.D.requires_grad_(False)
            adv = sum(losses.g_nonsaturating(self.D(torch.cat([a, f], 1))) for f in fakes)
            g_loss = g_loss + self.adversarial * adv
            terms.update(d_loss=d_loss.detach(), g_adv=adv.detach())
        if self.E is not None:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
            z_rec = (self.encode(fakes[1])[0] - z_rand).abs().mean()  # cLR: recover z
            g_loss = g_loss + self.kl * kl + self.latent_regression * z_rec
            terms.update(g_kl=kl.detach(), g_z_rec=z_rec.detach())
        _step(self.g_opt, g_loss)
        self.D.requires_grad_(True)
        return terms


class CycleGAN(nn.Module):
    """CycleGAN on two unpaired domains given as a tuple ``(a, b)`` (shuffled independently).

    G_ab: A -> B, G_ba: B -> A; critics D_a, D_b (image-level patch critics); the generators
    minimise the two GAN terms + ``cycle`` * ``cycle_consistency_loss``.
    """

    def __init__(self, c: int = 1, width: int = 32, cycle: float = 10.0, lr: float = 2e-4):
        super().__init__()
        self.G_ab, self.G_ba = Translator(c, c, width), Translator(c, c, width)
        self.D_a, self.D_b = PatchCritic(c, width), PatchCritic(c, width)
        self.cycle = cycle
        self.g_opt = torch.optim.Adam(
            [*self.G_ab.parameters(), *self.G_ba.parameters()], lr, betas=(0.5, 0.999)
        )
        self.d_opt = torch.optim.Adam(
            [*self.D_a.parameters(), *self.D_b.parameters()], lr, betas=(0.5, 0.999)
        )

    def train_step(self, batch: tuple[Tensor, Tensor], step: int) -> dict[str, Tensor]:
        a, b = batch
        fake_b, fake_a = self.G_ab(a), self.G_ba(b)
        d_loss = losses.d_gan(self.D_b(b), self.D_b(fake_b.detach())) + losses.d_gan(
            self.D_a(a), self.D_a(fake_a.detach())
        )
        _step(self.d_opt, d_loss)
        self.D_a.requires_grad_(False)
        self.D_b.requires_grad_(False)
        adv = losses.g_nonsaturating(self.D_b(fake_b)) + losses.g_nonsaturating(self.D_a(fake_a))
        cyc = (self.G_ba(fake_b) - a).abs().mean() + (self.G_ab(fake_a) - b).abs().mean()
        _step(self.g_opt, adv + self.cycle * cyc)
        self.D_a.requires_grad_(True)
        self.D_b.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_adv": adv.detach(), "g_cycle": cyc.detach()}

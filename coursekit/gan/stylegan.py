"""StyleGAN's ideas at the size of 8x8 digits: mapping network, modulation, noise, truncation.

StyleGAN (Karras et al. 2019) and StyleGAN2 (Karras et al. 2020) change only the generator:

- a **mapping network** f: z -> w (an MLP after pixel norm) gives an intermediate latent w
  whose distribution need not be a Gaussian, so it can follow the data's factors;
- the synthesis network starts from a **learned constant** and every layer gets its own copy
  of w through a learned affine map to a *style* s = A(w), one scale per input channel;
- **weight modulation and demodulation** (StyleGAN2, eq. 1-3): w'_ijk = s_i w_ijk, then
  w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps), so each output channel has unit expected
  scale (it replaces StyleGAN's AdaIN and its droplet artefacts);
- **noise injection**: per-pixel Gaussian noise, scaled by a learned per-channel weight, after
  every convolution, for the stochastic detail the style need not explain;
- **style mixing**: layers before a crossover take w1, the rest w2 (coarse layers at low
  resolution set the shape, fine layers the stroke); done at random in training it keeps the
  layers' styles independent;
- the **truncation trick**: w' = w_avg + psi (w - w_avg), w_avg the running mean of w in
  training; psi < 1 trades diversity for quality.

Layout here, for (C, 8, 8) images: const (4x4) -> modconv -> up x2 -> modconv -> modconv ->
modulated 1x1 "to image" (no demodulation) -> sigmoid, so ``num_ws = 4`` styles; the first is
the coarse (4x4) layer, the other three act at 8x8. Images in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models
from coursekit.gan.model import GAN


class MappingNetwork(nn.Module):
    """z (B, latent) -> w (B, w_dim): pixel norm, then ``depth`` linear + LeakyReLU layers."""

    def __init__(self, latent: int, w_dim: int, depth: int = 4):
        super().__init__()
        dims = [latent] + [w_dim] * depth
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        for m in self.net:  # variance-preserving init, so w keeps the scale of z (eq. lr idea)
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0.2)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor) -> Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)  # pixel norm
        return self.net(z)


class ModulatedConv2d(nn.Module):
    """A k x k convolution whose weights are scaled per input channel by the style A(w)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, k: int = 3, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.affine = nn.Linear(w_dim, c_in)
        # unit-variance styles around 1, so that different w give clearly different layers
        nn.init.normal_(self.affine.weight, std=w_dim**-0.5)
        nn.init.ones_(self.affine.bias)  # styles start at 1: the plain convolution
        self.demodulate, self.pad = demodulate, k // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s = self.affine(w)  # (B, C_in): the style
        # Scaling the input channels by s and convolving with W equals convolving with the
        # modulated weights s_i w_ijk (StyleGAN2's non-fused path): one shared convolution.
        out = F.conv2d(x * s[:, :, None, None], self.weight, padding=self.pad)  # (B, C_out, H, W)
        if self.demodulate:
            # sum_ik (s_i w_ijk)^2 = sum_i s_i^2 sum_k w_ijk^2, for each sample and output j
            energy = s.pow(2) @ self.weight.pow(2).sum((2, 3)).t()  # (B, C_out)
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out + self.bias.view(1, -1, 1, 1)


class NoiseInjection(nn.Module):
    """x + strength * noise, noise (B, 1, H, W) shared by the channels, strength per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.strength * noise


class StyleGenerator(nn.Module):
    """z -> x (B, channels, 8, 8): mapping network + modulated synthesis (see the module doc).

    ``forward(z, psi=1.0, noise=None, generator=None)``; ``synthesis(ws, noise)`` takes one w
    per layer (B, num_ws, w_dim), which is what style mixing edits. ``noise``: a list of
    ``num_noise`` tensors (B, 1, H, W), drawn from ``generator`` when not given.
    ``mixing_prob``: in training mode, the chance that a batch mixes two z's at a random layer.
    """

    num_ws = 4
    resolutions = (4, 8, 8)  # of the three noise inputs

    def __init__(
        self,
        latent: int = 32,
        channels: int = 1,
        w_dim: int = 64,
        width: int = 64,
        mapping_depth: int = 4,
        mixing_prob: float = 0.5,
        w_avg_beta: float = 0.995,
    ):
        super().__init__()
        self.latent, self.w_dim, self.mixing_prob, self.w_avg_beta = (
            latent, w_dim, mixing_prob, w_avg_beta,
        )  # fmt: skip
        self.mapping = MappingNetwork(latent, w_dim, mapping_depth)
        self.const = nn.Parameter(torch.randn(1, width, 4, 4))
        self.convs = nn.ModuleList(
            [ModulatedConv2d(width, width, w_dim) for _ in range(len(self.resolutions))]
        )
        self.noises = nn.ModuleList([NoiseInjection(width) for _ in self.resolutions])
        self.to_image = ModulatedConv2d(width, channels, w_dim, k=1, demodulate=False)
        self.register_buffer("w_avg", torch.zeros(w_dim))  # the running mean of w (truncation)

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """The truncation trick: w_avg + psi (w - w_avg)."""
        return self.w_avg + psi * (w - self.w_avg)

    def draw_noise(self, n: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """The per-layer noise inputs, (n, 1, r, r) for each resolution r, on the model's device."""
        dev = self.const.device
        return [torch.randn(n, 1, r, r, generator=generator).to(dev) for r in self.resolutions]

    def styles(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """ws (B, num_ws, w_dim): w = mapping(z), truncated, one copy per layer."""
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.mean(0), 1 - self.w_avg_beta)
        if psi != 1.0:
            w = self.truncate(w, psi)
        return w[:, None].expand(-1, self.num_ws, -1)

    def synthesis(self, ws: Tensor, noise: list[Tensor] | None = None) -> Tensor:
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(
                f"synthesis takes one w per layer, shape (B, {self.num_ws}, {self.w_dim}); "
                f"got {tuple(ws.shape)}. Use styles(z) to build it."
            )
        B = ws.shape[0]
        noise = self.draw_noise(B) if noise is None else noise
        x = self.const.expand(B, -1, -1, -1)  # (B, width, 4, 4)
        for i, (conv, inject) in enumerate(zip(self.convs, self.noises)):
            if i == 1:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(inject(conv(x, ws[:, i]), noise[i]), 0.2)  # (B, width, r, r)
        return torch.sigmoid(self.to_image(x, ws[:, -1]))  # (B, channels, 8, 8)

    def forward(
        self,
        z: Tensor,
        psi: float = 1.0,
        noise: list[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        ws = self.styles(z, psi)
        if self.training and self.mixing_prob > 0:
            if float(torch.rand(1, generator=generator)) < self.mixing_prob:
                z2 = torch.randn(z.shape, generator=generator).to(z)
                cut = int(torch.randint(1, self.num_ws, (1,), generator=generator))
                ws = mix_styles(ws, self.styles(z2, psi), cut)
        if noise is None:
            noise = self.draw_noise(z.shape[0], generator)
        return self.synthesis(ws, noise)


def mix_styles(ws1: Tensor, ws2: Tensor, crossover: int) -> Tensor:
    """Layers ``< crossover`` take ws1 (coarse), the rest ws2 (fine); both (B, num_ws, w_dim)."""
    if ws1.shape != ws2.shape:
        raise ValueError(f"ws1 and ws2 must match, got {tuple(ws1.shape)}, {tuple(ws2.shape)}.")
    if not 0 <= crossover <= ws1.shape[1]:
        raise ValueError(f"crossover must be in 0..{ws1.shape[1]}, got {crossover}.")
    layer = torch.arange(ws1.shape[1], device=ws1.device)[None, :, None]  # (1, num_ws, 1)
    return torch.where(layer < crossover, ws1, ws2)


class StyleGAN(GAN):
    """``GAN`` whose ``sample(psi=...)`` truncates in w (StyleGAN's trick), not in z.

    The noise inputs are drawn from the same ``generator`` as z, so a seeded call repeats.
    """

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        psi: float = 1.0,
    ) -> Tensor:
        was = self.generator.training
        self.generator.eval()
        try:
            z = torch.randn(n, self.latent, generator=generator).to(self.device)
            noise = self.generator.draw_noise(n, generator)
            x = self.generator(z, psi=psi, noise=noise)
        finally:
            self.generator.train(was)
        return x


@models.register_conformance("gan_stylegan")
def _conformance_case() -> models.ConformanceCase:
    from coursekit.gan.networks import DCCritic

    torch.manual_seed(0)
    G = StyleGenerator(latent=8, w_dim=8, width=8, mapping_depth=2)
    model = StyleGAN(G, DCCritic(1, 8, width=8), latent=8, data_shape=(1, 8, 8))
    return models.ConformanceCase(model, torch.rand(4, 1, 8, 8), checks_input=True)

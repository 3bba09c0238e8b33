"""ControlNet (Zhang, Rao & Agrawala, 2023): steer a frozen, pretrained diffusion network.

The pretrained ε-network (here ``networks.UNet`` or ``networks.TimeConditionedMLP``) is frozen.
A trainable *copy* of its encoder reads the noisy input plus a control signal ``c`` (a
low-resolution version of the image, an edge map, ...) and adds its features to the frozen
network's decoder through layers initialised at zero (Zhang et al., eq. 2):

    y_c = F(x; Θ) + Z(F(x + Z(c; Θ_z1); Θ_c); Θ_z2),

with Θ frozen, Θ_c a copy of Θ's encoder and Z a 1×1 convolution (a linear layer for vectors)
whose weights and bias start at 0. At initialisation every Z outputs exactly 0, so the model *is*
the base model, bit for bit: training starts from a good sampler, not from noise, and the first
gradient steps cannot wreck it.

Where the copy joins the base:

- UNet: the copy has the encoder (``conv_in``, the down levels) and the bottleneck; a zero 1×1
  conv adds each of its skip features to the base's skip connection of that level, and one adds
  its bottleneck output to the base's bottleneck output (as in Zhang et al., fig. 3). The control
  image (B, control_channels, h, w), any h, w, is upsampled to the image size and enters through
  a small conv "hint" block ending in a zero conv.
- TimeConditionedMLP: the "encoder" is the input layer and the first half of the hidden layers;
  a zero linear layer adds the copy's last hidden state to the input of every remaining layer of
  the base (and of its output layer). The control is flattened: ``control_channels`` is then its
  number of features per example.

``ControlledDiffusion`` trains and samples it with the objective and samplers of
``ddpm.Diffusion``: the control plays the role of the condition ``y``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import networks
from coursekit.diffusion import ddpm


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to 0 (Zhang et al.'s "zero convolution") and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def low_resolution(x: Tensor, size: int) -> Tensor:
    """A control signal: ``x`` (B, C, H, W) averaged over blocks down to (B, C, size, size)."""
    return F.adaptive_avg_pool2d(x, size)


def edges(x: Tensor) -> Tensor:
    """A control signal: the Sobel gradient magnitude of ``x`` (B, C, H, W), same shape."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    k = torch.stack([kx, kx.T])[:, None].to(x.dtype)  # (2, 1, 3, 3): d/dx and d/dy
    B, C, H, W = x.shape
    g = F.conv2d(x.reshape(B * C, 1, H, W), k, padding=1)  # (B C, 2, H, W)
    return g.pow(2).sum(1).sqrt().view(B, C, H, W)


class ControlNet(nn.Module):
    """A frozen ``base`` network plus a trainable, zero-joined copy of its encoder.

    forward(x_t, t, control, y=None) -> the base's output type (ε, x_0 or v), shaped like x_t.
    ``base`` is a ``networks.UNet`` or a ``networks.TimeConditionedMLP`` (a compiled one is
    unwrapped); its parameters are set to ``requires_grad=False`` and never change.
    ``control_channels``: channels of the control image (UNet), or the number of features of
    the flattened control (MLP; images given to an MLP are flattened too, and the output gets
    x_t's shape back).
    """

    def __init__(self, base: nn.Module, control_channels: int):
        super().__init__()
        base = getattr(base, "_orig_mod", base)  # torch.compile's wrapper
        self.base = base
        self.control_channels = control_channels
        if isinstance(base, networks.UNet):
            self.kind = "unet"
            self._build_unet(base, control_channels)
        elif isinstance(base, networks.TimeConditionedMLP):
            self.kind = "mlp"
            self._build_mlp(base, control_channels)
        else:
            raise TypeError(
                f"ControlNet knows networks.UNet and networks.TimeConditionedMLP, got "
                f"{type(base).__name__}: pass the network inside your wrapper (e.g. `net.mlp`)."
            )
        self.requires_grad_(True)  # the copies learn, even if the base came in frozen
        self.base.requires_grad_(False)

    def train(self, mode: bool = True) -> ControlNet:
        super().train(mode)
        self.base.eval()  # frozen: no dropout, whatever the training loop asks
        return self

    # --- UNet -------------------------------------------------------------------------------------
    def _build_unet(self, base: networks.UNet, control_channels: int) -> None:
        base_ch = base.conv_in.out_channels
        self.time_embed = copy.deepcopy(base.time_embed)
        self.label_embed = copy.deepcopy(base.label_embed)
        self.conv_in = copy.deepcopy(base.conv_in)
        self.down = copy.deepcopy(base.down)
        self.downsample = copy.deepcopy(base.downsample)
        self.mid1 = copy.deepcopy(base.mid1)
        self.mid_attn = copy.deepcopy(base.mid_attn)
        self.mid2 = copy.deepcopy(base.mid2)
        self.hint = nn.Sequential(
            nn.Conv2d(control_channels, base_ch, 3, padding=1),
            nn.SiLU(),
            zero_module(nn.Conv2d(base_ch, base_ch, 1)),
        )
        level_ch = [blocks[-1].conv2.out_channels for blocks in base.down]
        self.zero_skips = nn.ModuleList(zero_module(nn.Conv2d(c, c, 1)) for c in level_ch)
        self.zero_mid = zero_module(nn.Conv2d(level_ch[-1], level_ch[-1], 1))

    def _embed_copy(self, t: Tensor, y: Tensor | None, B: int, device: torch.device) -> Tensor:
        emb = self.time_embed(networks._as_batch_time(t, B, device))
        if self.label_embed is not None:
            emb = emb + self.label_embed(y, batch_size=B)
        return emb  # (B, emb_dim)

    def _forward_unet(self, x: Tensor, t: Tensor, control: Tensor, y: Tensor | None) -> Tensor:
        base = self.base
        B, C, H, W = x.shape
        if control.ndim != 4 or control.shape[:2] != (B, self.control_channels):
            raise ValueError(
                f"control must have shape ({B}, {self.control_channels}, h, w), "
                f"got {tuple(control.shape)}."
            )
        # the trainable copy: x plus the control (through a zero conv), down to the bottleneck
        emb_c = self._embed_copy(t, y, B, x.device)
        c = F.interpolate(control.to(x.dtype), size=(H, W), mode="nearest")  # (B, C_c, H, W)
        h = self.conv_in(x) + self.hint(c)  # (B, base, H, W)
        residuals = []
        for blocks, down, zero in zip(self.down, self.downsample, self.zero_skips):
            for blk in blocks:
                h = blk(h, emb_c)
            residuals.append(zero(h))  # (B, C_level, H_level, W_level), 0 at initialisation
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb_c)), emb_c)
        mid_residual = self.zero_mid(h)  # (B, C_low, H_low, W_low)

        # the frozen base, with the copy's features added to its skips and bottleneck
        emb = base.embed(t, y, B, x.device)
        h = base.conv_in(x)
        skips = []
        for blocks, down, r in zip(base.down, base.downsample, residuals):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h + r)
            h = down(h)
        h = base.mid2(base.mid_attn(base.mid1(h, emb)), emb) + mid_residual
        for blocks, up in zip(base.up, base.upsample):
            h = torch.cat([h, skips.pop()], dim=1)  # (B, C_h + C_skip, H_level, W_level)
            for blk in blocks:
                h = blk(h, emb)
            h = up(h)
        return base.conv_out(F.silu(base.norm_out(h)))  # (B, out_ch, H, W)

    # --- MLP --------------------------------------------------------------------------------------
    def _build_mlp(self, base: networks.TimeConditionedMLP, control_channels: int) -> None:
        hidden = base.inp.out_features
        self.num_encoder = math.ceil(len(base.layers) / 2)
        self.time_embed = copy.deepcopy(base.time_embed)
        self.label_embed = copy.deepcopy(base.label_embed)
        self.inp = copy.deepcopy(base.inp)
        self.layers = copy.deepcopy(base.layers[: self.num_encoder])
        self.emb_projs = copy.deepcopy(base.emb_projs[: self.num_encoder])
        self.hint = nn.Sequential(
            nn.Linear(control_channels, hidden), nn.SiLU(), zero_module(nn.Linear(hidden, hidden))
        )
        num_decoder = len(base.layers) - self.num_encoder + 1  # the remaining layers and `out`
        self.zero_joins = nn.ModuleList(
            zero_module(nn.Linear(hidden, hidden)) for _ in range(num_decoder)
        )

    def _forward_mlp(self, x: Tensor, t: Tensor, control: Tensor, y: Tensor | None) -> Tensor:
        base = self.base
        B = x.shape[0]
        v = x.flatten(1)  # (B, D): images are flattened, as the lecture's ImageMLP does
        c = control.flatten(1).to(x.dtype)  # (B, control_channels)
        if c.shape != (B, self.control_channels) or v.shape[1] != base.inp.in_features:
            raise ValueError(
                f"expected x with {base.inp.in_features} features and control with "
                f"{self.control_channels} per example, got {tuple(x.shape)} and "
                f"{tuple(control.shape)}."
            )
        emb_c = self._embed_copy(t, y, B, x.device)
        h = F.silu(self.inp(v) + self.hint(c))  # (B, hidden)
        for layer, proj in zip(self.layers, self.emb_projs):
            h = F.silu(layer(h) + proj(emb_c))
        copy_out = h  # (B, hidden), the copy's encoder output

        emb = base.time_embed(networks._as_batch_time(t, B, x.device))
        if base.label_embed is not None:
            emb = emb + base.label_embed(y, batch_size=B)
        h = F.silu(base.inp(v))
        decoder = list(zip(base.layers, base.emb_projs))
        for layer, proj in decoder[: self.num_encoder]:
            h = F.silu(layer(h) + proj(emb))
        for (layer, proj), zero in zip(decoder[self.num_encoder :], self.zero_joins):
            h = F.silu(layer(h + zero(copy_out)) + proj(emb))
        out = base.out(h + self.zero_joins[-1](copy_out))  # (B, D)
        return out.view(x.shape)

    def forward(self, x_t: Tensor, t: Tensor, control: Tensor, y: Tensor | None = None) -> Tensor:
        if self.kind == "unet":
            return self._forward_unet(x_t, t, control, y)
        return self._forward_mlp(x_t, t, control, y)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The copy, the hint block and the zero layers: everything but the frozen base."""
        return [p for p in self.parameters() if p.requires_grad]


class ControlledDiffusion(ddpm.Diffusion):
    """A ``ddpm.Diffusion`` whose network is a ``ControlNet``; the control is the condition.

    ``loss(x)`` computes the control from the data itself, ``control_fn(x)`` (``x`` in the data
    range), and trains on the base's objective (same schedule, same prediction target); only the
    ControlNet's copy and zero layers learn. ``sample(n, control)`` (``control`` (n, ...)) runs
    any of ``Diffusion.sample``'s samplers with ε(x_t, t, control). Guidance is not supported.
    """

    def __init__(
        self, base: ddpm.Diffusion, controlnet: ControlNet, control_fn: Callable[[Tensor], Tensor]
    ):
        if base.num_classes is not None:
            raise ValueError("ControlledDiffusion wraps an unconditional base model.")
        super().__init__(
            controlnet,
            base.schedule,
            data_shape=base.data_shape,
            prediction=base.prediction,
            data_range=base.data_range,
        )
        self.control_fn = control_fn

    def loss(self, x: Tensor, y: Tensor | None = None, **kwargs) -> dict[str, Tensor]:
        """Diffusion's loss with ε_θ(x_t, t, control_fn(x)); ``y`` (a given control) overrides."""
        control = self.control_fn(x) if y is None else y
        return super().loss(x, control, **kwargs)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, **kwargs) -> Tensor:
        """``n`` samples obeying the control ``y`` (n, ...), e.g. ``control_fn(reference)``."""
        if y is None:
            raise ValueError("ControlledDiffusion.sample needs the control: sample(n, control).")
        if kwargs.get("guidance_scale") not in (None, 1.0):
            raise ValueError("ControlledDiffusion has no unconditional branch to guide with.")
        return super().sample(n, y, **kwargs)

"""Quantisers that turn a continuous latent into discrete codes.

- :class:`VectorQuantizer`: nearest-codebook VQ (van den Oord et al. 2017, eq. 3), with the
  straight-through estimator, the codebook and commitment losses, and optionally EMA codebook
  updates (their appendix A.1) and dead-code restarts (Dhariwal et al. 2020, Jukebox §3.4).
- :class:`FSQ`: finite scalar quantisation (Mentzer et al. 2023): each channel is bounded and
  rounded to one of ``levels[c]`` values; the implicit codebook has ``prod(levels)`` codes and
  no parameters, so no auxiliary loss is needed.
- :class:`LFQ`: lookup-free quantisation (Yu et al. 2023, MAGVIT-v2 §3.1): each channel is
  replaced by its sign, so D channels make ``2**D`` codes with no codebook; an entropy penalty
  keeps every code in use. ``normalize``: the latent is first put on the unit sphere (binary
  spherical quantisation, Zhao et al. 2024).
- :class:`GumbelQuantizer`: the dVAE's relaxed categorical (DALL-E, Ramesh et al. 2021): the
  encoder gives K logits per position, a Gumbel-softmax sample at temperature tau (Jang et al.
  2017; Maddison et al. 2017) mixes the K code vectors, with a KL to the uniform prior; hard
  (argmax) codes at evaluation.
- :class:`MultiScaleVQ`: VAR's residual tokenizer (Tian et al. 2024): the latent is the sum of
  token maps at scales 1x1, 2x2, ..., each quantising what the coarser ones left.

Both take a latent ``z`` of shape (B, D, H, W) (channels first, like a conv encoder's output)
and return a :class:`Quantized` bundle. The metrics at the end (:func:`codebook_usage`,
:func:`perplexity`) say how much of the codebook a batch of codes uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Quantized:
    """What a quantiser returns: ``z_q`` carries the straight-through gradient to ``z``."""

    z_q: Tensor  # (B, D, H, W), the quantised latent (forward value: the codes' vectors)
    codes: Tensor  # (B, H, W) int64, the code indices
    loss: Tensor  # scalar: codebook + beta * commitment (0 for FSQ and for EMA's codebook)
    codebook: Tensor  # scalar, ||sg[z] - e||^2
    commitment: Tensor  # scalar, ||z - sg[e]||^2
    kl: Tensor | None = None  # scalar, KL(q(k | x) || uniform) per position (Gumbel only)
    entropy: Tensor | None = None  # scalar, LFQ's entropy penalty before its weight (LFQ only)


# ----------------------------------------------------------------------------- the pieces


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """||z_n - e_k||^2 = ||z_n||^2 - 2 z_n.e_k + ||e_k||^2, (N, K) for z (N, D), codebook (K, D).

    The ||e_k||^2 term matters: without it, long code vectors win the argmin.
    """
    return (
        z.pow(2).sum(1, keepdim=True)  # (N, 1)
        - 2 * z @ codebook.t()  # (N, K)
        + codebook.pow(2).sum(1)[None, :]  # (1, K)
    )


def nearest_code(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest code vector, (N,) int64, for z (N, D) and codebook (K, D)."""
    return squared_distances(z, codebook).argmin(1)


def straight_through(z: Tensor, z_q: Tensor) -> Tensor:
    """Forward value z_q, gradient of the identity to z (Bengio et al. 2013): z + sg[z_q - z]."""
    return z + (z_q - z).detach()


def vq_loss_terms(z: Tensor, z_q: Tensor) -> tuple[Tensor, Tensor]:
    """(codebook, commitment) = (||sg[z] - e||^2, ||z - sg[e]||^2), means over every entry.

    The codebook term moves the codes towards the encoder outputs; the commitment term
    (weighted by beta in the loss) keeps the encoder near its codes.
    """
    return F.mse_loss(z_q, z.detach()), F.mse_loss(z, z_q.detach())


def _flat(z: Tensor) -> Tensor:
    """(B, D, H, W) -> (B*H*W, D): one latent vector per grid position."""
    if z.dim() != 4:
        raise ValueError(
            f"a quantiser takes a latent grid (B, D, H, W), got shape {tuple(z.shape)}; "
            "for vectors (N, D) use z[:, :, None, None]."
        )
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*H*W, D)


def _grid(flat: Tensor, like: Tensor) -> Tensor:
    """(B*H*W, D) -> (B, D, H, W), the inverse of :func:`_flat`."""
    B, D, H, W = like.shape
    return flat.view(B, H, W, D).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- VQ


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation of (B, D, H, W) latents onto K learned code vectors.

    Args:
        num_codes: K.
        dim: D, the code vectors' length (the encoder's output channels).
        beta: the commitment weight (0.25 in van den Oord et al.).
        ema: None to learn the codebook by gradient (the codebook loss); a decay (e.g. 0.99)
            to update it instead as an exponential moving average of the encoder outputs
            assigned to each code (no codebook loss then).
        restart: with ``ema``, replace codes whose moving-average count falls below
            ``restart_threshold`` by random encoder outputs of the current batch.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        beta: float = 0.25,
        ema: float | None = None,
        restart: bool = False,
        restart_threshold: float = 1.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ValueError(f"need num_codes >= 2 and dim >= 1, got {num_codes}, {dim}.")
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"ema is a decay in (0, 1), got {ema}.")
        if restart and ema is None:
            raise ValueError("dead-code restarts use the EMA counts: pass ema=0.99 as well.")
        self.num_codes, self.dim, self.beta = int(num_codes), int(dim), float(beta)
        self.decay, self.restart, self.threshold, self.eps = ema, restart, restart_threshold, eps
        init = torch.randn(num_codes, dim) / math.sqrt(dim)
        if ema is None:
            self.embedding = nn.Parameter(init)  # (K, D), learned by the codebook loss
        else:
            self.register_buffer("embedding", init)  # (K, D), set from the EMA statistics
            self.register_buffer("cluster_size", torch.ones(num_codes))  # N_k
            self.register_buffer("embed_sum", init.clone())  # m_k = sum of z assigned to k

    @property
    def codebook_vectors(self) -> Tensor:
        return self.embedding

    def forward(self, z: Tensor) -> Quantized:
        flat = _flat(z)  # (N, D)
        codes = nearest_code(flat.detach(), self.embedding.detach())  # (N,)
        # the vectors the codes were chosen against: read before the EMA update moves them
        chosen = self.embedding[codes]  # (N, D), a copy (advanced indexing)
        if self.training and self.decay is not None:
            self._ema_update(flat.detach(), codes)
        codebook, commitment = vq_loss_terms(flat, chosen)
        loss = self.beta * commitment + (codebook if self.decay is None else 0.0)
        z_q = _grid(straight_through(flat, chosen), z)  # (B, D, H, W)
        B, _, H, W = z.shape
        return Quantized(z_q, codes.view(B, H, W), loss, codebook, commitment)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes: Tensor) -> None:
        """N_k <- d N_k + (1-d) n_k, m_k <- d m_k + (1-d) sum z, e_k = m_k / N_k (Laplace-smoothed)."""
        onehot = F.one_hot(codes, self.num_codes).type_as(flat)  # (N, K)
        d = self.decay
        self.cluster_size.mul_(d).add_(onehot.sum(0), alpha=1 - d)
        self.embed_sum.mul_(d).add_(onehot.t() @ flat, alpha=1 - d)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.embed_sum / smoothed[:, None])
        if self.restart:
            dead = self.cluster_size < self.threshold  # (K,)
            n_dead = int(dead.sum())
            if n_dead:
                pick = torch.randint(0, len(flat), (n_dead,), device=flat.device)
                self.embedding[dead] = flat[pick]
                self.embed_sum[dead] = flat[pick] * self.threshold
                self.cluster_size[dead] = self.threshold

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes (B, H, W) -> their vectors as a latent grid (B, D, H, W)."""
        return self.embedding[codes].permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- FSQ


class FSQ(nn.Module):
    """Finite scalar quantisation: channel c is bounded and rounded to ``levels[c]`` values.

    Channel c of z goes through tanh scaled to about (-L/2, L/2), then to the nearest integer
    (straight-through), then is divided by L // 2 so values lie in [-1, 1]. A code is the
    mixed-radix number of the D rounded channels: ``prod(levels)`` codes in all.
    """

    def __init__(self, levels: list[int] | tuple[int, ...]):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ needs at least one channel with >= 2 levels, got {levels}.")
        self.levels = levels
        self.dim = len(levels)
        self.num_codes = math.prod(levels)
        L = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("_L", L)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1]), 0)  # mixed-radix place values
        self.register_buffer("_basis", basis)
        self.beta = 0.0

    def bound(self, z: Tensor) -> Tensor:
        """(N, D) -> values in (-L/2, L/2) (offset by 1/2 for even L), before rounding."""
        half = (self._L - 1) * (1 + 1e-3) / 2  # just over (L-1)/2, as in the paper's code
        offset = torch.where(self._L % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: Tensor) -> Quantized:
        flat = _flat(z)  # (N, D)
        if flat.shape[1] != self.dim:
            raise ValueError(
                f"FSQ with levels {self.levels} needs D = {self.dim}, got {flat.shape[1]}."
            )
        bounded = self.bound(flat)
        rounded = straight_through(bounded, torch.round(bounded))  # integers, identity gradient
        half_width = torch.div(self._L, 2, rounding_mode="floor")
        codes = ((rounded.detach() + half_width) * self._basis).sum(1).long()  # (N,)
        B, _, H, W = z.shape
        zero = flat.new_zeros(())
        return Quantized(_grid(rounded / half_width, z), codes.view(B, H, W), zero, zero, zero)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes (B, H, W) -> the quantised latent grid (B, D, H, W)."""
        digits = (codes[..., None] // self._basis) % self._L.long()  # (B, H, W, D)
        half_width = torch.div(self._L, 2, rounding_mode="floor")
        return ((digits - half_width) / half_width).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- LFQ


def entropy(p: Tensor) -> Tensor:
    """Entropy in nats of the distributions p (..., K) over the last axis, (...)."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def lfq_entropy_penalty(
    z: Tensor, codebook: Tensor, inv_temperature: float, gamma: float
) -> Tensor:
    """E_n[H(p_n)] - gamma H(E_n[p_n]), p_n = softmax_k(-inv_temperature ||z_n - c_k||^2), for
    latents z (N, D) and codes (K, D): low for confident positions spread over every code."""
    p = torch.softmax(-inv_temperature * squared_distances(z, codebook), dim=-1)  # (N, K)
    return entropy(p).mean() - gamma * entropy(p.mean(0))


class LFQ(nn.Module):
    """Lookup-free quantisation: channel c of the latent becomes sign(z_c).

    The implicit codebook is the ``2**bits`` corners of the cube {-1, +1}^bits (with
    ``normalize``: of the sphere, {-1, +1}^bits / sqrt(bits)); a code is the binary number of
    the positive channels, the first channel the most significant bit (as in
    ``vector_quantize_pytorch.LFQ``). Nothing is looked up, so the cost of quantising does not
    grow with the number of codes; only the entropy penalty below sums over all of them.

    Loss (MAGVIT-v2, eq. 5, with the commitment term of VQ-VAE):

        beta ||z - sg[q]||^2 + entropy_weight (E_n[H(p_n)] - gamma H(E_n[p_n])),
        p_n(k) = softmax_k(-inv_temperature ||z_n - c_k||^2).

    The first entropy makes each position confident of one code; the second, subtracted, is
    the entropy of the batch's average code distribution: maximising it spreads the batch
    over every code, which is what keeps the usage up with no codebook to restart.

    Args:
        bits: D, the latent channels; ``2**bits`` codes.
        entropy_weight, gamma, inv_temperature: the entropy penalty's weight, the weight of its
            diversity term, and the sharpness of the soft assignment p_n.
        beta: the commitment weight.
        normalize: divide each latent vector by its length before quantising (the codes then
            lie on the unit sphere, so the commitment term cannot grow with ||z||).
    """

    def __init__(
        self, bits: int, *, entropy_weight: float = 0.1, gamma: float = 1.0,
        inv_temperature: float = 100.0, beta: float = 0.25, normalize: bool = False,
    ):  # fmt: skip
        super().__init__()
        if not 1 <= bits <= 16:
            raise ValueError(
                f"LFQ needs 1 <= bits <= 16 (its entropy penalty sums over 2**bits codes), "
                f"got {bits}."
            )
        self.bits, self.dim, self.num_codes = int(bits), int(bits), 2 ** int(bits)
        self.entropy_weight, self.gamma = float(entropy_weight), float(gamma)
        self.inv_temperature, self.beta, self.normalize = (
            float(inv_temperature),
            float(beta),
            normalize,
        )
        self.scale = 1 / math.sqrt(bits) if normalize else 1.0  # the codes' coordinate size
        self.register_buffer("_mask", 2 ** torch.arange(bits - 1, -1, -1))  # (D,) place values
        every = torch.arange(self.num_codes)[:, None].bitwise_and(self._mask) != 0  # (2^D, D)
        self.register_buffer("codebook", torch.where(every, 1.0, -1.0) * self.scale)

    @property
    def codebook_vectors(self) -> Tensor:
        return self.codebook

    def entropy_penalty(self, flat: Tensor) -> Tensor:
        """E_n[H(p_n)] - gamma H(E_n[p_n]) for latents (N, D), p_n over the 2^D corners."""
        return lfq_entropy_penalty(flat.float(), self.codebook, self.inv_temperature, self.gamma)

    def forward(self, z: Tensor) -> Quantized:
        flat = _flat(z)  # (N, D)
        if flat.shape[1] != self.bits:
            raise ValueError(
                f"LFQ with {self.bits} bits needs D = {self.bits}, got {flat.shape[1]}."
            )
        if self.normalize:
            flat = F.normalize(flat, dim=1)  # (N, D), unit length
        q = torch.where(flat > 0, self.scale, -self.scale)  # (N, D), the nearest corner
        codes = ((flat > 0).long() * self._mask).sum(1)  # (N,)
        commitment = F.mse_loss(flat, q)
        zero = flat.new_zeros(())
        ent = self.entropy_penalty(flat) if self.training else zero
        loss = self.beta * commitment + self.entropy_weight * ent
        B, _, H, W = z.shape
        z_q = _grid(straight_through(flat, q), z)  # (B, D, H, W)
        return Quantized(z_q, codes.view(B, H, W), loss, zero, commitment, entropy=ent)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes (B, H, W) -> the quantised latent grid (B, D, H, W)."""
        return self.codebook[codes].permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- Gumbel


def gumbel_noise(shape, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """Standard Gumbel noise g = -log(-log u), u ~ U(0, 1) (not -log u: that is Exp(1))."""
    u = torch.rand(shape, generator=generator).to(device).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits: Tensor, tau: float, noise: Tensor, *, hard: bool = False) -> Tensor:
    """softmax((logits + g) / tau) over the last axis; ``hard``: the one-hot of its argmax in
    the forward pass with the relaxed sample's gradient (straight-through Gumbel-softmax)."""
    soft = torch.softmax((logits + noise) / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).type_as(soft)
    return straight_through(soft, one_hot)


def kl_to_uniform(logits: Tensor) -> Tensor:
    """KL(softmax(logits) || uniform over K) = sum_k q_k log(q_k K), mean over the leading axes."""
    logq = torch.log_softmax(logits, dim=-1)
    return (logq.exp() * (logq + math.log(logits.shape[-1]))).sum(-1).mean()


class GumbelQuantizer(nn.Module):
    """The dVAE's quantiser: K logits per position -> a relaxed one-hot -> a mix of K codes.

    The encoder outputs ``in_dim = num_codes`` logit channels; the decoder gets ``dim``
    channels, the (relaxed) one-hot times the codebook (K, dim). In training the one-hot is
    a Gumbel-softmax sample at temperature ``tau`` (``hard``: its straight-through argmax);
    in evaluation it is the argmax of the logits, so the codes are deterministic. The loss is
    ``kl_weight`` times the KL to the uniform prior over the K codes.
    """

    def __init__(
        self, num_codes: int, dim: int, *, tau: float = 1.0, kl_weight: float = 1e-3,
        hard: bool = False,
    ):  # fmt: skip
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ValueError(f"need num_codes >= 2 and dim >= 1, got {num_codes}, {dim}.")
        if tau <= 0:
            raise ValueError(f"the temperature tau must be > 0, got {tau}.")
        self.num_codes, self.dim, self.in_dim = int(num_codes), int(dim), int(num_codes)
        self.tau, self.kl_weight, self.hard = float(tau), float(kl_weight), hard
        self.embedding = nn.Parameter(torch.randn(num_codes, dim) / math.sqrt(dim))  # (K, D)

    @property
    def codebook_vectors(self) -> Tensor:
        return self.embedding

    def forward(self, z: Tensor) -> Quantized:
        logits = _flat(z)  # (N, K)
        if logits.shape[1] != self.num_codes:
            raise ValueError(
                f"GumbelQuantizer takes {self.num_codes} logit channels (in_dim), "
                f"got {logits.shape[1]}."
            )
        codes = logits.argmax(1)  # (N,)
        if self.training:
            g = gumbel_noise(logits.shape, device=logits.device)
            weights = gumbel_softmax(logits, self.tau, g, hard=self.hard)  # (N, K)
        else:
            weights = F.one_hot(codes, self.num_codes).type_as(logits)
        kl = kl_to_uniform(logits)
        B, _, H, W = z.shape
        z_q = (weights @ self.embedding).view(B, H, W, self.dim).permute(0, 3, 1, 2)
        zero = logits.new_zeros(())
        return Quantized(z_q, codes.view(B, H, W), self.kl_weight * kl, zero, zero, kl)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes (B, H, W) -> their vectors as a latent grid (B, D, H, W)."""
        return self.embedding[codes].permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- multi-scale


class MultiScaleVQ(nn.Module):
    """VAR's multi-scale residual quantiser over one shared EMA codebook (Tian et al. 2024).

    For scales s_1 < ... < s_n = H (e.g. 1, 2, 4 for a 4x4 latent): the residual r (first the
    latent z) is area-downsampled to s_k x s_k, quantised (:class:`VectorQuantizer`), the codes'
    vectors are upsampled back to H x W and subtracted from r. The quantised latent is the sum
    of the upsampled maps; its codes are the n token maps flattened and concatenated, coarse
    to fine: ``token_shape = (sum s_k^2,)``. Loss: beta ||z - sg[sum]||^2. The codebook is
    updated once per step by EMA over the residuals of every scale together (one update per
    scale would let each scale's dead-code restarts undo the others').

    ``shared=False``: one codebook of ``num_codes`` per scale instead (code k of scale 1 and
    code k of scale 3 are different vectors), each updated by EMA over its own scale's
    residuals, with its own restarts. On the 8x8 digits the shared codebook sends every
    image's 1x1 residual to the same code, so the coarsest map carries nothing (lecture 07).
    """

    def __init__(
        self, num_codes: int, dim: int, scales=(1, 2, 4), *, beta: float = 0.25,
        ema: float = 0.99, restart: bool = True, restart_threshold: float = 1.0,
        shared: bool = True,
    ):  # fmt: skip
        super().__init__()
        scales = tuple(int(s) for s in scales)
        if not scales or list(scales) != sorted(set(scales)) or scales[0] < 1:
            raise ValueError(f"scales must increase from >= 1, got {scales}.")
        self.scales, self.beta, self.shared = scales, float(beta), bool(shared)
        make = lambda: VectorQuantizer(  # noqa: E731
            num_codes, dim, beta=beta, ema=ema, restart=restart, restart_threshold=restart_threshold
        )
        if shared:
            self.vq = make()
        else:
            self.vqs = nn.ModuleList([make() for _ in scales])
        self.num_codes, self.dim = int(num_codes), int(dim)
        self.token_shape = (sum(s * s for s in scales),)

    def scale_vq(self, k: int) -> VectorQuantizer:
        """The quantiser (codebook) of scale k: the shared one, or scale k's own."""
        return self.vq if self.shared else self.vqs[k]

    @property
    def codebook_vectors(self) -> Tensor:
        return self.vq.embedding if self.shared else torch.cat([q.embedding for q in self.vqs])

    def lookup_scale(self, k: int, codes: Tensor) -> Tensor:
        """Scale k's codes (B, s, s) -> their vectors upsampled to the latent (B, D, H, W)."""
        return self.upsample(self.scale_vq(k).lookup(codes), self.scales[-1])

    def upsample(self, z: Tensor, size: int) -> Tensor:
        """A scale's (B, D, s, s) map -> (B, D, size, size), bilinear."""
        if z.shape[-1] == size:
            return z
        return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)

    def split(self, codes: Tensor) -> list[Tensor]:
        """(B, sum s^2) codes -> one (B, s, s) map per scale."""
        sizes = [s * s for s in self.scales]
        return [c.view(-1, s, s) for c, s in zip(codes.split(sizes, dim=1), self.scales)]

    def forward(self, z: Tensor) -> Quantized:
        B, D, H, W = z.shape
        if H != W or H != self.scales[-1]:
            raise ValueError(
                f"MultiScaleVQ with scales {self.scales} needs a square {self.scales[-1]}x"
                f"{self.scales[-1]} latent, got {H}x{W}."
            )
        residual, total, codes, flats = z.detach(), torch.zeros_like(z), [], []
        for k, s in enumerate(self.scales):
            embedding = self.scale_vq(k).embedding.detach()
            flat = _flat(F.adaptive_avg_pool2d(residual, s))  # (B*s*s, D)
            c = nearest_code(flat, embedding)
            up = self.upsample(embedding[c].view(B, s, s, D).permute(0, 3, 1, 2), H)
            residual, total = residual - up, total + up
            codes.append(c.view(B, s * s))
            flats.append(flat)
        if self.training and self.shared:  # one EMA step (and restarts) over every scale
            self.vq._ema_update(torch.cat(flats), torch.cat([c.flatten() for c in codes]))
        elif self.training:  # each scale's codebook from its own residuals
            for k, (flat, c) in enumerate(zip(flats, codes)):
                self.vqs[k]._ema_update(flat, c.flatten())
        commitment = F.mse_loss(z, total)
        zero = z.new_zeros(())
        return Quantized(
            straight_through(z, total), torch.cat(codes, 1), self.beta * commitment, zero,
            commitment,
        )  # fmt: skip

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes (B, sum s^2) -> the quantised latent (B, D, H, W): the upsampled sum."""
        return sum(self.lookup_scale(k, c) for k, c in enumerate(self.split(codes)))

    def partial_sums(self, codes: Tensor) -> list[Tensor]:
        """The latent accumulated from the scales before each scale: n maps (B, D, H, W), the
        first zero. VAR's Transformer reads scale k's input from the k-th of them."""
        H = self.scales[-1]
        total = self.codebook_vectors.new_zeros(len(codes), self.dim, H, H)
        out = []
        for k, c in enumerate(self.split(codes)):
            out.append(total)
            total = total + self.lookup_scale(k, c)
        return out


# ----------------------------------------------------------------------------- metrics


def code_histogram(codes: Tensor, num_codes: int) -> Tensor:
    """How often each code occurs, (K,) probabilities."""
    counts = torch.bincount(codes.flatten(), minlength=num_codes).double()
    return counts / counts.sum()


def codebook_usage(codes: Tensor, num_codes: int) -> float:
    """The fraction of the K codes that occur at least once in ``codes``."""
    return float((code_histogram(codes, num_codes) > 0).double().mean())


def perplexity(codes: Tensor, num_codes: int) -> float:
    """exp(entropy of the code histogram): K for uniform use, 1 when one code is used."""
    p = code_histogram(codes, num_codes)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))

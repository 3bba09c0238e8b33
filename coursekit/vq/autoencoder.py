"""A VQ autoencoder (the tokenizer) and a token model (tokenizer + autoregressive prior).

:class:`VQAutoencoder` (van den Oord et al. 2017): a conv encoder maps an image (C, H, W) to a
latent grid (D, H/2, W/2), a quantiser (``VectorQuantizer``, ``FSQ``, ``LFQ``, ...) picks a code per
position, a conv decoder reconstructs. Its loss is the squared reconstruction error plus the
quantiser's codebook and commitment terms. Under the uniform prior of the ELBO view, sampling
decodes uniformly random codes (poor samples: that is why a prior over the codes is learned).

:class:`TokenModel` puts a learned prior (``coursekit.autoregressive.TokenPrior``) over a
trained tokenizer's code grid: ``sample`` draws codes from the prior and decodes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models
from coursekit.vq.quantizers import FSQ, LFQ, GumbelQuantizer, MultiScaleVQ, VectorQuantizer


def conv_encoder(channels: int, dim: int, hidden: int = 64) -> nn.Module:
    """(B, C, H, W) -> (B, dim, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 4, stride=2, padding=1),  # (B, hidden, H/2, W/2)
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, dim, 1),
    )


def conv_decoder(channels: int, dim: int, hidden: int = 64) -> nn.Module:
    """(B, dim, H/2, W/2) -> (B, C, H, W) logits (a sigmoid maps them into [0, 1])."""
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1),  # (B, hidden, H, W)
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, channels, 3, padding=1),
    )


class VQAutoencoder(models.GenerativeModel):
    """Encoder -> quantiser -> decoder on images in [0, 1].

    Args:
        quantizer: a ``VectorQuantizer`` or ``FSQ`` (its ``dim`` sets the latent channels).
        data_shape: (C, H, W) of one image, H and W even.
        hidden: channels of the conv encoder and decoder.
    """

    likelihood_hint = (
        "A VQ autoencoder is a deterministic tokenizer: its loss is a reconstruction error, not "
        "a likelihood. Put a TokenPrior over its codes (TokenModel) and use the prior's "
        "log_prob(codes) for bits per image of the tokens."
    )

    def __init__(self, quantizer: nn.Module, data_shape=(1, 8, 8), *, hidden: int = 64):
        super().__init__()
        C, H, W = data_shape
        if H % 2 or W % 2:
            raise ValueError(f"the encoder halves H and W: pass even sizes, got {data_shape}.")
        self.data_shape = tuple(data_shape)
        self.grid_shape = (H // 2, W // 2)
        # the prior's data: the code grid, or a quantiser's own layout (multi-scale: a sequence)
        self.token_shape = tuple(getattr(quantizer, "token_shape", self.grid_shape))
        self.quantizer = quantizer
        self.encoder = conv_encoder(C, getattr(quantizer, "in_dim", quantizer.dim), hidden)
        self.decoder = conv_decoder(C, quantizer.dim, hidden)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def quantize(self, x: Tensor):
        """Images (B, C, H, W) -> the quantiser's ``Quantized`` bundle."""
        models.check_data(self, x)
        return self.quantizer(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> codes (B, *token_shape) int64 (the (H/2, W/2) grid for VQ)."""
        was = self.training
        self.eval()
        codes = self.quantize(x).codes
        self.train(was)
        return codes

    def decode_latent(self, z_q: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z_q))  # (B, C, H, W) in [0, 1]

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, *token_shape) -> images (B, C, H, W) in [0, 1]."""
        return self.decode_latent(self.quantizer.lookup(codes))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        q = self.quantize(x)
        recon = F.mse_loss(self.decode_latent(q.z_q), x)
        terms = {
            "loss": recon + q.loss,
            "recon": recon.detach(),
            "codebook": q.codebook.detach(),
            "commitment": q.commitment.detach(),
        }
        if q.kl is not None:
            terms["kl"] = q.kl.detach()
        if q.entropy is not None:
            terms["entropy"] = q.entropy.detach()
        return terms

    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Decode uniformly random codes: the ELBO view's uniform prior (not a good sampler)."""
        codes = torch.randint(0, self.num_codes, (n, *self.token_shape), generator=generator)
        return self.decode(codes.to(self.device))


class TokenModel(models.GenerativeModel):
    """A trained tokenizer with a prior over its codes: sample codes, decode them.

    ``loss(x, y)`` trains the prior on the tokenizer's codes of x (the tokenizer is frozen).
    """

    likelihood_hint = (
        "The decoder is deterministic, so images have no density here; the prior's "
        "log_prob(tokenizer.encode(x)) is the exact log-probability of the tokens."
    )

    def __init__(self, tokenizer: VQAutoencoder, prior: nn.Module):
        super().__init__()
        if (
            tuple(prior.data_shape) != tokenizer.token_shape
            or prior.vocab_size != tokenizer.num_codes
        ):
            raise ValueError(
                f"the prior models grids {tuple(prior.data_shape)} over {prior.vocab_size} codes, "
                f"the tokenizer makes {tokenizer.token_shape} over {tokenizer.num_codes}."
            )
        self.tokenizer, self.prior = tokenizer, prior
        self.data_shape = tokenizer.data_shape
        for p in tokenizer.parameters():
            p.requires_grad_(False)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        return self.prior.loss(self.tokenizer.encode(x), y)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **prior_kwargs,
    ) -> Tensor:
        codes = self.prior.sample(n, y, generator=generator, **prior_kwargs)
        return self.tokenizer.decode(codes)


@models.register_conformance("vq-autoencoder")
def _tiny_vq() -> models.ConformanceCase:
    gen = torch.Generator().manual_seed(0)
    model = VQAutoencoder(VectorQuantizer(8, 3), (1, 8, 8), hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=gen)
    return models.ConformanceCase(model=model, x=x, data_range=(0.0, 1.0), checks_input=True)


@models.register_conformance("fsq-autoencoder")
def _tiny_fsq() -> models.ConformanceCase:
    gen = torch.Generator().manual_seed(0)
    model = VQAutoencoder(FSQ([3, 4]), (1, 8, 8), hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=gen)
    return models.ConformanceCase(model=model, x=x, data_range=(0.0, 1.0), checks_input=True)


@models.register_conformance("lfq-autoencoder")
def _tiny_lfq() -> models.ConformanceCase:
    gen = torch.Generator().manual_seed(0)
    model = VQAutoencoder(LFQ(3, normalize=True), (1, 8, 8), hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=gen)
    return models.ConformanceCase(model=model, x=x, data_range=(0.0, 1.0), checks_input=True)


@models.register_conformance("gumbel-autoencoder")
def _tiny_gumbel() -> models.ConformanceCase:
    gen = torch.Generator().manual_seed(0)
    model = VQAutoencoder(GumbelQuantizer(6, 3), (1, 8, 8), hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=gen)
    return models.ConformanceCase(model=model, x=x, data_range=(0.0, 1.0), checks_input=True)


@models.register_conformance("multiscale-autoencoder")
def _tiny_multiscale() -> models.ConformanceCase:
    gen = torch.Generator().manual_seed(0)
    model = VQAutoencoder(MultiScaleVQ(8, 3, (1, 2, 4)), (1, 8, 8), hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=gen)
    return models.ConformanceCase(model=model, x=x, data_range=(0.0, 1.0), checks_input=True)

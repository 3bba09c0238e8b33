"""VQ tokenizers (Lecture 07): quantisers, their usage metrics, the VQ autoencoder."""

from coursekit.vq.autoencoder import TokenModel, VQAutoencoder, conv_decoder, conv_encoder
from coursekit.vq.quantizers import (
    FSQ,
    Quantized,
    VectorQuantizer,
    code_histogram,
    codebook_usage,
    nearest_code,
    perplexity,
    squared_distances,
    straight_through,
    vq_loss_terms,
)

__all__ = [
    "FSQ",
    "Quantized",
    "TokenModel",
    "VQAutoencoder",
    "VectorQuantizer",
    "code_histogram",
    "codebook_usage",
    "conv_decoder",
    "conv_encoder",
    "nearest_code",
    "perplexity",
    "squared_distances",
    "straight_through",
    "vq_loss_terms",
]

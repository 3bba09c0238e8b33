"""VQ tokenizers (Lecture 07): quantisers, their usage metrics, the VQ autoencoder, VQ-GAN's
training step, VAR's next-scale prior and a DALL-E-style caption prior."""

from coursekit.vq.autoencoder import TokenModel, VQAutoencoder, conv_decoder, conv_encoder
from coursekit.vq.captions import CaptionPrior, Vocabulary, class_medians, is_bold, make_captions
from coursekit.vq.quantizers import (
    FSQ,
    LFQ,
    GumbelQuantizer,
    MultiScaleVQ,
    Quantized,
    VectorQuantizer,
    code_histogram,
    codebook_usage,
    entropy,
    gumbel_noise,
    gumbel_softmax,
    kl_to_uniform,
    lfq_entropy_penalty,
    nearest_code,
    perplexity,
    squared_distances,
    straight_through,
    vq_loss_terms,
)
from coursekit.vq.var import ScalePrior, block_causal_mask
from coursekit.vq.vqgan import PatchDiscriminator, VQGANStep

__all__ = [
    "FSQ",
    "CaptionPrior",
    "GumbelQuantizer",
    "LFQ",
    "MultiScaleVQ",
    "PatchDiscriminator",
    "Quantized",
    "ScalePrior",
    "TokenModel",
    "VQAutoencoder",
    "VQGANStep",
    "VectorQuantizer",
    "Vocabulary",
    "block_causal_mask",
    "class_medians",
    "code_histogram",
    "codebook_usage",
    "conv_decoder",
    "conv_encoder",
    "entropy",
    "gumbel_noise",
    "gumbel_softmax",
    "is_bold",
    "kl_to_uniform",
    "lfq_entropy_penalty",
    "make_captions",
    "nearest_code",
    "perplexity",
    "squared_distances",
    "straight_through",
    "vq_loss_terms",
]

"""Autoregressive models (lecture 03): p(x) = prod_i p(x_i | x_<i).

One concept per file:

- ``base``: the chain rule as a model class (log_prob, loss, ancestral sampling);
- ``simple``: a full table (``Histogram``), ``FVSBN`` and ``NADE``;
- ``made``: masked MLPs, order-agnostic training and ensembles;
- ``pixelcnn``: masked convolutions, the blind spot, the gated PixelCNN;
- ``wavenet``: dilated causal 1-D convolutions for audio;
- ``transformer``: a causal Transformer with a key/value cache;
- ``tokens``: a class-conditional prior over the token grid of a VQ tokenizer, with
  classifier-free guidance (``TokenPrior``).

The arithmetic coder that turns any of them into a lossless compressor is
``coursekit.autoregressive.coding``.
"""

from coursekit.autoregressive.base import Autoregressive, sample_categorical
from coursekit.autoregressive.made import MADE, MaskedLinear, made_masks
from coursekit.autoregressive.pixelcnn import GatedPixelCNN, MaskedConv2d, PixelCNN, pixelcnn_mask
from coursekit.autoregressive.simple import FVSBN, NADE, Histogram, order_mask
from coursekit.autoregressive.tokens import TokenPrior
from coursekit.autoregressive.transformer import CausalTransformer, causal_mask
from coursekit.autoregressive.wavenet import CausalConv1d, WaveNet

__all__ = [
    "FVSBN",
    "MADE",
    "NADE",
    "Autoregressive",
    "CausalConv1d",
    "CausalTransformer",
    "GatedPixelCNN",
    "Histogram",
    "MaskedConv2d",
    "MaskedLinear",
    "PixelCNN",
    "TokenPrior",
    "WaveNet",
    "causal_mask",
    "made_masks",
    "order_mask",
    "pixelcnn_mask",
    "sample_categorical",
]

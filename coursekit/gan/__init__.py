"""Generative adversarial networks (lecture 05): losses, penalties, networks, a ``GAN`` model.

Everything trains through ``train.Adversarial`` + ``train.fit``; see ``coursekit.train``.
"""

from coursekit.gan.inversion import (
    AttributeDirection,
    Inversion,
    LatentEncoder,
    attribute_direction,
    invert,
)  # fmt: skip
from coursekit.gan.losses import (
    d_gan,
    d_hinge,
    d_wasserstein,
    g_hinge,
    g_nonsaturating,
    g_saturating,
    g_wasserstein,
    generator_grad_vs_d,
)  # fmt: skip
from coursekit.gan.metrics import mode_coverage, ring_centers, ring_of_gaussians
from coursekit.gan.model import GAN
from coursekit.gan.networks import DCCritic, DCGenerator, MLPCritic, MLPGenerator
from coursekit.gan.penalties import (
    clip_weights_after_step,
    gradient_penalty,
    interpolate,
    r1_penalty,
    wgan_gp,
)  # fmt: skip
from coursekit.gan.stylegan import (
    MappingNetwork,
    ModulatedConv2d,
    NoiseInjection,
    StyleGAN,
    StyleGenerator,
    mix_styles,
)  # fmt: skip
from coursekit.gan.translation import (
    CycleGAN,
    PatchCritic,
    Pix2Pix,
    Translator,
    cycle_consistency_loss,
    edges,
    thicken,
)  # fmt: skip
from coursekit.gan.unrolled import UnrolledAdversarial, unrolled_params

__all__ = [
    "GAN",
    "CycleGAN",
    "PatchCritic",
    "Pix2Pix",
    "Translator",
    "cycle_consistency_loss",
    "edges",
    "thicken",
    "Inversion",
    "LatentEncoder",
    "AttributeDirection",
    "attribute_direction",
    "MappingNetwork",
    "ModulatedConv2d",
    "NoiseInjection",
    "StyleGAN",
    "StyleGenerator",
    "invert",
    "mix_styles",
    "DCCritic",
    "DCGenerator",
    "MLPCritic",
    "MLPGenerator",
    "clip_weights_after_step",
    "d_gan",
    "d_hinge",
    "d_wasserstein",
    "g_hinge",
    "g_nonsaturating",
    "g_saturating",
    "g_wasserstein",
    "generator_grad_vs_d",
    "gradient_penalty",
    "interpolate",
    "mode_coverage",
    "r1_penalty",
    "ring_centers",
    "ring_of_gaussians",
    "wgan_gp",
    "UnrolledAdversarial",
    "unrolled_params",
]

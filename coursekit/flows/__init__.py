"""Normalizing flows (lecture 04): invertible maps with tractable log-determinants.

One concept per file:

- ``base``: the ``Flow`` convention (forward x -> z with log|det dz/dx|), composition, and
  ``FlowModel``, a flow with a standard normal base on the course's model interface;
- ``planar``: planar and radial flows (Rezende & Mohamed 2015);
- ``coupling``: additive and affine couplings (NICE, RealNVP), checkerboard and channel masks;
- ``spline``: rational-quadratic spline couplings (Neural Spline Flows, Durkan et al. 2019);
- ``glow``: ActNorm, invertible 1x1 convolutions (plain and LU), squeeze, multi-scale split;
- ``autoregressive``: MAF and IAF on lecture 03's MADE masks;
- ``conditional``: conditional couplings and ``ConditionalFlowModel`` (p(x | y): classes,
  super-resolution), ``PairedFlow`` (the C-Flow idea: one flow encodes, another generates);
- ``dequantization``: from discrete levels to densities and back (uniform and variational),
  with the bits/dim offset for the number of levels;
- ``builders``: ready-made stacks.
"""

from coursekit.flows import builders
from coursekit.flows.autoregressive import IAF, MAF, MADEConditioner
from coursekit.flows.base import (
    Compose,
    ElementwiseAffine,
    Flow,
    FlowModel,
    Reshape,
    Reverse,
    standard_normal_log_prob,
)
from coursekit.flows.conditional import (
    ConditionalAffineCoupling,
    ConditionalCompose,
    ConditionalFlow,
    ConditionalFlowModel,
    OneHot,
    PairedFlow,
    conditional_coupling_stack,
)
from coursekit.flows.coupling import (
    AffineCoupling,
    ConvNet,
    MLPNet,
    channel_mask,
    checkerboard_mask,
)
from coursekit.flows.dequantization import (
    DequantizedFlow,
    HistogramCDF,
    Logit,
    UniformDequantizer,
    VariationalDequantizer,
)
from coursekit.flows.glow import ActNorm, InvConv1x1, Split, Squeeze
from coursekit.flows.planar import Planar, Radial

__all__ = [
    "IAF",
    "MAF",
    "ActNorm",
    "AffineCoupling",
    "Compose",
    "ConditionalAffineCoupling",
    "ConditionalCompose",
    "ConditionalFlow",
    "ConditionalFlowModel",
    "ConvNet",
    "DequantizedFlow",
    "ElementwiseAffine",
    "Flow",
    "FlowModel",
    "HistogramCDF",
    "InvConv1x1",
    "Logit",
    "MADEConditioner",
    "MLPNet",
    "OneHot",
    "PairedFlow",
    "Planar",
    "Radial",
    "Reshape",
    "Reverse",
    "Split",
    "Squeeze",
    "UniformDequantizer",
    "VariationalDequantizer",
    "builders",
    "channel_mask",
    "checkerboard_mask",
    "conditional_coupling_stack",
    "standard_normal_log_prob",
]

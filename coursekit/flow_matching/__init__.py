"""Flow matching and rectified flow (lecture 08).

Convention (Lipman et al., 2023): flow time s = 0 is noise, s = 1 is data; the linear path
x_s = (1 − s) x₀ + s x₁ has the velocity x₁ − x₀. One concept per file:

- ``loss``: the conditional flow-matching loss over any affine path of ``coursekit.paths``;
- ``coupling``: minibatch optimal-transport pairing of noise and data, and its cost;
- ``model``: ``FlowMatching`` (sampling with any solver, ODE log-likelihood, OT coupling,
  classifier-free guidance) and ``PairedObjective`` (reflow and one-step distillation);
- ``reflow``: the (noise, ODE endpoint) pairs of reflow and Liu et al.'s straightness.
"""

from coursekit.flow_matching.coupling import (
    ot_pair,
    ot_permutation,
    squared_distances,
    transport_cost,
)
from coursekit.flow_matching.loss import (
    cfm_loss,
    cfm_target,
    data_to_velocity,
    path_time,
    path_times,
)
from coursekit.flow_matching.model import FlowMatching, PairedObjective
from coursekit.flow_matching.reflow import reflow_pairs, straightness

__all__ = [
    "FlowMatching",
    "PairedObjective",
    "cfm_loss",
    "cfm_target",
    "data_to_velocity",
    "ot_pair",
    "ot_permutation",
    "path_time",
    "path_times",
    "reflow_pairs",
    "squared_distances",
    "straightness",
    "transport_cost",
]

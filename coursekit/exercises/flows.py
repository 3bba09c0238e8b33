"""Checks for Lecture 04 (normalizing flows): each prints one ✓ / ✗ line.

The references are in ``coursekit.flows``. The convention is the lecture's: a layer's
forward maps data x to latent z and returns ``(z, log|det dz/dx|)``, one log-det per example.
The messages name the usual mistakes: a log-det with the wrong sign (the inverse direction's),
a mask that lets a dimension see itself, log-dets summed over the masked dimensions too, a log
of a negative diagonal entry (log|det W| needs the absolute value), the pixel count H*W
forgotten in a 1x1 convolution's log-det.

Every check runs on cases that differ in every size a student could write as a number (the
batch B, the dimension D or the channels C, the number of layers K, the height H and width W),
with one layer as the end of the layer loop; ``seed=0`` starts with the notebook's inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from coursekit import check
from coursekit import flows as ref

# ----------------------------------------------------------------------------- 1. log-density


def reference_log_prob(x: Tensor, layers: list[ref.Flow]) -> Tensor:
    """log p(x) = log N(z; 0, I) + sum_k log|det dz_k/dz_{k-1}|, z = f_K(...f_1(x))."""
    z, logdet = x, x.new_zeros(x.shape[0])
    for layer in layers:
        z, ld = layer(z)
        logdet = logdet + ld
    return ref.standard_normal_log_prob(z) + logdet


def _layers(case: check.Case) -> list[ref.Flow]:
    """K layers on (B, D): an elementwise affine, then couplings with alternating masks."""
    g = case.generator(1)
    layers: list[ref.Flow] = []
    for k in range(case.K):
        if k % 2 == 0:
            layer = ref.ElementwiseAffine(case.D)
        else:
            layer = ref.AffineCoupling(
                ref.checkerboard_mask((case.D,), k // 2 % 2), ref.MLPNet(case.D, 8)
            )
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=g))
        layers.append(layer)
    return layers


def check_flow_log_prob(
    log_prob_fn: Callable[[Tensor, list], Tensor], *, seed: int = 0
) -> check.Result:
    """``log_prob_fn(x, layers) -> (B,)``: log p(x) of a flow with a standard normal base."""
    cases = check.sizes(
        seed, B=(4, 7, 2, range(2, 10)), D=(2, 5, 3, range(2, 9)), K=(3, 5, 1, range(1, 6))
    )
    with check.exercise("flow log-density", success="change of variables, layer by layer") as ex:
        for case in ex.cases(cases):
            x = 1.5 * torch.randn(case.B, case.D, generator=case.generator(0))
            layers = _layers(case)
            with torch.no_grad():
                zs, lds = [x], []
                for layer in layers:
                    z, ld = layer(zs[-1])
                    zs.append(z)
                    lds.append(ld)
                z, total = zs[-1], torch.stack(lds).sum(0)
                base = ref.standard_normal_log_prob(z)
                expected = base + total
                const = 0.5 * case.D * math.log(2 * math.pi)
                reversed_lp = None
                if case.K > 1:
                    zr2, ldr = x, x.new_zeros(case.B)
                    for layer in reversed(layers):
                        zr2, ld = layer(zr2)
                        ldr = ldr + ld
                    reversed_lp = ref.standard_normal_log_prob(zr2) + ldr
            out = ex.call(log_prob_fn, x, layers, grad=(0,))
            ex.close(
                ex.tensor(out, what="your log-density"),
                expected,
                what="your log-density",
                hints={
                    "forgot the log-determinants: log p(x) = log p_z(f(x)) + sum of the layers' "
                    "log|det|": base,
                    "subtracted the log-determinants: with forward x -> z, log p(x) = "
                    "log p_z(z) + log|det dz/dx| (minus is the inverse direction's sign)": base
                    - total,
                    "kept only the last layer's log-det: add every layer's": (
                        base + lds[-1] if case.K > 1 else None
                    ),
                    "evaluated the base density at x instead of at z = f(x)": (
                        ref.standard_normal_log_prob(x) + total
                    ),
                    "forgot the constant -D/2 log(2 pi) of the standard normal": expected + const,
                    "applied the layers in reverse order: forward goes layer 1 first": reversed_lp,
                    "did not sum the base log-density over the dimensions (sum over dim=1)": (
                        -0.5 * z**2 - 0.5 * math.log(2 * math.pi) + total[:, None]
                    ),
                    "averaged over the batch: return one log-density per example, shape (B,)": (
                        expected.mean()
                    ),
                    "summed over the batch: return one log-density per example, shape (B,)": (
                        expected.sum()
                    ),
                },
            )
            ex.grad(out, reference_log_prob, what="your log-density")
    return ex.result


# ----------------------------------------------------------------------------- 2. affine coupling


class CouplingNet(nn.Module):
    """The exercise's conditioner: masked x (B, D) -> (shift, log_scale), each (B, D)."""

    def __init__(self, dim: int, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * dim))

    def forward(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(x_masked).chunk(2, dim=1)
        return shift, log_scale


def reference_coupling_forward(x: Tensor, mask: Tensor, net: nn.Module) -> tuple[Tensor, Tensor]:
    """z = m*x + (1-m)*(x*exp(s) + t), (t, s) = net(m*x); log|det| = sum (1-m)*s."""
    t, s = net(mask * x)
    z = mask * x + (1 - mask) * (x * s.exp() + t)
    return z, ((1 - mask) * s).sum(1)


def reference_coupling_inverse(z: Tensor, mask: Tensor, net: nn.Module) -> Tensor:
    """x = m*z + (1-m)*(z - t)*exp(-s), (t, s) = net(m*z)."""
    t, s = net(mask * z)
    return mask * z + (1 - mask) * (z - t) * (-s).exp()


def _coupling_case(case: check.Case) -> tuple[Tensor, Tensor, CouplingNet]:
    g = case.generator(0)
    x = torch.randn(case.B, case.D, generator=g)
    mask = ref.checkerboard_mask((case.D,), parity=case.index % 2)
    net = CouplingNet(case.D)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=case.generator(1)) * 0.7)
    return x, mask, net


def _coupling_cases(seed: int) -> list[check.Case]:
    return check.sizes(seed, B=(4, 6, range(2, 10)), D=(4, 7, range(3, 10)))


def check_affine_coupling(
    forward_fn: Callable[[Tensor, Tensor, nn.Module], tuple[Tensor, Tensor]],
    inverse_fn: Callable[[Tensor, Tensor, nn.Module], Tensor],
    *,
    seed: int = 0,
) -> check.Result:
    """``forward_fn(x, mask, net) -> (z, logdet)`` and ``inverse_fn(z, mask, net) -> x`` of
    RealNVP's affine coupling; ``net(x_masked) -> (shift, log_scale)``."""
    with check.exercise("affine coupling", success="forward, log-det and inverse") as ex:
        for case in ex.cases(_coupling_cases(seed)):
            x, m, net = _coupling_case(case)
            with torch.no_grad():
                z_ref, ld_ref = reference_coupling_forward(x, m, net)
                t, s = net(m * x)
                t_full, s_full = net(x)
            out = ex.call(forward_fn, x, m, net, grad=(0, 2))
            if not isinstance(out, tuple) or len(out) != 2:
                raise check.CheckFailed(
                    f"forward should return a pair (z, logdet), got {type(out).__name__}"
                )
            z, ld = out
            ex.close(
                ex.tensor(z, what="your z"),
                z_ref,
                what="your z",
                hints={
                    "gave the network x instead of the masked mask * x: the transformed "
                    "dimensions then see themselves (not triangular, not invertible)": m * x
                    + (1 - m) * (x * s_full.exp() + t_full),
                    "scaled by exp(-s) in the forward: z = x * exp(s) + t on the transformed "
                    "part": m * x + (1 - m) * (x * (-s).exp() + t),
                    "transformed every dimension: the masked part (mask = 1) passes unchanged": x
                    * s.exp()
                    + t,
                    "swapped the roles of mask and 1 - mask: mask = 1 marks the part that is "
                    "kept and fed to the network": (1 - m) * x + m * (x * s.exp() + t),
                    "added the shift before scaling: (x + t) * exp(s) instead of x * exp(s) + t": m
                    * x
                    + (1 - m) * (x + t) * s.exp(),
                },
            )
            ex.close(
                ex.tensor(ld, what="your logdet"),
                ld_ref,
                what="your logdet",
                hints={
                    "summed s over all dimensions: only the transformed ones (1 - mask) count": s.sum(
                        1
                    ),
                    "flipped the sign of the log-det (-sum s is the inverse direction's)": -ld_ref,
                    "summed exp(s): the log-det is the sum of the log-scales s themselves": (
                        (1 - m) * s.exp()
                    ).sum(1),
                    "forgot to sum over the dimensions (sum over dim=1)": (1 - m) * s,
                    "summed over the batch too: return one log-det per example, shape (B,)": ld_ref.sum(),
                    "used the network of the unmasked x for the log-det": ((1 - m) * s_full).sum(1),
                },
            )
            ex.grad(z, lambda *a: reference_coupling_forward(*a)[0], what="your z")
            ex.grad(ld, lambda *a: reference_coupling_forward(*a)[1], what="your logdet")
            x_back = ex.call(inverse_fn, z_ref, m, net, grad=(0,))
            with torch.no_grad():
                t_z, s_z = net(m * z_ref)
                t_zf, s_zf = net(z_ref)
            ex.close(
                ex.tensor(x_back, what="your inverse"),
                x,
                what="your inverse",
                rtol=1e-4,
                atol=1e-4,
                hints={
                    "multiplied by exp(s) in the inverse: undo the forward, (z - t) * exp(-s)": m
                    * z_ref
                    + (1 - m) * (z_ref - t_z) * s_z.exp(),
                    "divided before subtracting: x = (z - t) * exp(-s), not z * exp(-s) - t": m
                    * z_ref
                    + (1 - m) * (z_ref * (-s_z).exp() - t_z),
                    "gave the network z instead of mask * z": m * z_ref
                    + (1 - m) * (z_ref - t_zf) * (-s_zf).exp(),
                    "inverted every dimension: the masked part of z is already x": (z_ref - t_z)
                    * (-s_z).exp(),
                    "returned z unchanged": z_ref,
                },
            )
            ex.grad(x_back, reference_coupling_inverse, what="your inverse")
    return ex.result


# ----------------------------------------------------------------------------- 3. LU 1x1 conv


def reference_lu_conv(
    x: Tensor, P: Tensor, L: Tensor, U: Tensor, s: Tensor
) -> tuple[Tensor, Tensor]:
    """z = W x at every pixel, W = P L (U + diag(s)); log|det| = H W sum log|s| per example."""
    W = P @ L @ (U + torch.diag(s))
    z = torch.einsum("oc,bchw->bohw", W, x)
    H, Wd = x.shape[2:]
    return z, (H * Wd * s.abs().log().sum()).expand(x.shape[0])


def _lu_case(case: check.Case) -> tuple[Tensor, ...]:
    g = case.generator(0)
    C = case.C
    x = torch.randn(case.B, C, case.H, case.W, generator=g)
    P = torch.eye(C)[torch.randperm(C, generator=g)]
    L = torch.tril(0.5 * torch.randn(C, C, generator=g), -1) + torch.eye(C)
    U = torch.triu(0.5 * torch.randn(C, C, generator=g), 1)
    s = torch.exp(0.5 * torch.randn(C, generator=g))
    signs = torch.ones(C)
    signs[1::2] = -1  # negative entries: det W can be negative, log|det W| still exists
    return x, P, L, U, s * signs


def check_lu_conv(conv_fn: Callable[..., tuple[Tensor, Tensor]], *, seed: int = 0) -> check.Result:
    """``conv_fn(x, P, L, U, s) -> (z, logdet)``: Glow's LU-parameterised 1x1 convolution."""
    cases = check.sizes(
        seed,
        B=(2, 3, range(2, 6)),
        C=(3, 5, range(2, 7)),
        H=(4, 2, range(2, 6)),
        W=(3, 5, range(2, 7)),
    )
    with check.exercise("LU 1x1 convolution", success="log|det| in O(C) from the diagonal") as ex:
        for case in ex.cases(cases):
            x, P, L, U, s = _lu_case(case)
            z_ref, ld_ref = reference_lu_conv(x, P, L, U, s)
            log_abs = s.abs().log().sum()
            hw = case.H * case.W
            out = ex.call(conv_fn, x, P, L, U, s, grad=(0, 4))
            if not isinstance(out, tuple) or len(out) != 2:
                raise check.CheckFailed(
                    f"your function should return a pair (z, logdet), got {type(out).__name__}"
                )
            z, ld = out

            def mix(W: Tensor, x: Tensor = x) -> Tensor:
                return torch.einsum("oc,bchw->bohw", W, x)

            ex.close(
                ex.tensor(z, what="your z"),
                z_ref,
                what="your z",
                hints={
                    "forgot the permutation P: W = P L (U + diag(s))": mix(L @ (U + torch.diag(s))),
                    "left out diag(s): U is strictly upper triangular, W = P L (U + diag(s))": mix(
                        P @ L @ U
                    ),
                    "multiplied in the wrong order: W = P L (U + diag(s))": mix(
                        (U + torch.diag(s)) @ L @ P
                    ),
                    "applied W transposed: z[:, o] = sum_c W[o, c] x[:, c]": mix(
                        (P @ L @ (U + torch.diag(s))).T
                    ),
                },
            )
            if isinstance(ld, Tensor) and ld.is_floating_point() and torch.isnan(ld).any():
                raise check.CheckFailed(
                    "your logdet is NaN: s has negative entries (det W can be negative), and "
                    "log of a negative number is NaN. log|det W| = sum log|s|: take the "
                    "absolute value (slogdet's logabsdet, never torch.logdet)"
                )
            ex.close(
                ex.tensor(ld, what="your logdet"),
                ld_ref,
                what="your logdet",
                hints={
                    "forgot the factor H * W: the 1x1 convolution acts at every pixel": log_abs.expand(
                        case.B
                    ),
                    "summed s itself: the log-det is sum log|s|": (hw * s.sum()).expand(case.B),
                    "flipped the sign of the log-det": -ld_ref,
                    "returned one number for the batch: return one log-det per example, "
                    "shape (B,) (expand it)": ld_ref[0],
                    "multiplied by H + W instead of H * W": ((case.H + case.W) * log_abs).expand(
                        case.B
                    ),
                    "multiplied by the channels C as well": (case.C * hw * log_abs).expand(case.B),
                },
            )
            ex.grad(z, lambda *a: reference_lu_conv(*a)[0], what="your z")
            # the log-det depends on s only: its gradient is checked from a call that tracks s
            _, ld_s = ex.call(conv_fn, x, P, L, U, s, grad=(4,))
            ex.grad(ld_s, lambda *a: reference_lu_conv(*a)[1], what="your logdet")
    return ex.result


# ----------------------------------------------------------------------------- 4. latent edit


def reference_edit_latent(z: Tensor, y_source: Tensor, y_target: Tensor, flow, condition) -> Tensor:
    """z' = f^-1(f(z; h(y_source)); h(y_target)) (the lecture's eq. 10)."""
    w, _ = flow(z, condition(y_source))
    return flow.inverse(w, condition(y_target))[0]


def _edit_case(case: check.Case):
    g = case.generator(0)
    flow = ref.ConditionalCompose(
        *ref.conditional_coupling_stack(case.D, case.K, num_layers=3, hidden=8)
    )
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=case.generator(1)))
    z = torch.randn(case.B, case.D, generator=g)
    y_source = torch.randint(0, case.K, (case.B,), generator=g)
    y_target = (y_source + 1 + torch.randint(0, case.K - 1, (case.B,), generator=g)) % case.K
    return z, y_source, y_target, flow, ref.OneHot(case.K)


def check_latent_edit(edit_fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``edit_fn(z, y_source, y_target, flow, condition) -> z'``: keep the conditional flow's
    code of z, swap the class (``flow(x, context)`` and ``flow.inverse(z, context)`` return
    pairs; ``condition(y)`` is the context)."""
    cases = check.sizes(
        seed, B=(5, 3, range(2, 10)), D=(4, 6, range(2, 9)), K=(10, 3, range(2, 12))
    )
    with check.exercise("latent edit", success="same code w, new class") as ex:
        for case in ex.cases(cases):
            z, ys, yt, flow, cond = _edit_case(case)
            with torch.no_grad():
                expected = reference_edit_latent(z, ys, yt, flow, cond)
                w_src = flow(z, cond(ys))[0]
                w_tgt = flow(z, cond(yt))[0]
                hints = {
                    "returned the flow's code w = f(z; y_source): decode it again with "
                    "flow.inverse(w, condition(y_target))": w_src,
                    "encoded with the target class: f(z; y_target) then f^-1(.; y_target) gives "
                    "z back. Encode with y_source": z,
                    "swapped source and target: encode with y_source, decode with y_target": (
                        flow.inverse(w_tgt, cond(ys))[0]
                    ),
                    "ran the flow the wrong way: encode with flow(...) (x -> z), decode with "
                    "flow.inverse(...)": flow(flow.inverse(z, cond(ys))[0], cond(yt))[0],
                    "forward twice: the second step must be flow.inverse": flow(w_src, cond(yt))[0],
                }
            out = ex.call(edit_fn, z, ys, yt, flow, cond)
            if isinstance(out, tuple):
                raise check.CheckFailed(
                    "your edit returned a tuple: flow.inverse returns (x, logdet), keep [0]"
                )
            ex.close(ex.tensor(out, what="your edited latent"), expected,
                     what="your edited latent", rtol=1e-4, atol=1e-5, hints=hints)  # fmt: skip
    return ex.result

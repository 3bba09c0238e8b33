"""Checks for Lecture 07 (VQ tokenizers): each prints one ✓ / ✗ line.

The references are in ``coursekit.vq``. The messages name the usual mistakes: the quantised
latent returned without the straight-through estimator (no gradient to the encoder), the
distances without the ||e||^2 term, the farthest code instead of the nearest, the codebook and
commitment losses with their stop-gradients swapped, beta on the wrong term, Gumbel noise
written as -log(u) (exponential noise, not Gumbel), the temperature multiplied instead of
divided, LFQ's entropy penalty with its diversity term's sign flipped or its two entropies
confused, and VAR's block-causal mask written as a plain causal or a strictly-earlier mask.

Every check runs on cases that differ in every size a student could write as a number (the
number of vectors N, their dimension D, the codebook size K); ``seed=0`` starts with the
notebook's inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from coursekit import check
from coursekit import vq as ref


def reference_quantize(z: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """(z_q, codes): nearest code vectors with the straight-through gradient, and their indices."""
    codes = ref.nearest_code(z, codebook)
    return ref.straight_through(z, codebook[codes]), codes


def reference_vq_loss(z: Tensor, z_q: Tensor, beta: float) -> Tensor:
    """||sg[z] - z_q||^2 + beta ||z - sg[z_q]||^2, each a mean over every entry."""
    codebook, commitment = ref.vq_loss_terms(z, z_q)
    return codebook + beta * commitment


def _inputs(case: check.Case) -> tuple[Tensor, Tensor]:
    g = case.generator(0)
    z = torch.randn(case.N, case.D, generator=g)
    # codes of very different lengths, so that leaving out ||e||^2 changes the nearest code
    scale = torch.linspace(0.3, 2.5, case.K)[torch.randperm(case.K, generator=g)]
    return z, torch.randn(case.K, case.D, generator=g) * scale[:, None]


def _cases(seed: int) -> list[check.Case]:
    return check.sizes(
        seed, N=(12, 9, range(6, 20)), D=(2, 4, range(2, 7)), K=(6, 10, range(5, 14))
    )


def _grads(ex: check.Exercise, out: Tensor, w: Tensor) -> list[Tensor | None]:
    """Gradients of <w, out> with respect to the inputs of the last ``ex.call(grad=...)`` that
    require gradients (the copies ``ex.inputs()`` returns), in argument order.

    ``w`` must be the direction ``ex.grad`` uses (ones for a scalar, else ``randn`` from seed
    0): the grader's sandbox returns the student's gradient in that direction only."""
    args, _ = ex.inputs()
    tensors = [a for a in args if isinstance(a, Tensor) and a.requires_grad]
    if not out.requires_grad:
        return [None] * len(tensors)
    return list(torch.autograd.grad(out, tensors, w, allow_unused=True, retain_graph=True))


def check_quantize(
    quantize_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], *, seed: int = 0
) -> check.Result:
    """``quantize_fn(z, codebook) -> (z_q, codes)`` for z (N, D), codebook (K, D): codes (N,)
    the nearest code indices, z_q (N, D) their vectors with the straight-through gradient."""
    with check.exercise("VQ quantiser", success="nearest codes, straight-through gradient") as ex:
        for case in ex.cases(_cases(seed)):
            z, codebook = _inputs(case)
            d = ref.squared_distances(z, codebook)
            codes_ref = d.argmin(1)
            out = ex.call(quantize_fn, z, codebook, grad=(0, 1))
            if not isinstance(out, tuple) or len(out) != 2:
                raise check.CheckFailed(
                    f"quantize should return a pair (z_q, codes), got {type(out).__name__}"
                )
            z_q, codes = out
            codes = ex.tensor(codes, shape=(case.N,), what="your codes")
            ex.require(
                not codes.is_floating_point(),
                f"your codes have dtype {codes.dtype}: return integer indices (argmin gives int64)",
            )
            ex.close(
                codes,
                codes_ref,
                what="your codes",
                hints={
                    "took the farthest code (argmax): the nearest is the argmin of the "
                    "distances": d.argmax(1),
                    "left out the ||e_k||^2 term of the distance: ||z - e||^2 = ||z||^2 - 2 z.e "
                    "+ ||e||^2, and without it long code vectors win": (
                        -2 * z @ codebook.t()
                    ).argmin(1),
                    "maximised the dot product z.e instead of minimising the distance": (
                        z @ codebook.t()
                    ).argmax(1),
                },
            )
            z_q = ex.tensor(z_q, shape=(case.N, case.D), what="your z_q")
            ex.close(
                z_q,
                codebook[codes_ref],
                what="your z_q",
                hints={"returned z itself: z_q is the chosen code vectors codebook[codes]": z},
            )
            w = torch.randn(z_q.shape, generator=torch.Generator().manual_seed(0))
            g_z, g_codebook = _grads(ex, z_q, w)
            if g_z is None or not torch.allclose(g_z, w, atol=1e-5):
                raise check.CheckFailed(
                    "your z_q has the right value but its gradient with respect to z is not the "
                    "identity's: use the straight-through estimator z_q = z + (z_q - z).detach(), "
                    "so the decoder's gradient reaches the encoder unchanged"
                    + (" (yours passes no gradient to z)" if g_z is None else "")
                )
            if g_codebook is not None and g_codebook.abs().max() > 1e-6:
                raise check.CheckFailed(
                    "gradient flows from z_q into the codebook: detach the whole difference, "
                    "z + (z_q - z).detach(); the codebook learns from its own loss term instead"
                )
    return ex.result


def check_vq_loss(
    loss_fn: Callable[[Tensor, Tensor, float], Tensor], *, seed: int = 0
) -> check.Result:
    """``loss_fn(z, z_q, beta) -> scalar``: ||sg[z] - z_q||^2 + beta ||z - sg[z_q]||^2 (means),
    for encoder outputs z (N, D) and their code vectors z_q (N, D) (before straight-through)."""
    with check.exercise(
        "VQ-VAE loss", success="codebook + beta * commitment, stop-gradients right"
    ) as ex:
        for case in ex.cases(_cases(seed)):
            z, codebook = _inputs(case)
            z_q = codebook[ref.nearest_code(z, codebook)]
            beta = (0.25, 0.6, 0.4)[case.index % 3]
            mse = ((z - z_q) ** 2).mean()
            out = ex.call(loss_fn, z, z_q, beta, grad=(0, 1))
            out = ex.tensor(out, shape=(), what="your loss")
            ex.close(
                out,
                (1 + beta) * mse,
                what="your loss",
                hints={
                    "forgot beta: the commitment term is weighted by beta": 2 * mse,
                    "weighted both terms by beta: only the commitment term has it": 2 * beta * mse,
                    "kept only one of the two terms: codebook + beta * commitment": mse,
                    "kept only the commitment term: add the codebook term ||sg[z] - z_q||^2": beta
                    * mse,
                    "summed instead of averaged: take the mean over every entry": (1 + beta)
                    * mse
                    * z.numel(),
                    "averaged over vectors but summed over dimensions: take the mean over every "
                    "entry": (1 + beta) * mse * case.D,
                },
            )
            if not out.requires_grad:
                raise check.CheckFailed(
                    "your loss has the right value but carries no gradient: it was computed under "
                    "`torch.no_grad()`, detached or through NumPy; backward() must reach z and z_q"
                )
            g_z, g_zq = _grads(ex, out, torch.ones(()))
            g_z = torch.zeros_like(z) if g_z is None else g_z
            g_zq = torch.zeros_like(z) if g_zq is None else g_zq
            n = z.numel()
            want_z, want_zq = beta * 2 * (z - z_q) / n, 2 * (z_q - z) / n

            def near(a, b):
                return torch.allclose(a, b, atol=1e-6, rtol=1e-4)

            if near(g_z, want_z) and near(g_zq, want_zq):
                continue
            if near(g_z, 2 * (z - z_q) / n) and near(g_zq, beta * 2 * (z_q - z) / n):
                raise check.CheckFailed(
                    "your loss has the right value but the stop-gradients are swapped: the "
                    "codebook term ||sg[z] - z_q||^2 detaches z (it moves the codes), the "
                    "commitment term beta ||z - sg[z_q]||^2 detaches z_q (it moves the encoder); or beta "
                    "weights the codebook term instead of the commitment term"
                )
            if near(g_z, torch.zeros_like(z)):
                raise check.CheckFailed(
                    "no gradient reaches z from your loss: the commitment term beta ||z - "
                    "sg[z_q]||^2 must keep z differentiable (detach z_q there, not z)"
                )
            if near(g_zq, torch.zeros_like(z)):
                raise check.CheckFailed(
                    "no gradient reaches z_q from your loss: the codebook term ||sg[z] - "
                    "z_q||^2 must keep z_q differentiable (detach z there, not z_q)"
                )
            if near(g_z, (1 + beta) * 2 * (z - z_q) / n):
                raise check.CheckFailed(
                    "your loss has the right value but no stop-gradients: detach z in the "
                    "codebook term and z_q in the commitment term, or both terms push both sides"
                )
            raise check.CheckFailed(
                "your loss has the right value but the wrong gradient: the codebook term "
                "detaches z, the commitment term detaches z_q"
            )
    return ex.result


# ----------------------------------------------------------------------------- LFQ entropy


def reference_lfq_entropy(
    z: Tensor, codebook: Tensor, inv_temperature: float, gamma: float
) -> Tensor:
    """E_n[H(p_n)] - gamma H(E_n[p_n]), p_n = softmax_k(-inv_temperature ||z_n - c_k||^2)."""
    return ref.lfq_entropy_penalty(z, codebook, inv_temperature, gamma)


def _corners(bits: int) -> Tensor:
    """The 2^bits corners of {-1, +1}^bits, (2^bits, bits), first bit most significant."""
    return ref.LFQ(bits).codebook


def check_lfq_entropy(
    entropy_fn: Callable[[Tensor, Tensor, float, float], Tensor], *, seed: int = 0
) -> check.Result:
    """``entropy_fn(z, codebook, inv_temperature, gamma) -> scalar`` for z (N, D) and the
    corners codebook (K, D): the mean per-position entropy minus gamma times the entropy of
    the batch's mean assignment, in nats."""
    with check.exercise(
        "LFQ entropy penalty",
        success="confident positions (mean entropy) minus gamma x the batch's spread",
    ) as ex:
        for case in ex.cases(check.sizes(seed, N=(12, 7, range(5, 20)), D=(3, 2, range(2, 6)))):
            g = case.generator(0)
            z = torch.randn(case.N, case.D, generator=g) * 0.6
            codebook = _corners(case.D)
            tau_inv, gamma = (2.0, 0.5, 1.5)[case.index % 3], (1.0, 0.7, 1.3)[case.index % 3]
            out = ex.call(entropy_fn, z, codebook, tau_inv, gamma, grad=(0,))
            out = ex.tensor(out, shape=(), what="your penalty")
            # (+inv_temperature * d would give the same value: the corners are symmetric under
            # c -> -c, which only relabels the codes, so that sign is no mistake here)
            d = ref.squared_distances(z, codebook)  # (N, K)
            p = torch.softmax(-tau_inv * d, -1)
            per_sample, spread = ref.entropy(p).mean(), ref.entropy(p.mean(0))
            ex.close(
                out,
                per_sample - gamma * spread,
                what="your penalty",
                hints={
                    "added the diversity term: subtract gamma x H(mean p) (minimising the loss "
                    "must spread the batch over the codes, not collapse it)": per_sample
                    + gamma * spread,
                    "swapped the two entropies: the mean per-position entropy is minimised, "
                    "the entropy of the mean assignment is maximised": spread - gamma * per_sample,
                    "took the mean of the entropies twice: the second term is the entropy of the "
                    "batch's mean distribution, H(mean_n p_n)": (1 - gamma) * per_sample,
                    "left out the diversity term -gamma H(mean p)": per_sample,
                    "left out the per-position entropy E[H(p_n)]": -gamma * spread,
                    "divided the distances by inv_temperature: multiply them": (
                        ref.entropy(torch.softmax(-d / tau_inv, -1)).mean()
                        - gamma * ref.entropy(torch.softmax(-d / tau_inv, -1).mean(0))
                    ),
                    "took the softmax over the positions (axis 0): each p_n is a distribution "
                    "over the K codes": (
                        ref.entropy(torch.softmax(-tau_inv * d, 0)).mean()
                        - gamma * ref.entropy(torch.softmax(-tau_inv * d, 0).mean(0))
                    ),
                    "summed the per-position entropies over the batch: take their mean": (
                        ref.entropy(p).sum() - gamma * spread
                    ),
                },
            )
            ex.grad(out, reference_lfq_entropy)
    return ex.result


# ----------------------------------------------------------------------------- Gumbel-softmax


def reference_gumbel_softmax(logits: Tensor, tau: float, u: Tensor) -> Tensor:
    """softmax((logits + g) / tau) over the last axis, g = -log(-log u) the Gumbel noise of u."""
    return ref.gumbel_softmax(logits, tau, -torch.log(-torch.log(u)))


def check_gumbel_softmax(
    gumbel_softmax_fn: Callable[[Tensor, float, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """``gumbel_softmax_fn(logits, tau, u) -> (N, K)``: the relaxed one-hot
    softmax((logits - log(-log u)) / tau) for logits (N, K) and uniform noise u (N, K)."""
    with check.exercise(
        "Gumbel-softmax", success="Gumbel noise -log(-log u), divided by tau, softmax over codes"
    ) as ex:
        cases = check.sizes(seed, N=(8, 5, range(3, 14)), K=(6, 9, range(3, 12)))
        for case in ex.cases(cases):
            g = case.generator(0)
            logits = torch.randn(case.N, case.K, generator=g) * 2
            u = torch.rand(case.N, case.K, generator=g).clamp(1e-4, 1 - 1e-4)
            tau = (0.5, 2.0, 0.7)[case.index % 3]
            out = ex.call(gumbel_softmax_fn, logits, tau, u, grad=(0,))
            out = ex.tensor(out, shape=(case.N, case.K), what="your sample")
            gumbel = -torch.log(-torch.log(u))
            want = torch.softmax((logits + gumbel) / tau, -1)
            ex.close(
                out,
                want,
                what="your sample",
                hints={
                    "used -log(u) as the noise: that is exponential noise; Gumbel noise is "
                    "-log(-log u)": torch.softmax((logits - torch.log(u)) / tau, -1),
                    "flipped the sign of the Gumbel noise: g = -log(-log u)": torch.softmax(
                        (logits + torch.log(-torch.log(u))) / tau, -1
                    ),
                    "multiplied by the temperature: divide the logits plus noise by tau": (
                        torch.softmax((logits + gumbel) * tau, -1)
                    ),
                    "left out the temperature: divide (logits + g) by tau": torch.softmax(
                        logits + gumbel, -1
                    ),
                    "divided only the noise by tau: divide the sum (logits + g) by tau": (
                        torch.softmax(logits + gumbel / tau, -1)
                    ),
                    "forgot the noise: softmax(logits / tau) is not a sample": torch.softmax(
                        logits / tau, -1
                    ),
                    "took the softmax over the wrong axis: each row (over the K codes) must "
                    "sum to 1": torch.softmax((logits + gumbel) / tau, 0),
                    "returned the hard one-hot of the argmax: the relaxation is the softmax "
                    "itself (the hard sample has no gradient)": torch.nn.functional.one_hot(
                        want.argmax(-1), case.K
                    ),
                },
            )
            if not out.requires_grad:
                raise check.CheckFailed(
                    "your sample has the right value but carries no gradient to the logits: the "
                    "relaxation exists to be differentiable; do not detach it or use no_grad"
                )
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))  # ex.grad's
            (g_logits,) = _grads(ex, out, w)
            want_g = want * (w - (w * want).sum(-1, keepdim=True)) / tau  # softmax's Jacobian
            if g_logits is None or not torch.allclose(g_logits, want_g, atol=1e-5, rtol=1e-4):
                raise check.CheckFailed(
                    "your sample has the right value but the wrong gradient: compute it with "
                    "torch operations from the logits (no straight-through or detached parts)"
                )
    return ex.result


# ----------------------------------------------------------------------------- VAR mask


def reference_block_causal_mask(sizes: list[int]) -> Tensor:
    """(T, T) bool, T = sum(sizes): query t may attend key s iff block(s) <= block(t)."""
    return ref.block_causal_mask(sizes)


def _block_sizes(case: check.Case) -> list[int]:
    if case.seed == 0 and case.index == 0:
        return [1, 4, 16]  # the notebook's scales 1x1, 2x2, 4x4
    g = case.generator(0)
    return [int(v) for v in torch.randint(1, 6, (case.n,), generator=g)]


def check_block_causal_mask(
    mask_fn: Callable[[list[int]], Tensor], *, seed: int = 0
) -> check.Result:
    """``mask_fn(sizes) -> (T, T) bool``: True where a query of block b may attend a key of
    block c, i.e. c <= b (its own scale and the coarser ones)."""
    with check.exercise(
        "block-causal mask", success="each scale sees itself and coarser scales"
    ) as ex:
        for case in ex.cases(check.sizes(seed, n=(3, 4, range(2, 6)))):
            sizes = _block_sizes(case)
            T = sum(sizes)
            out = ex.call(mask_fn, list(sizes))
            out = ex.tensor(out, shape=(T, T), what="your mask")
            ex.require(
                out.dtype == torch.bool,
                f"your mask has dtype {out.dtype}: return a bool tensor (True = may attend)",
            )
            block = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
            ex.close(
                out,
                block[:, None] >= block[None, :],
                what="your mask",
                hints={
                    "wrote a plain causal (token-by-token) mask: within a scale every position "
                    "sees every other, only later scales are hidden": torch.ones(T, T).tril(),
                    "hid the query's own scale (strictly earlier blocks): a scale's positions "
                    "must attend to each other and to the coarser scales": block[:, None]
                    > block[None, :],
                    "transposed the mask: rows are queries, columns keys; a query sees the "
                    "coarser (earlier) scales": block[:, None] <= block[None, :],
                    "let each scale see only itself: it must also see every coarser scale": (
                        block[:, None] == block[None, :]
                    ),
                    "masked nothing: a scale must not see the finer scales it predicts before": (
                        torch.ones(T, T)
                    ),
                },
            )
    return ex.result

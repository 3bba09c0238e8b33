"""Checks for Lecture 03 (autoregressive models): each prints one ✓ / ✗ line.

The references are in ``coursekit.autoregressive`` and ``coursekit.autoregressive.coding``. The masks are
checked by what they do, the gradient of output i with respect to input j (zero for every
j at or after i in the order, nonzero for every j before it), so any correct mask passes;
the messages name the usual mistakes (an off-by-one in the output layer, type A and B
swapped, a transposed mask, a coder without renormalization or without the middle case).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from coursekit import check
from coursekit.autoregressive import coding
from coursekit.autoregressive import pixelcnn as pixelcnn_mod
from coursekit.autoregressive import transformer as transformer_mod


def _dependence(f: Callable[[Tensor], Tensor], D: int) -> Tensor:
    """(D_out_dims, D) bool: which inputs each output dimension depends on (by autograd).

    f maps a float input (D,) to outputs (K, D); output dimension i "depends on" input j
    when any of its K entries has a nonzero derivative with respect to x_j.
    """
    x = torch.randn(D, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(f, x)  # (K, D, D)
    return J.abs().amax(0) > 0


def _made_dependence(masks: list[Tensor], D: int, K: int) -> Tensor:
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(m.shape, generator=g, dtype=torch.float64) for m in masks]

    def f(x: Tensor) -> Tensor:
        h = x
        for i, (W, m) in enumerate(zip(Ws, masks)):
            h = (W * m.double()) @ h
            if i < len(Ws) - 1:
                h = torch.tanh(h)  # tanh: never exactly flat, unlike ReLU
        return h.view(K, D)  # output unit k*D + i predicts dimension i

    return _dependence(f, D)


def check_made_masks(mask_fn: Callable) -> check.Result:
    """``mask_fn(in_degrees, hidden_degrees, out_degrees) -> list of (fan_out, fan_in) masks``."""
    D, K, hidden = 6, 3, (12, 12)
    with check.exercise("MADE masks") as ex:
        for order in (torch.arange(D), torch.tensor([3, 0, 5, 1, 4, 2])):
            rank = torch.empty_like(order)
            rank[order] = torch.arange(1, D + 1)
            hidden_degrees = [torch.arange(h) % (D - 1) + 1 for h in hidden]
            out_degrees = rank.repeat(K)
            masks = ex.call(mask_fn, rank, hidden_degrees, out_degrees)
            ex.require(
                isinstance(masks, (list, tuple)) and len(masks) == len(hidden) + 1,
                f"return a list of {len(hidden) + 1} masks (one per layer), "
                f"got {type(masks).__name__}",
            )
            shapes = [(12, D), (12, 12), (K * D, 12)]
            for i, (m, s) in enumerate(zip(masks, shapes)):
                ex.tensor(torch.as_tensor(m), shape=s, what=f"mask {i}")
            dep = _made_dependence([torch.as_tensor(m).double() for m in masks], D, K)
            before = rank[None, :] < rank[:, None]  # (D, D): input j comes before output i
            if (dep & ~before).any():
                if (
                    dep.diagonal().any()
                    and not (dep & ~before & ~torch.eye(D, dtype=torch.bool)).any()
                ):
                    ex.require(
                        False,
                        "output i depends on its own input x_i (an off-by-one): the "
                        "output layer needs a strict '>' between degrees; only the hidden "
                        "layers use '>='",
                    )
                ex.require(
                    False,
                    "output i depends on inputs that come after it in the order: "
                    "compare degrees as mask[out, in] = degree(out) >= degree(in) "
                    "(is your mask transposed?)",
                )
            if (before & ~dep).any():
                ex.require(
                    False,
                    "some output i does not depend on an input before it: the hidden "
                    "layers must use '>=' (only the output layer is strict), and every "
                    "earlier input must be able to reach output i",
                )
    return ex.result


def check_pixelcnn_mask(mask_fn: Callable) -> check.Result:
    """``mask_fn(kernel_size, mask_type) -> (k, k)`` 0/1 tensor for type 'A' or 'B'."""
    with check.exercise("PixelCNN masks (types A and B)") as ex:
        for k in (3, 5):
            for t in ("A", "B"):
                out = ex.tensor(
                    torch.as_tensor(ex.call(mask_fn, k, t)).float(),
                    shape=(k, k),
                    what=f"your {k}x{k} type-{t} mask",
                )
                ref = pixelcnn_mod.pixelcnn_mask(k, t)
                other = pixelcnn_mod.pixelcnn_mask(k, "B" if t == "A" else "A")
                ex.close(
                    out,
                    ref,
                    what=f"your {k}x{k} type-{t} mask",
                    hints={
                        "swapped types A and B: type A (first layer) hides the centre pixel, "
                        "type B keeps it": other,
                        "transposed the mask: hide the rows below the centre and the pixels right "
                        "of it in the centre row (raster order)": ref.T,
                        "hid the pixels above and to the left instead: the mask keeps the past, "
                        "not the future": ref.flip(0).flip(1),
                        "kept the whole centre row: pixels right of the centre are in the future": torch.cat(
                            [ref[: k // 2 + 1].clone().fill_(1), ref[k // 2 + 1 :]]
                        ),
                    },
                )
        # the property itself: a PixelCNN built on these masks never looks ahead
        net = pixelcnn_mod.PixelCNN(
            (1, 5, 5),
            3,
            channels=4,
            num_layers=1,
            first_kernel=3,
            mask_fn=lambda k, t: torch.as_tensor(mask_fn(k, t)).float(),
        )
        dep = _pixel_dependence(net)
        ex.require(
            not (dep & ~torch.ones(25, 25).tril(-1).bool()).any(),
            "a PixelCNN with your masks lets pixel i see pixels at or after i",
        )
    return ex.result


def _pixel_dependence(net) -> Tensor:
    """(D, D) bool: which input pixels each output pixel's logits depend on (by autograd)."""
    D = net.num_dims

    def f(x: Tensor) -> Tensor:
        h = net.first(x.float().view(1, *net.shape))
        for block in net.blocks:
            h = h + block(torch.relu(h))
        return net.out(h).view(net.levels, D).double()

    return _dependence(f, D)


def check_causal_mask(mask_fn: Callable) -> check.Result:
    """``mask_fn(T, device=None) -> (T, T)`` bool, True where query t may attend to key s."""
    with check.exercise("causal attention mask") as ex:
        T = 6
        out = ex.tensor(
            ex.call(mask_fn, T, device=None), shape=(T, T), dtype=torch.bool, what="your mask"
        )
        ref = transformer_mod.causal_mask(T)
        ex.close(
            out.float(),
            ref.float(),
            what="your mask",
            hints={
                "transposed the mask: query t must see keys s <= t (lower triangle), "
                "not the future keys": ref.T.float(),
                "excluded the diagonal: position t must see its own token, which holds the "
                "previous pixel (the inputs are shifted by one)": ref.tril(-1).float(),
                "inverted it: True must mean 'may attend', so masked_fill(~mask, -inf) hides "
                "the rest": (~ref).float(),
            },
        )
        # the property: a Transformer using this mask never looks ahead
        net = transformer_mod.CausalTransformer(
            (1, 2, 3), 3, d_model=8, n_head=2, n_layer=1, mask_fn=mask_fn
        )

        def f(e: Tensor) -> Tensor:  # derivative w.r.t. the token embeddings
            h = e.float().view(1, T, -1) + net.pos
            for block in net.blocks:
                h = block(h)
            return net.head(net.ln(h)).view(T, -1).T.double()  # (K, T)

        d = net.pos.shape[1]
        J = torch.autograd.functional.jacobian(f, torch.randn(T * d, dtype=torch.float64))
        dep = J.abs().amax(0).view(T, T, d).amax(-1) > 0  # (T out, T in)
        ex.require(not (dep & ~ref).any(), "with your mask, output t depends on later tokens")
    return ex.result


def _coder_cases() -> list[tuple[str, list[int], np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [("three uniform symbols", [0, 2, 1], coding.cdf_from_probs(np.full((3, 3), 1 / 3)))]
    # symbol 1 sits in the middle of [0, 1): the interval keeps straddling the midpoint
    mid = coding.cdf_from_probs(np.tile([0.45, 0.1, 0.45], (60, 1)))
    cases.append(("60 symbols in the middle of the interval", [1] * 60, mid))
    p = rng.dirichlet(np.full(5, 0.3), size=400)
    p[:, 0] = 1e-9  # a symbol the model thinks (almost) impossible ...
    sym = [int(rng.choice(5, p=q / q.sum())) for q in p]
    sym[10] = sym[200] = 0  # ... occurs anyway
    cases.append(("400 symbols from random distributions", sym, coding.cdf_from_probs(p)))
    return cases


def check_arithmetic_encoder(encode_fn: Callable) -> check.Result:
    """``encode_fn(symbols, cdfs) -> list of bits``; decoded by ``coding.decode``."""
    with check.exercise("arithmetic encoder") as ex:
        for name, symbols, cdfs in _coder_cases():
            bits = ex.call(encode_fn, list(symbols), cdfs)
            ex.require(bits is not None, "your encoder returned None: return the list of bits")
            bits = [int(b) for b in bits]
            ex.require(set(bits) <= {0, 1}, "your encoder must return a list of 0/1 bits")
            q = np.diff(cdfs, axis=1)[np.arange(len(symbols)), symbols] / cdfs[:, -1]
            ideal = float(-np.log2(q).sum())
            decoded = coding.decode(bits, cdfs)
            if decoded != list(symbols):
                first = next(i for i, (a, b) in enumerate(zip(decoded, symbols)) if a != b)
                if len(bits) < ideal / 2:  # nearly nothing emitted along the way
                    ex.require(
                        False,
                        f"{name}: only {len(bits)} bits for {ideal:.0f} bits of "
                        "information; renormalize after every symbol: while the interval "
                        "lies in one half, emit that bit and double the interval",
                    )
                if name.startswith("60 symbols"):
                    ex.require(
                        False,
                        f"{name}: decoding fails at symbol {first} when the interval "
                        "straddles the midpoint: handle low >= 1/4 and high < 3/4 by "
                        "counting a pending bit and doubling around the middle",
                    )
                ex.require(
                    False,
                    f"{name}: the decoder reads symbol {first} as {decoded[first]}, "
                    f"not {symbols[first]}: check the interval update "
                    "low + range * cdf[s] // total and the pending bits",
                )
            ex.require(
                len(bits) <= ideal + 2 + 1e-9 or len(bits) <= ideal * 1.01 + 2,
                f"{name}: {len(bits)} bits, more than -log2 q + 2 = {ideal + 2:.1f}",
            )
    return ex.result

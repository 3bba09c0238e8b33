"""Checks for Lecture 03 (autoregressive models): each prints one ✓ / ✗ line.

The references are in ``coursekit.autoregressive`` and ``coursekit.autoregressive.coding``. The masks are
checked by what they do, the gradient of output i with respect to input j (zero for every
j at or after i in the order, nonzero for every j before it), so any correct mask passes;
the messages name the usual mistakes (an off-by-one in the output layer, type A and B
swapped, a transposed mask, a coder without renormalization, without the middle case or
without its final bits).

Every check runs on cases that differ in every size a student could write as a number: the
number of dimensions D, of outputs per dimension K and of hidden layers for MADE; the kernel
and image sizes for PixelCNN; the sequence length T; the number of symbols and the alphabet
size for the coder, including a single symbol (the coder's loop ends at once). ``seed=0``
starts with the notebook's inputs; another seed draws other sizes, orders and distributions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from coursekit import check
from coursekit.autoregressive import coding
from coursekit.autoregressive import made as made_mod
from coursekit.autoregressive import pixelcnn as pixelcnn_mod
from coursekit.autoregressive import transformer as transformer_mod


def _dependence(f: Callable[[Tensor], Tensor], D: int) -> Tensor:
    """(D_out_dims, D) bool: which inputs each output dimension depends on (by autograd).

    f maps a float input (D,) to outputs (K, D); output dimension i "depends on" input j
    when any of its K entries has a nonzero derivative with respect to x_j.
    """
    x = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
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


def _made_variants(din: Tensor, hidden: list[Tensor], dout: Tensor) -> dict[str, list[Tensor]]:
    """Masks of the usual wrong answers, keyed by the sentence after 'it looks like you'."""

    def build(hidden_cmp, out_cmp):
        masks, prev = [], din
        for deg in hidden:
            masks.append(hidden_cmp(deg[:, None], prev[None, :]).float())
            prev = deg
        masks.append(out_cmp(dout[:, None], prev[None, :]).float())
        return masks

    ge, gt = torch.ge, torch.gt
    return {
        "swapped the comparisons: the hidden layers use '>=' and only the output layer the "
        "strict '>'": build(gt, ge),
    }


def _made_case_inputs(case: check.Case) -> list[tuple[Tensor, list[Tensor], Tensor]]:
    """Two orders (the identity and a shuffled one) with their hidden and output degrees."""
    D, K = case.D, case.K
    if case.shown:
        orders, widths = [torch.arange(D), torch.tensor([3, 0, 5, 1, 4, 2])], [12, 12]
        shuffle = False
    else:
        g = case.generator(0)
        orders = [torch.arange(D), torch.randperm(D, generator=g)]
        widths = torch.randint(D - 1, 3 * D, (case.L,), generator=g).tolist()
        shuffle = True
    inputs = []
    for order in orders:
        rank = torch.empty_like(order)
        rank[order] = torch.arange(1, D + 1)
        hidden = []
        for h in widths:
            deg = torch.arange(h) % (D - 1) + 1  # every degree 1..D-1 occurs
            if shuffle:
                deg = deg[torch.randperm(h, generator=case.generator(h))]
            hidden.append(deg)
        inputs.append((rank, hidden, rank.repeat(K)))
    return inputs


def check_made_masks(mask_fn: Callable, *, seed: int = 0) -> check.Result:
    """``mask_fn(in_degrees, hidden_degrees, out_degrees) -> list of (fan_out, fan_in) masks``."""
    cases = check.sizes(seed, D=(6, 4, range(3, 10)), K=(3, 2, range(1, 5)), L=(2, 1, [1, 2, 3]))
    with check.exercise("MADE masks") as ex:
        for case in ex.cases(cases):
            D, K = case.D, case.K
            for rank, hidden_degrees, out_degrees in _made_case_inputs(case):
                widths = [len(h) for h in hidden_degrees]
                masks = ex.call(mask_fn, rank, hidden_degrees, out_degrees)
                ex.require(
                    isinstance(masks, (list, tuple)),
                    f"return a list of masks (one per layer), got {type(masks).__name__}",
                )
                n_layers = len(hidden_degrees) + 1
                if len(masks) != n_layers:
                    raise check.CheckFailed(
                        f"you returned {len(masks)} masks for {len(hidden_degrees)} hidden "
                        f"layer(s): return one mask per layer, len(hidden_degrees) + 1 = {n_layers}",
                        generic=True,
                    )
                shapes = list(zip([*widths, K * D], [D, *widths]))
                for i, (m, s) in enumerate(zip(masks, shapes)):
                    m = torch.as_tensor(m)
                    if tuple(m.shape) == s[::-1] and s[0] != s[1]:
                        raise check.CheckFailed(
                            f"mask {i} has shape {tuple(m.shape)}, expected {s}: it looks like you "
                            "transposed the masks; a layer's weight is (fan_out, fan_in), so "
                            "mask[out, in] = degree(out) >= degree(in)"
                        )
                    ex.tensor(m, shape=s, what=f"mask {i}")
                masks = [torch.as_tensor(m).double() for m in masks]
                reference = made_mod.made_masks(rank, hidden_degrees, out_degrees)
                if all(torch.equal(m, r.double()) for m, r in zip(masks, reference)):
                    continue
                for mistake, variant in _made_variants(rank, hidden_degrees, out_degrees).items():
                    if variant is not None and all(
                        torch.equal(m, v.double()) for m, v in zip(masks, variant)
                    ):
                        raise check.CheckFailed(f"it looks like you {mistake}")
                dep = _made_dependence(masks, D, K)
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


def _pixel_dependence(net) -> Tensor:
    """(D, D) bool: which input pixels each output pixel's logits depend on (by autograd)."""
    D = net.num_dims

    def f(x: Tensor) -> Tensor:
        h = net.first(x.float().view(1, *net.shape))
        for block in net.blocks:
            h = h + block(torch.relu(h))
        return net.out(h).view(net.levels, D).double()

    return _dependence(f, D)


def check_pixelcnn_mask(mask_fn: Callable, *, seed: int = 0) -> check.Result:
    """``mask_fn(kernel_size, mask_type) -> (k, k)`` 0/1 tensor for type 'A' or 'B'."""
    cases = check.sizes(
        seed, k=(3, 5, [3, 5, 7, 9, 11]), image=((5, 5), (4, 6), [(5, 5), (4, 6), (6, 3), (3, 7)])
    )
    with check.exercise("PixelCNN masks (types A and B)") as ex:
        for case in ex.cases(cases):
            k, c = case.k, case.k // 2
            for t in ("A", "B"):
                what = f"your {k}x{k} type-{t} mask"
                out = ex.call(mask_fn, k, t)
                out = ex.tensor(torch.as_tensor(out).float(), shape=(k, k), what=what)
                ref = pixelcnn_mod.pixelcnn_mask(k, t)
                other = pixelcnn_mod.pixelcnn_mask(k, "B" if t == "A" else "A")
                rows_above = torch.zeros(k, k)
                rows_above[:c] = 1
                centre_row_only = ref.clone()
                centre_row_only[c + 1 :] = 1
                ex.close(
                    out,
                    ref,
                    what=what,
                    hints={
                        "swapped types A and B: type A (first layer) hides the centre pixel, "
                        "type B keeps it": other,
                        "transposed the mask: hide the rows below the centre and the pixels right "
                        "of it in the centre row (raster order)": ref.T,
                        "hid the pixels above and to the left instead: the mask keeps the past, "
                        "not the future": ref.flip(0).flip(1),
                        "kept the whole centre row: pixels right of the centre are in the future": torch.cat(
                            [ref[: c + 1].clone().fill_(1), ref[c + 1 :]]
                        ),
                        "masked only the centre row: the rows below the centre are in the "
                        "future too": centre_row_only,
                        "hid the whole centre row: the pixels left of the centre come before "
                        "it in raster order": rows_above,
                        "inverted the mask: 1 must mean 'may look at', the past": 1 - ref,
                    },
                )
            # the property itself: a PixelCNN built on these masks never looks ahead
            net = pixelcnn_mod.PixelCNN(
                (1, *case.image),
                3,
                channels=4,
                num_layers=1,
                first_kernel=k,
                mask_fn=lambda k, t: torch.as_tensor(mask_fn(k, t)).float(),
            )
            dep = _pixel_dependence(net)
            n = net.num_dims
            ex.require(
                not (dep & ~torch.ones(n, n).tril(-1).bool()).any(),
                "a PixelCNN with your masks lets pixel i see pixels at or after i",
            )
    return ex.result


def check_causal_mask(mask_fn: Callable, *, seed: int = 0) -> check.Result:
    """``mask_fn(T, device=None) -> (T, T)`` bool, True where query t may attend to key s."""
    cases = check.sizes(seed, T=(6, 9, range(2, 17)))
    with check.exercise("causal attention mask") as ex:
        for case in ex.cases(cases):
            T = case.T
            out = ex.call(mask_fn, T, device=None)
            ref = transformer_mod.causal_mask(T)
            if (
                isinstance(out, Tensor)
                and out.is_floating_point()
                and tuple(out.shape) == (T, T)
                and torch.isinf(out).any()
            ):
                raise check.CheckFailed(
                    "your mask is an additive float mask (0 and -inf): return booleans, True "
                    "where query t may attend to key s; the attention applies masked_fill"
                )
            out = ex.tensor(out, shape=(T, T), dtype=torch.bool, what="your mask")
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
                    "let each token attend only to itself: it must see every key s <= t": torch.eye(
                        T
                    ),
                    "masked nothing: with every entry True, token t sees the future": torch.ones(
                        T, T
                    ),
                    "shifted the triangle by one: query t sees keys up to t + 1, one in the "
                    "future": torch.ones(T, T).tril(1),
                },
            )
            # the property: a Transformer using this mask never looks ahead
            net = transformer_mod.CausalTransformer(
                (1, 1, T), 3, d_model=8, n_head=2, n_layer=1, mask_fn=mask_fn
            )

            def f(e: Tensor, net=net, T=T) -> Tensor:  # derivative w.r.t. the token embeddings
                h = e.float().view(1, T, -1) + net.pos
                for block in net.blocks:
                    h = block(h)
                return net.head(net.ln(h)).view(T, -1).T.double()  # (K, T)

            d = net.pos.shape[1]
            x = torch.randn(T * d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            J = torch.autograd.functional.jacobian(f, x)
            dep = J.abs().amax(0).view(T, T, d).amax(-1) > 0  # (T out, T in)
            ex.require(not (dep & ~ref).any(), "with your mask, output t depends on later tokens")
    return ex.result


# -- the arithmetic coder ----------------------------------------------------------------------

_HALF, _QUARTER, _FULL = 1 << 31, 1 << 30, (1 << 32) - 1


def _encode_variant(
    symbols,
    cdfs,
    *,
    middle: bool = True,
    final: bool = True,
    final_pending: bool = True,
    opposite: bool = True,
    minus_one: bool = True,
) -> list[int]:
    """coding.encode with one of the usual mistakes switched on, to name it by its bits."""
    low, high, pending, bits = 0, _FULL, 0, []

    def emit(bit):
        nonlocal pending
        bits.append(bit)
        bits.extend([1 - bit if opposite else bit] * pending)
        pending = 0

    for s, cdf in zip(symbols, cdfs):
        r, total = high - low + 1, int(cdf[-1])
        high = low + r * int(cdf[s + 1]) // total - (1 if minus_one else 0)
        low = low + r * int(cdf[s]) // total
        for _ in range(4 * 32 + 64):  # renormalize (bounded: a wrong variant may not end)
            if high < _HALF:
                emit(0)
            elif low >= _HALF:
                emit(1)
                low, high = low - _HALF, high - _HALF
            elif middle and low >= _QUARTER and high < 3 * _QUARTER:
                pending += 1
                low, high = low - _QUARTER, high - _QUARTER
            else:
                break
            low, high = 2 * low, 2 * high + 1
    if final:
        pending += 1 if final_pending else 0
        emit(0 if low < _QUARTER else 1)
    return bits


_CODER_MISTAKES = {
    "forgot the final bits: after the last symbol, count one more pending bit and emit 0 if "
    "low < 1/4 else 1 (then the pending bits)": {"final": False},
    "emitted the final bit without its pending bit: after the loop add 1 to pending before "
    "emitting 0 if low < 1/4 else 1": {"final_pending": False},
    "emitted the pending bits equal to the resolved bit: they are the opposite bit, 1 - bit": {
        "opposite": False
    },
    "forgot the - 1 in the update of high: high = low + r * cdf[s + 1] // total - 1": {
        "minus_one": False
    },
    "left out the middle case: when low >= 1/4 and high < 3/4, count a pending bit and double "
    "around the middle": {"middle": False},
}


def _coder_cases(seed: int) -> list[tuple[check.Case, str, list[int], np.ndarray]]:
    """The notebook's three cases and a single symbol at seed 0; other seeds draw the numbers of
    symbols n and the alphabet sizes K (uniform, straddling the middle, random with a symbol
    of probability 1e-9 that occurs anyway, and a short random message)."""
    cases = check.sizes(seed, n=(3, 60, 400, 1, range(1, 500)), K=(3, 3, 5, 2, range(2, 9)))
    out = []
    shared = np.random.default_rng(0)  # at seed 0, the notebook's draws
    for case in cases:
        rng = shared if seed == 0 else case.rng(0)
        n, K = case.n, case.K
        if case.index == 0:
            sym = [0, 2, 1] if case.shown else rng.integers(0, K, n).tolist()
            name = f"{n} uniform symbols"
            cdfs = coding.cdf_from_probs(np.full((n, K), 1 / K))
        elif case.index == 1:  # the interval keeps straddling the midpoint
            n, K = max(n, 40), max(K, 3)
            p = np.full(K, 0.9 / (K - 1))
            p[K // 2] = 0.1
            name, sym = f"{n} symbols in the middle of the interval", [K // 2] * n
            cdfs = coding.cdf_from_probs(np.tile(p, (n, 1)))
        else:
            p = rng.dirichlet(np.full(K, 0.3), size=n)
            p[:, 0] = 1e-9  # a symbol the model thinks (almost) impossible ...
            sym = [int(rng.choice(K, p=q / q.sum())) for q in p]
            for i in (n // 40, n // 2):  # ... occurs anyway
                sym[i] = 0
            name = f"{n} symbol{'s' if n > 1 else ''} from random distributions"
            cdfs = coding.cdf_from_probs(p)
        out.append((case, name, sym, cdfs))
    return out


def check_arithmetic_encoder(encode_fn: Callable, *, seed: int = 0) -> check.Result:
    """``encode_fn(symbols, cdfs) -> list of bits``; decoded by ``coding.decode``."""
    with check.exercise("arithmetic encoder") as ex:
        coder_cases = _coder_cases(seed)
        for case in ex.cases([c for c, *_ in coder_cases]):
            _, name, symbols, cdfs = coder_cases[case.index]
            bits = ex.call(encode_fn, list(symbols), cdfs)
            ex.require(bits is not None, "your encoder returned None: return the list of bits")
            bits = [int(b) for b in bits]
            ex.require(set(bits) <= {0, 1}, "your encoder must return a list of 0/1 bits")
            q = np.diff(cdfs, axis=1)[np.arange(len(symbols)), symbols] / cdfs[:, -1]
            ideal = float(-np.log2(q).sum())
            decoded = coding.decode(bits, cdfs)
            if decoded != list(symbols):
                first = next(i for i, (a, b) in enumerate(zip(decoded, symbols)) if a != b)
                named = [
                    mistake
                    for mistake, options in _CODER_MISTAKES.items()
                    if bits == _encode_variant(symbols, cdfs, **options)
                ]
                if bits == _encode_variant(symbols[:-1], cdfs[:-1]):
                    named.append(
                        "did not encode the last symbol (an off-by-one in the loop): encode every "
                        "symbol, then finish"
                    )
                ex.require(not named, f"{name}: it looks like you " + "; or you ".join(named))
                n = len(symbols)
                if len(bits) < ideal / 2:  # nearly nothing emitted along the way
                    ex.require(
                        False,
                        f"{name}: only {len(bits)} bits for {ideal:.0f} bits of "
                        "information; renormalize after every symbol: while the interval "
                        "lies in one half, emit that bit and double the interval",
                    )
                if "middle of the interval" in name:
                    ex.require(
                        False,
                        f"{name}: decoding fails at symbol {first} when the interval "
                        "straddles the midpoint: handle low >= 1/4 and high < 3/4 by "
                        "counting a pending bit and doubling around the middle",
                    )
                if first >= n - 2:
                    ex.require(
                        False,
                        f"{name}: only the last symbol{'s' if first < n - 1 else ''} decode "
                        "wrong: after the loop, emit the final bits (one more pending bit, then 0 "
                        "if low < 1/4 else 1)",
                    )
                raise check.CheckFailed(
                    f"{name}: the decoder reads symbol {first} as {decoded[first]}, "
                    f"not {symbols[first]}: check the interval update "
                    "low + range * cdf[s] // total and the pending bits",
                    generic=True,
                )
            ex.require(
                len(bits) <= ideal + 2 + 1e-9 or len(bits) <= ideal * 1.01 + 2,
                f"{name}: {len(bits)} bits, more than -log2 q + 2 = {ideal + 2:.1f}",
            )
    return ex.result

"""Benchmark: the course's arithmetic coder against `constriction`, on random distributions.

    python benchmarks/bench_compression.py [--n 20000] [--levels 17]

Prints, for the same quantized distributions, the code length of each coder against the
ideal -log2 q, and the encode and decode speed. The course's coder is plain Python (meant
to be read); constriction is Rust, so expect it to be about two orders of magnitude faster.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from coursekit.autoregressive import coding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="number of symbols")
    parser.add_argument("--levels", type=int, default=17, help="alphabet size")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(args.levels, 0.5), size=args.n)
    sym = (p.cumsum(1) < rng.random((args.n, 1))).sum(1).clip(max=args.levels - 1)
    cdf = coding.cdf_from_probs(p)
    q = np.diff(cdf, axis=1) / cdf[:, -1:]
    ideal = float(-np.log2(q[np.arange(args.n), sym]).sum())

    t0 = time.perf_counter()
    bits = coding.encode(sym, cdf)
    t1 = time.perf_counter()
    assert coding.decode(bits, cdf) == sym.tolist()
    t2 = time.perf_counter()
    print(f"{args.n} symbols, {args.levels} levels; ideal -log2 q = {ideal:.0f} bits")
    print(
        f"coursekit.autoregressive.coding: {len(bits)} bits (+{len(bits) - ideal:.1f}), "
        f"encode {args.n / (t1 - t0) / 1e3:.0f}k sym/s, decode {args.n / (t2 - t1) / 1e3:.0f}k sym/s"
    )
    try:
        import constriction
    except ImportError:
        print("constriction is not installed (pip install constriction) - skipped")
        return
    model = constriction.stream.model.Categorical(perfect=False)
    t0 = time.perf_counter()
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(sym.astype(np.int32), model, q)
    t1 = time.perf_counter()
    out = constriction.stream.queue.RangeDecoder(enc.get_compressed()).decode(model, q)
    t2 = time.perf_counter()
    assert np.array_equal(out, sym)
    print(
        f"constriction:     {enc.num_bits()} bits (+{enc.num_bits() - ideal:.1f}), "
        f"encode {args.n / (t1 - t0) / 1e3:.0f}k sym/s, decode {args.n / (t2 - t1) / 1e3:.0f}k sym/s"
    )


if __name__ == "__main__":
    main()

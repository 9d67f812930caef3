"""Cost of one outer step of fit_w2 per method at d = 2 and d = 64, and the batched conjugate solve against a
Python loop over samples.

Methods are timed interleaved (w2gn, minimax, restricted, w2gn, …) for ``--reps`` repetitions, each a
``fit_w2(steps=--steps, pretrain=False)`` call; the per-step time is W2Fit.seconds / steps (training loop only).
minimax's outer step includes its K = 5 inner g-steps; restricted's includes an L-BFGS conjugate solve
(≤ 30 iterations, tol 1e-3) for the whole batch. Batch 512 (fit_w2's default), one torch thread.

    OMP_NUM_THREADS=1 python benchmarks/bench_fit_w2.py [--reps 3] [--steps 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.ot import ICNN, fit_w2  # noqa: E402
from zoo.ot.icnn import conjugate_argmax  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    methods = ["w2gn", "minimax", "restricted"]
    for d in args.dims:
        g = torch.Generator().manual_seed(d)
        A = torch.randn(d, d, generator=g) / d**0.5
        src = lambda n: torch.randn(n, d)
        tgt = lambda n: 1.0 + torch.randn(n, d) @ A.T
        times = {m: [] for m in methods}
        cpu = {m: [] for m in methods}
        for _ in range(args.reps):
            for m in methods:  # interleaved
                fit = fit_w2(src, tgt, method=m, steps=args.steps, pretrain=False, n_eval=256, seed=0)
                times[m].append(fit.seconds / args.steps)
                cpu[m].append(fit.cpu_seconds / args.steps)
        for m in methods:
            t = times[m]
            print(f"d={d:3d} {m:10s} outer step: CPU median {1000 * statistics.median(cpu[m]):8.1f} ms, "
                  f"wall median {1000 * statistics.median(t):8.1f} ms (min {1000 * min(t):.1f}, "
                  f"max {1000 * max(t):.1f}, reps {len(t)})", flush=True)

    # batched conjugate vs a Python loop over samples (same solver, same tolerance)
    d, n = 8, 64
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[64, 64, 32])
    y = torch.randn(n, d)
    tb, tl = [], []
    for _ in range(args.reps):
        t0 = time.process_time()
        xb = conjugate_argmax(psi, y, tol=1e-4, max_iter=100)
        tb.append(time.process_time() - t0)
        t0 = time.process_time()
        xl = torch.cat([conjugate_argmax(psi, y[i:i + 1], tol=1e-4, max_iter=100) for i in range(n)])
        tl.append(time.process_time() - t0)
    print(f"conjugate d={d}, n={n} (CPU time): batched {1000 * statistics.median(tb):.1f} ms, per-sample loop "
          f"{1000 * statistics.median(tl):.1f} ms, ratio {statistics.median(tl) / statistics.median(tb):.1f}x, "
          f"max |Δx| {float((xb - xl).abs().max()):.2e}")


if __name__ == "__main__":
    main()

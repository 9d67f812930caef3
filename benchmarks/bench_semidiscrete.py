"""Benchmark of the semi-discrete OT solver (zoo.ot.semidiscrete).

    python benchmarks/bench_semidiscrete.py [--threads 2] [--quick] [--skip-throughput] [--out NAME.md]

A. Throughput of the score pass (2·N·M·d FLOP: scores ⟨x, y_i⟩ + h_i for M samples and N targets, then a
   per-sample max/argmax) at N = 2,000 / 10,000 and d = 16 / 64 / 100, against the machine's fp32 matmul rate
   (2048³ GEMM) measured in the same run, and against a naive pass (full N×M score matrix + ``argmax``),
   interleaved A/B (``--reps`` rounds of 3 back-to-back calls each; the best call counts).
B. Speed against POT on N = 500 targets uniform in [−0.5, 0.5]^8: our solver runs for ``--budget`` seconds;
   POT's ``ot.semidiscrete.solve_semidiscrete`` (batch 256, lr0 = 1, reg 0, source = the same cube) runs for
   the same wall time (its iteration count read off the per-iteration time stamps of a longer run). Both are scored on the same
   2,000,000 fresh i.i.d. source points: total variation ½‖w − ν‖₁, max_i |w_i/ν_i − 1|, empty cells.

Writes docs/results/aeot/bench_semidiscrete.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.ot.semidiscrete import SemiDiscreteOT, power_argmax  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "aeot"


def header(threads: int) -> str:
    import ot

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} logical CPUs, torch threads {threads}, "
            f"load average at start {tuple(round(v, 1) for v in load)}\n"
            f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"POT {ot.__version__}\ncommand: {' '.join([sys.executable] + sys.argv)}")


def best_time(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def matmul_rate(reps: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    return 2 * 2048**3 / best_time(lambda: a @ b, reps) / 1e9


def naive_pass(x, y, h):
    return torch.addmm(h, x, y.T).argmax(1)


def throughput(reps: int, quick: bool):
    rows = []
    g = torch.Generator().manual_seed(0)
    sizes = [(2000, 16), (2000, 64), (2000, 100), (10000, 16), (10000, 64), (10000, 100)]
    if quick:
        sizes = sizes[:3]
    for n_t, d in sizes:
        y = torch.rand(n_t, d, generator=g) - 0.5
        h = 0.01 * torch.randn(n_t, generator=g)
        m = 8192
        x = torch.rand(m, d, generator=g) - 0.5
        assert torch.equal(power_argmax(x[:512], y, h)[1], naive_pass(x[:512], y, h))
        t_ours, t_naive, t_mm = [], [], []
        for _ in range(reps):  # interleaved A/B with the matmul reference
            t_mm.append(matmul_rate(1))
            # 3 back-to-back calls per round: the first one after another pass's large allocations pays the
            # page faults, a solver running pass after pass does not
            t_ours.append(best_time(lambda: power_argmax(x, y, h), 3))
            t_naive.append(best_time(lambda: naive_pass(x, y, h), 3))
        flop = 2.0 * n_t * m * d
        mm = max(t_mm)
        rows.append((n_t, d, m, min(t_ours), flop / min(t_ours) / 1e9, flop / min(t_naive) / 1e9, mm))
        print(f"N={n_t} d={d} M={m}: ours {min(t_ours) * 1e3:.1f} ms = {rows[-1][4]:.1f} GFLOP/s "
              f"({100 * rows[-1][4] / mm:.0f}% of matmul {mm:.1f}); naive {rows[-1][5]:.1f} GFLOP/s", flush=True)
    return rows


def errors(w: np.ndarray, nu: float):
    return 0.5 * np.abs(w - nu).sum(), np.abs(w / nu - 1).max(), int((w == 0).sum())


def versus_pot(budget: float):
    import ot

    n_t, d = 500, 8
    y = torch.rand(n_t, d, generator=torch.Generator().manual_seed(0)) - 0.5
    s = SemiDiscreteOT(y, lr=1e-2, lr_decay=0.7, patience=20, n_samples=8192, sampler="sobol", tol_tv=0.0, seed=0)
    t0 = time.perf_counter()
    s.fit(10**9, time_limit=budget)
    t_ours = time.perf_counter() - t0

    yn = y.double().numpy()
    rng = np.random.default_rng(0)

    stamps = []

    def sampler(b):  # POT calls it once per iteration: the time stamps give the wall time of every prefix
        stamps.append(time.perf_counter())
        return rng.random((b, d)) - 0.5

    def run_pot(iters):
        stamps.clear()
        t0 = time.perf_counter()
        g = ot.semidiscrete.solve_semidiscrete(yn, sampler, reg=0.0, max_iter=iters, batch_size=256, lr0=1.0)
        return g, time.perf_counter() - t0, [t - t0 for t in stamps]

    # POT's time per iteration is not constant (measured on the idle 2-core machine: a run sized from a
    # 200-iteration warm-up to take 20 s took 82 s), so double the iteration count until a run exceeds the
    # budget, read off that run's per-iteration time stamps how many iterations fit in the budget, and time a
    # final run of that many iterations.
    iters = 200
    gpot, t_pot, elapsed = run_pot(iters)
    while t_pot < t_ours:
        iters *= 2
        gpot, t_pot, elapsed = run_pot(iters)
    if iters > 200:
        iters = int(np.searchsorted(np.asarray(elapsed), t_ours))
        gpot, t_pot, _ = run_pot(iters)
    h_pot = torch.from_numpy((np.asarray(gpot) - (yn**2).sum(1)) / 2).float()

    x = torch.rand(2_000_000, d, generator=torch.Generator().manual_seed(123)) - 0.5
    out = {}
    for name, h in (("ours", s.h), ("POT", h_pot)):
        w = torch.bincount(power_argmax(x, y, h - h.mean())[1], minlength=n_t).double().numpy() / x.shape[0]
        out[name] = errors(w, 1.0 / n_t)
    rows = [("ours (Adam, scrambled Sobol, doubling)", t_ours, s.t, *out["ours"]),
            (f"POT solve_semidiscrete (batch 256, lr0 1, {iters} iters)", t_pot, iters, *out["POT"])]
    for r in rows:
        print(f"{r[0]}: {r[1]:.1f} s, {r[2]} iters, TV {r[3]:.4f}, max rel {r[4]:.3f}, empty {r[5]}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true", help="only part B (speed against POT)")
    ap.add_argument("--out", default="bench_semidiscrete.md", help="file name under docs/results/aeot/")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    head = header(args.threads)
    print(head, flush=True)
    thr = [] if args.skip_throughput else throughput(args.reps, args.quick)
    vs = versus_pot(args.budget)
    lines = ["# Semi-discrete OT solver benchmark", "", "```", head, "```", "",
             "## A. Score-pass throughput (2·N·M·d FLOP per pass, best of interleaved repeats)", "",
             "| N | d | M | time/pass (ms) | ours GFLOP/s | % of matmul | naive GFLOP/s | % of matmul | matmul GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n_t, d, m, t, go, gn, mm in thr:
        lines.append(f"| {n_t} | {d} | {m} | {t * 1e3:.1f} | {go:.1f} | {100 * go / mm:.0f}% | {gn:.1f} | "
                     f"{100 * gn / mm:.0f}% | {mm:.1f} |")
    lines += ["", f"## B. N = 500, d = 8, equal wall time (budget {args.budget:.0f} s); errors on 2,000,000 fresh "
              "i.i.d. points", "", "| solver | wall (s) | iterations | TV ½‖w−ν‖₁ | max_i |w_i/ν_i − 1| | empty |",
              "|---|---|---|---|---|---|"]
    for name, t, it, tv, mx, em in vs:
        lines.append(f"| {name} | {t:.1f} | {it} | {tv:.4f} | {mx:.3f} | {em} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / args.out}")


if __name__ == "__main__":
    main()

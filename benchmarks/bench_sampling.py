#!/usr/bin/env python
"""Throughput (samples/s) and peak memory of ``sample(n)`` per method, ring8 configs, one torch thread.

    python benchmarks/bench_sampling.py            # n = 2,500 (the evaluation protocol) and 100,000; 7 rounds
    python benchmarks/bench_sampling.py --quick    # smoke run (< 30 s)
    python benchmarks/bench_sampling.py --sizes 2500 1000000 --reps 5

Every method is built from configs/<method>/ring8.yaml. ``sample()`` costs the same for any weights of the same
networks, so the GANs are timed as initialised; AE-OT is timed in its generation stage (its real sampler: the
extended semi-discrete OT map, top-k cells + facet-angle test, then the decoder), reached by a short fit
(``--aeot-ae-steps`` autoencoder steps, then the config's OT solve). ICNN-W2 is timed twice: G(z) (the config's
``sample()``) and the composite ∇ψ(G(z)) (``composite_sample=True``: one more ICNN forward + backward).
``sample(n)`` generates in chunks of ``sample_batch_size`` (4096) under ``torch.no_grad()``.

Timing: rounds over all methods (round-robin, so load drifts hit every method alike); per method and n the
median wall and process-CPU time of one ``sample(n)`` call after one warm-up call; samples/s = n / median.
Peak memory: one extra call per method and n, measured as peak RSS (VmHWM, reset through /proc/self/clear_refs
after glibc ``malloc_trim``) minus the RSS just before the call; with CUDA also ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import argparse
import logging
import tempfile
import time
import warnings

import torch

from _common import METHODS, Clock, PeakMemory, build, header, med, md_table, trainer

warnings.filterwarnings("ignore", ".*does not have many workers.*")
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

WHAT = {
    "vanilla": "G(z), MLP 3×128",
    "wgan_gp": "G(z), MLP 3×128",
    "sngan": "G(z), MLP 3×64",
    "srgan": "G(z), MLP 3×64",
    "icnn_w2": "G(z), MLP 3×128",
    "icnn_w2 (composite)": "∇ψ(G(z)): G + ICNN forward/backward",
    "dual_flow": "G(z), MLP 3×128",
    "aeot": "extended OT map (top-8 of 256 cells, angle test) + decoder",
}


def aeot_generation_stage(ae_steps: int, ot_iters=None):
    """AE-OT after ``ae_steps`` autoencoder steps and its OT solve (a real fit; stage == "done")."""
    over = {} if ot_iters is None else {"ot_max_iters": int(ot_iters)}
    model, dm, _ = build("aeot", seed=0, max_gen_steps=ae_steps, **over)
    with tempfile.TemporaryDirectory() as root:
        with Clock() as clk:
            trainer(root=root).fit(model, datamodule=dm)
    assert model.stage == "done", model.stage
    print(f"  aeot: {ae_steps} autoencoder steps + OT solve ({int(model.generation_stats.get('ot/iters', -1))} "
          f"iterations) in {clk.wall:.1f} s wall, {clk.cpu:.1f} s CPU", flush=True)
    return model


def samplers(methods, ae_steps: int, ot_iters=None):
    out = {}
    for m in methods:
        if m == "aeot":
            mod = aeot_generation_stage(ae_steps, ot_iters)
            out[m] = lambda n, mod=mod: mod.sample(n)
            continue
        model, _, _ = build(m, seed=0)
        model.eval()
        out[m] = lambda n, model=model: model.sample(n)
        if m == "icnn_w2":
            model.data_scale.fill_(1.0)  # the first real batch sets it in training; any positive value does here
            out["icnn_w2 (composite)"] = lambda n, model=model: model.sample(n, composite=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--sizes", nargs="+", type=int, default=[2500, 100_000])
    p.add_argument("--reps", type=int, default=7, help="timed rounds (after one warm-up round)")
    p.add_argument("--aeot-ae-steps", type=int, default=300)
    p.add_argument("--aeot-ot-iters", type=int, default=None, help="cap of the OT solve (default: the config's)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: n = 2,500 and 20,000, 2 rounds, AE-OT after 50 AE steps and 50 OT iterations")
    a = p.parse_args()
    _common.setup(1)
    if a.quick:
        a.sizes, a.reps, a.aeot_ae_steps, a.aeot_ot_iters = [2500, 20_000], 2, 50, 50
    print(header(), flush=True)
    print(f"settings: sizes {a.sizes}, {a.reps} round-robin rounds after a warm-up round, 1 torch thread", flush=True)
    fns = samplers(a.methods, a.aeot_ae_steps, a.aeot_ot_iters)
    times = {(m, n): [] for m in fns for n in a.sizes}
    cpus = {(m, n): [] for m in fns for n in a.sizes}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for m, fn in fns.items():  # warm-up
            for n in a.sizes:
                fn(n)
        t0 = time.perf_counter()
        for _ in range(a.reps):
            for n in a.sizes:
                for m, fn in fns.items():
                    with Clock() as clk:
                        x = fn(n)
                    assert x.shape[0] == n
                    times[(m, n)].append(clk.wall)
                    cpus[(m, n)].append(clk.cpu)
        timed = time.perf_counter() - t0
        mem = {}
        for m, fn in fns.items():
            for n in a.sizes:
                with PeakMemory() as pm:
                    fn(n)
                mem[(m, n)] = pm
    rows = []
    for m in fns:
        for n in a.sizes:
            w, c = med(times[(m, n)]), med(cpus[(m, n)])
            pm = mem[(m, n)]
            row = {"method": m, "sample()": WHAT.get(m, ""), "n": f"{n:,}",
                   "ms per call, wall (median [min, max])": f"{1e3 * w:.2f} [{1e3 * min(times[(m, n)]):.2f}, "
                                                            f"{1e3 * max(times[(m, n)]):.2f}]",
                   "ms CPU": f"{1e3 * c:.2f}", "samples/s (wall)": f"{n / w:,.0f}", "samples/s (CPU)": f"{n / c:,.0f}",
                   "peak RSS Δ (MiB)": f"{pm.rss_increment:.1f}"}
            if pm.cuda_peak is not None:
                row["CUDA peak Δ (MiB)"] = f"{pm.cuda_increment:.1f}"
            rows.append(row)
    print(f"\ntimed rounds: {timed:.1f} s wall; load average at end: {_common.load_average()}\n")
    print(md_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

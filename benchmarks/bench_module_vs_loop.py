#!/usr/bin/env python
"""Training-step time of each zoo method as a Lightning module against a plain PyTorch loop doing the same
arithmetic on the same nets and data (target: ratio ≤ 1.05 on CPU), plus peak memory of both.

    python benchmarks/bench_module_vs_loop.py            # full: every method, logger off and CSV logger on
    python benchmarks/bench_module_vs_loop.py --quick    # smoke run (< 30 s)
    python benchmarks/bench_module_vs_loop.py --methods vanilla aeot --logger none --budget 30
    python benchmarks/bench_module_vs_loop.py --profile vanilla   # where the module's extra time goes

**A (module)**: a real ``pl.Trainer.fit`` of the method built from configs/<method>/ring8.yaml on ring8
(batch 256, ``data.batches_per_step`` as the config sets it — 10 for the 2-D configs — or ``--batches-per-step``):
manual optimization, progress bar, checkpointing and model summary off, a log row every 50 batches
(``log_every_n_steps`` = 50 // batches_per_step, as the configs set it), logger off (``--logger none``) or
Lightning's ``CSVLogger`` (``--logger csv``; train.py always writes CSV logs). No evaluation callbacks: the loop
alone.

**B (plain loop)**: the same arithmetic without Lightning: a deep copy of the module's networks (taken before
the fit, so the same initial weights), the optimizers of the module's own ``configure_optimizers`` (plain
``torch.optim`` objects), the same loss functions (the zoo's pure functions where the method has them:
``critic_loss``, ``w2gn_loss``, ``potential_grad``, ``spectral_regularize_``, ``witness_grad``,
``energy_distance``), ``loss.backward()`` / ``opt.step()``, Python-int counters, and its own plain
``torch.utils.data.DataLoader`` over the same data set (``datamodule.train_dataloader()`` with one batch per
item, fetched batch by batch). Everything the
module computes each step is computed, including values it computes only to log them, on the batches where the
module computes them (dual-flow's batch energy distance every step; ICNN's W2 estimate on logging batches only, as
the module's ``will_log()``); only Lightning's loop and the logging calls are absent.
``--check`` replays the module's first batches and RNG states through B and compares all weights and buffers
(max |Δ|; 0 means bit-identical arithmetic).

**Interleaving**: B runs inside A's fit, from a callback, in blocks of ``--block`` generator steps (default: about
10 batches, i.e. 10 generator steps for n_dis = 1 and 2 for WGAN-GP / ICNN-W2's n_dis = 5) at generator-step
boundaries, in the order A B B A A B B A … (so neither side always goes first). A block's time is the wall /
process-CPU time between two boundaries: for A everything Lightning does for those batches (data fetching, hooks,
``training_step``, optimizer and backward plumbing, logging); for B the plain loop.
Two warm-up pairs are discarded; then pairs run until ``--budget`` seconds or ``--max-pairs``. Reported per
method: median ms per generator step of A and B (wall and CPU), the ratio of medians, and the median and
interquartile range of the per-pair ratios A_k / B_k.

**Ablations** (``--ablations``, on in the full run; logger off), other versions of A against the same B:
``raw-opt`` — the module's ``self.optimizers()`` returns the raw ``torch.optim`` optimizers and ``manual_backward``
is ``loss.backward()`` (Lightning's optimizer / backward plumbing bypassed, its loop kept); ``plain-step`` — the
module's ``training_step`` is B's arithmetic on the module's own nets (no zoo step code, no logging; what is left
of A − B is Lightning's loop). ``--hidden 512 512 512`` widens every MLP to show that the overhead is per batch.

**Diagnosis** (``--diagnose``, on in the full run): per method, the CPU cost of Lightning's loop per batch with an
empty ``training_step`` (against iterating the DataLoader), per-call costs inside the method's fit (CPU µs) of
``LightningOptimizer.step`` / ``manual_backward`` / ``self.optimizers()`` against their plain counterparts and of
the zoo's bookkeeping (counters, ``log_train`` on non-logging and logging batches), the number of batches /
optimizer steps / backward calls per generator step, the overhead model they give, and (ICNN-W2, dual flow) the
cost of the values the zoo computes every step but logs 1 batch in 50 (B with and without them, interleaved).
``--profile METHOD`` prints the same plus a cProfile of the fit.

**Peak memory** (``--memory``, on in the full run): one fresh subprocess per method builds the method, then
measures a Lightning fit of ``--memory-steps`` generator steps and then the plain loop for as many, each as
peak resident set size (VmHWM, reset with /proc/self/clear_refs after ``malloc_trim``) minus the RSS at its
start, and the process's total peak RSS. With CUDA available the probe runs on the GPU and also reports
``torch.cuda.max_memory_allocated`` (the A/B timing is CPU-only).

This file holds the A/B timing, the same-arithmetic check and the command line; the plain loops are in
``_plain_loops.py``, the overhead diagnosis (``--diagnose``, ``--profile``, ``--nvml-only``) in ``_loop_overhead.py``
and the memory probe in ``_memory_probe.py``.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import argparse
import json
import logging
import tempfile
import time
import warnings
from typing import List

import pytorch_lightning as pl
import torch

from _common import Clock, METHODS, build, header, iqr, med, md_table, trainer
from datamodules.base import BatchGroup
from _plain_loops import ALL_METHODS, DATA_OVERRIDES, OVERRIDES, PLAIN, PlainLoop, fit_trainer, make
from _loop_overhead import NVML_ENV, lean_ab, nvml_ab, profile
from _memory_probe import memory_all, memory_child


warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*`training_step` returned `None`.*")
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)


# =========================================================================================== A/B timing
class ABTimer(pl.Callback):
    """Alternates blocks of ``block`` generator steps of the Lightning fit (A) and of the plain loop (B) in the
    order A B B A A B B A … and records the wall / CPU seconds of each block (an A block ends at the first step
    boundary past ``block`` generator steps — later when batches are grouped — and is scaled to ``block`` steps)."""

    def __init__(self, plain: PlainLoop, block: int, warmup_pairs: int, budget_s: float, max_pairs: int,
                 min_pairs: int):
        self.plain, self.block = plain, block
        self.warmup_pairs, self.budget_s = warmup_pairs, budget_s
        self.max_pairs, self.min_pairs = max_pairs, min_pairs
        self.a: List[tuple] = []  # (wall, cpu) per A block
        self.b: List[tuple] = []
        self.n_a = 0
        self.t_start = None
        self.gen_step = lambda m: m.gen_step

    def _mark(self):
        self.w, self.c = time.perf_counter(), time.process_time()

    def on_train_start(self, trainer, m):
        self.g0 = self.gen_step(m)
        self.t_start = time.perf_counter()
        self._mark()

    def _run_b(self):
        w, c = time.perf_counter(), time.process_time()
        self.plain.run(self.block)
        self.b.append((time.perf_counter() - w, time.process_time() - c))

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        steps = self.gen_step(m) - self.g0
        if steps < self.block:
            return
        w, c = time.perf_counter(), time.process_time()  # end of A block k (≥ block steps: batches may be grouped)
        self.a.append(((w - self.w) * self.block / steps, (c - self.c) * self.block / steps))
        k = self.n_a
        self.n_a += 1
        # order A0 B0 B1 A1 A2 B2 B3 A3 …: after an even-numbered A block run two B blocks, after an odd one none
        if k % 2 == 0:
            self._run_b()
            self._run_b()
        pairs = min(len(self.a), len(self.b)) - self.warmup_pairs
        elapsed = time.perf_counter() - self.t_start
        if k % 2 == 1 and pairs >= self.min_pairs and (elapsed >= self.budget_s or pairs >= self.max_pairs):
            trainer.should_stop = True
        self.g0 = self.gen_step(m)
        self._mark()


class RawPlumbing(pl.Callback):
    """Ablation: the module's ``self.optimizers()`` returns the raw ``torch.optim`` optimizers and
    ``manual_backward(loss)`` is ``loss.backward()`` (Lightning's loop stays; its optimizer-step and backward
    plumbing — hooks, precision plugin, step counting — is bypassed, so ``trainer.global_step`` stays 0)."""

    def on_train_start(self, trainer, m):
        raw = list(trainer.optimizers)
        m.optimizers = lambda use_pl_optimizer=True: raw[0] if len(raw) == 1 else raw
        m.manual_backward = lambda loss, *args, **kwargs: loss.backward(*args, **kwargs)


class PlainStep(pl.Callback):
    """Ablation: the module's ``training_step`` is replaced by the plain loop's arithmetic on the module's own nets
    and Lightning's raw optimizers (no zoo step code, no logging): what remains of A − B is Lightning's loop."""

    def __init__(self, method: str, dm, ab: ABTimer):
        self.method, self.dm, self.ab = method, dm, ab

    def on_train_start(self, trainer, m):
        inner = PLAIN[self.method](m, self.dm, shared_optimizers=list(trainer.optimizers))

        def training_step(batch, batch_idx):  # every batch of a group, as the module's training_step
            for b in batch if isinstance(batch, BatchGroup) else (batch,):
                inner.one_batch(m.real_from_batch(b))

        m.training_step = training_step
        self.ab.gen_step = lambda _m: inner.gen_step
        self.ab.g0 = 0


def ab_run(method: str, logger_kind: str, block: int, budget_s: float, max_pairs: int, min_pairs: int,
           warmup_pairs: int = 2, seed: int = 0, variant: str = "module") -> dict:
    model, dm = make(method, seed)
    plain = PLAIN[method](model, dm)
    ab = ABTimer(plain, block, warmup_pairs, budget_s, max_pairs, min_pairs)
    extra = {"module": [], "raw-opt": [RawPlumbing()], "plain-step": [PlainStep(method, dm, ab)]}[variant]
    callbacks = extra + [ab]
    with tempfile.TemporaryDirectory() as root:
        logger = pl.loggers.CSVLogger(root, name="bench") if logger_kind == "csv" else False
        tr = fit_trainer(dm, callbacks, logger=logger, root=root)
        with Clock() as clk:
            tr.fit(model, datamodule=dm)
    n = min(len(ab.a), len(ab.b))
    a, b = ab.a[warmup_pairs:n], ab.b[warmup_pairs:n]
    per = lambda xs, i: [x[i] / block for x in xs]  # noqa: E731  seconds per generator step
    aw, bw, ac, bc = per(a, 0), per(b, 0), per(a, 1), per(b, 1)
    rw = [x / y for x, y in zip(aw, bw)]
    rc = [x / y for x, y in zip(ac, bc)]
    return {"method": method, "logger": logger_kind, "variant": variant, "pairs": len(a), "block": block,
            "n_dis": plain.n_dis, "a_wall_ms": 1e3 * med(aw), "b_wall_ms": 1e3 * med(bw), "a_cpu_ms": 1e3 * med(ac),
            "b_cpu_ms": 1e3 * med(bc), "ratio_wall": med(aw) / med(bw), "ratio_cpu": med(ac) / med(bc),
            "pair_ratio_wall": med(rw), "pair_ratio_wall_iqr": iqr(rw), "pair_ratio_cpu": med(rc),
            "pair_ratio_cpu_iqr": iqr(rc), "diff_cpu_us": 1e6 * (med(ac) - med(bc)),
            "fit_wall_s": clk.wall, "fit_cpu_s": clk.cpu, "load_end": _common.load_average()}


# =========================================================================================== equivalence
class Recorder(pl.Callback):
    def __init__(self, n_batches: int):
        self.n, self.batches, self.states = n_batches, [], []

    def on_train_batch_start(self, trainer, m, batch, batch_idx):  # a batch, or a group of batches
        self.batches.append([b.clone() for b in batch] if isinstance(batch, BatchGroup) else [batch.clone()])
        self.states.append(torch.get_rng_state())

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        if len(self.batches) >= self.n:
            trainer.should_stop = True


def check_equivalence(method: str, n_batches: int, seed: int = 0) -> dict:
    """Max |Δ| over all weights and buffers after ``n_batches`` batches of A and of B replaying A's batches
    and RNG states (B runs from the same initial weights)."""
    model, dm = make(method, seed)
    plain = PLAIN[method](model, dm)
    rec = Recorder(n_batches)
    with tempfile.TemporaryDirectory() as root:
        trainer([rec], root=root).fit(model, datamodule=dm)
    rng = torch.get_rng_state()
    for group, state in zip(rec.batches, rec.states):
        torch.set_rng_state(state)
        for real in group:
            plain.one_batch(real)
    torch.set_rng_state(rng)
    skip = ("gen_step_buf", "batch_step_buf")
    a, b = model.state_dict(), plain.twin.state_dict()
    diffs = {k: float((a[k].double() - b[k].double()).abs().max()) for k in a
             if k not in skip and a[k].is_floating_point() and a[k].numel() and a[k].shape == b[k].shape}
    worst = max(diffs, key=diffs.get) if diffs else None
    return {"method": method, "batches": sum(map(len, rec.batches)), "tensors": len(diffs),
            "max_abs_diff": diffs[worst] if worst else float("nan"), "worst": worst,
            "gen_steps": (model.gen_step, plain.gen_step)}


# =========================================================================================== main
def nvml_table(nv: List[dict]) -> str:
    return md_table([{"method": r["method"], "pairs": r["pairs"], "env at start": r["env_at_start"],
                      "B with =1 (ms CPU/gen step)": f"{r['on_cpu_ms']:.2f}",
                      "B without": f"{r['off_cpu_ms']:.2f}",
                      "ratio: median [IQR]": f"{r['ratio_cpu']:.3f} [{r['ratio_cpu_iqr'][0]:.3f}, "
                                             f"{r['ratio_cpu_iqr'][1]:.3f}]"} for r in nv],
                    ["method", "pairs", "env at start", "B with =1 (ms CPU/gen step)", "B without",
                     "ratio: median [IQR]"])


def block_of(method: str, block: int) -> int:
    """Generator steps per timed block: ``block``, or (0) about 10 batches: 10 for n_dis = 1, 2 for n_dis = 5."""
    if block:
        return block
    return 1 if method == "sngan_cifar10" else 2 if method in ("wgan_gp", "icnn_w2") else 10


def fmt_row(r: dict) -> dict:
    lo, hi = r["pair_ratio_wall_iqr"]
    clo, chi = r["pair_ratio_cpu_iqr"]
    ok = r["pair_ratio_wall"] <= 1.05 and r["pair_ratio_cpu"] <= 1.05
    return {"method": r["method"], "A variant": r["variant"], "logger": r["logger"], "n_dis": r["n_dis"],
            "pairs × block": f"{r['pairs']} × {r['block']}",
            "A ms/gen step wall": f"{r['a_wall_ms']:.2f}", "B ms/gen step wall": f"{r['b_wall_ms']:.2f}",
            "A/B wall: median [IQR]": f"**{r['pair_ratio_wall']:.3f}** [{lo:.3f}, {hi:.3f}]",
            "A ms CPU": f"{r['a_cpu_ms']:.2f}", "B ms CPU": f"{r['b_cpu_ms']:.2f}",
            "A/B CPU: median [IQR]": f"**{r['pair_ratio_cpu']:.3f}** [{clo:.3f}, {chi:.3f}]",
            "A − B CPU µs/gen step": f"{r['diff_cpu_us']:.0f}",
            "≤ 1.05": "yes" if ok else "**no**"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=ALL_METHODS,
                   help="ring8 configs; sngan_cifar10: the CIFAR-10 SN-GAN nets on synthetic images (see IMAGE_CONFIG)")
    p.add_argument("--logger", choices=["none", "csv", "both"], default="both",
                   help="logger of the module's fit (both: one A/B run with each)")
    p.add_argument("--ablations", action=argparse.BooleanOptionalAction, default=None,
                   help="also run A as 'raw-opt' (Lightning's optimizer/backward plumbing bypassed) and 'plain-step' "
                        "(training_step = the plain arithmetic), logger off (default: on, off with --quick)")
    p.add_argument("--block", type=int, default=0,
                   help="generator steps per timed block; 0 (default): 10 for n_dis = 1, 2 for n_dis = 5 (10 batches)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timed pairs per method and variant")
    p.add_argument("--max-pairs", type=int, default=200)
    p.add_argument("--min-pairs", type=int, default=8)
    p.add_argument("--check", type=int, default=30, help="batches of the equivalence check (0: skip)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="peak-memory subprocesses (default: on, off with --quick)")
    p.add_argument("--memory-steps", type=int, default=100)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--diagnose", action=argparse.BooleanOptionalAction, default=None,
                   help="per-method overhead model (Lightning loop, plumbing, zoo bookkeeping; default: on, off "
                        "with --quick)")
    p.add_argument("--profile", nargs="+", default=None, choices=ALL_METHODS,
                   help="only diagnose these methods, with a cProfile of the fit")
    p.add_argument("--profile-batches", type=int, default=500)
    p.add_argument("--nvml-only", action="store_true",
                   help=f"only measure the plain loop with / without {NVML_ENV}=1 (set by importing Lightning)")
    p.add_argument("--hidden", nargs="+", type=int, default=None,
                   help="override the MLP widths of every method's config (e.g. 512 512 512)")
    p.add_argument("--batches-per-step", type=int, default=None,
                   help="the module's datamodule hands K batches to each training step (default: the config's); "
                        "the plain loop always fetches batch by batch")
    p.add_argument("--quick", action="store_true", help="smoke run: vanilla + aeot, tiny budgets, no memory")
    p.add_argument("--json", default=None, help="also write all results as JSON to this file")
    a = p.parse_args()
    _common.setup(1)
    if not a.nvml_only:  # the environment train.py trains in (zoo.cli.skip_nvml_cuda_check), for A and B alike
        try:
            from zoo.cli import skip_nvml_cuda_check
        except ImportError:  # before a0b2bbe importing zoo.base did it (runs against older revisions)
            import zoo.base  # noqa: F401
        else:
            skip_nvml_cuda_check()
    if a.hidden:
        OVERRIDES["hidden"] = list(a.hidden)
    if a.batches_per_step is not None:
        DATA_OVERRIDES["batches_per_step"] = int(a.batches_per_step)
    if a.memory_child:
        print(json.dumps(memory_child(a.memory_child, a.memory_steps)))
        return
    print(header(), flush=True)
    if a.nvml_only:
        nv = [nvml_ab(m, block_of(m, a.block), a.budget / 2, min_pairs=a.min_pairs) for m in a.methods]
        print(f"\n### Plain loop with / without {NVML_ENV}=1 (set by `import lightning_fabric`)\n")
        print(nvml_table(nv))
        return
    if a.profile:
        for method in a.profile:
            profile(method, a.profile_batches, cprofile=True)
        return
    if a.quick:
        a.methods = a.methods if a.methods != METHODS else ["vanilla", "aeot"]
        a.budget, a.min_pairs, a.max_pairs, a.check = 1.5, 3, 6, 5
        a.logger = "none" if a.logger == "both" else a.logger
        a.memory_steps, a.profile_batches = 30, 100
    full = not a.quick
    a.memory = full if a.memory is None else a.memory
    a.ablations = full if a.ablations is None else a.ablations
    a.diagnose = full if a.diagnose is None else a.diagnose
    arms = [("module", lg) for lg in (["none", "csv"] if a.logger == "both" else [a.logger])]
    if a.ablations:
        arms += [("raw-opt", "none"), ("plain-step", "none")]
    blocks = a.block or "10 (n_dis = 1) or 2 (n_dis = 5)"
    print(f"settings: ring8, configs/<method>/ring8.yaml nets and batch (256), 1 torch thread, blocks of {blocks} "
          f"generator steps in the order A B B A …, 2 warm-up pairs discarded, {a.budget:.0f} s of pairs per method "
          f"and arm (min {a.min_pairs}, max {a.max_pairs} pairs); arms (A variant, logger): {arms}", flush=True)
    t_all = time.perf_counter()
    checks = []
    if a.check:
        for method in a.methods:
            checks.append(check_equivalence(method, a.check))
            print(f"  check {method}: {checks[-1]}", flush=True)
    rows = []
    for method in a.methods:
        for variant, lg in arms:
            r = ab_run(method, lg, block_of(method, a.block), a.budget, a.max_pairs, a.min_pairs, variant=variant)
            rows.append(r)
            print(f"  {method:9s} {variant:7s} logger={lg:4s}: A {r['a_wall_ms']:.3f} ms, B {r['b_wall_ms']:.3f} ms "
                  f"per gen step (wall); pair ratio wall {r['pair_ratio_wall']:.3f} IQR "
                  f"[{r['pair_ratio_wall_iqr'][0]:.3f}, {r['pair_ratio_wall_iqr'][1]:.3f}], CPU "
                  f"{r['pair_ratio_cpu']:.3f}; A − B {r['diff_cpu_us']:.0f} µs CPU; {r['pairs']} pairs; load "
                  f"{r['load_end']}", flush=True)
    diag = [profile(m, a.profile_batches, cprofile=False) for m in a.methods] if a.diagnose else []
    lean = [lean_ab(m, block_of(m, a.block), a.budget / 2, min_pairs=a.min_pairs) for m in a.methods
            if m in ("icnn_w2", "dual_flow")] if a.diagnose else []
    for r in lean:
        print(f"  log-only values {r['method']}: {r}", flush=True)
    nv = [nvml_ab(m, block_of(m, a.block), a.budget / 2, min_pairs=a.min_pairs) for m in a.methods] \
        if a.diagnose else []
    for r in nv:
        print(f"  {NVML_ENV} {r['method']}: {r}", flush=True)
    mem = memory_all(a.methods, a.memory_steps) if a.memory else []
    print(f"\ntotal: {time.perf_counter() - t_all:.0f} s wall; load average at end: {_common.load_average()}")

    print("\n### Module (Lightning fit) vs plain loop, per generator step\n")
    print(md_table([fmt_row(r) for r in rows], list(fmt_row(rows[0]))))
    if checks:
        print("\n### Same arithmetic: B replaying A's batches and RNG states from the same initial weights\n")
        print(md_table([{"method": c["method"], "batches": c["batches"], "tensors compared": c["tensors"],
                         "max abs diff": f"{c['max_abs_diff']:.3g}", "gen steps A / B": "%d / %d" % c["gen_steps"]}
                        for c in checks], ["method", "batches", "tensors compared", "max abs diff", "gen steps A / B"]))
    if diag:
        print("\n### Where A − B goes (CPU µs per generator step; overhead model from per-call costs)\n")
        measured = {r["method"]: r["diff_cpu_us"] for r in rows if r["variant"] == "module" and r["logger"] == "none"}
        keys = list(diag[0]["predicted_overhead_us"])
        dcols = ["method", "steps / batches / opt steps / backwards per gen step"] + keys + ["model total",
                                                                                           "measured A − B"]
        drows = []
        for d in diag:
            pg = d["per_gen_step"]
            row = {"method": d["method"], "steps / batches / opt steps / backwards per gen step":
                   f"{pg['Lightning steps']:.2f} / {pg['batches']:.0f} / {pg['optimizer steps']:.0f} / "
                   f"{pg['manual_backward calls']:.0f}"}
            row.update({k: f"{v:.0f}" for k, v in d["predicted_overhead_us"].items()})
            row["model total"] = f"{sum(d['predicted_overhead_us'].values()):.0f}"
            row["measured A − B"] = f"{measured.get(d['method'], float('nan')):.0f}"
            drows.append(row)
        print(md_table(drows, dcols))
        print("\nper-call CPU µs (first method's fit): "
              + "; ".join(f"{k} {v:.1f}" for k, v in diag[0]["per_call"].items()))
        print("Lightning loop per training step (empty training_step) − plain DataLoader per item, CPU µs: " +
              ", ".join(f"{d['method']} {d['null_fit_us'] - d['dataloader_us']:.0f}" for d in diag))
    if lean:
        print("\n### Values the zoo computes every step but logs 1 batch in 50 (plain loop with / without them)\n")
        print(md_table([{"method": r["method"], "pairs": r["pairs"],
                         "with (ms CPU/gen step)": f"{r['full_cpu_ms']:.2f}",
                         "without": f"{r['lean_cpu_ms']:.2f}",
                         "ratio: median [IQR]": f"{r['ratio_cpu']:.3f} [{r['ratio_cpu_iqr'][0]:.3f}, "
                                                f"{r['ratio_cpu_iqr'][1]:.3f}]"} for r in lean],
                       ["method", "pairs", "with (ms CPU/gen step)", "without", "ratio: median [IQR]"]))
    if nv:
        print(f"\n### Plain loop with / without {NVML_ENV}=1 (set by `import lightning_fabric`)\n")
        print(nvml_table(nv))
    if mem:
        print(f"\n### Peak memory ({a.memory_steps} generator steps; resource: VmHWM peak RSS, reset per phase)\n")
        cuda = any(m["cuda_module_mib"] is not None for m in mem)
        mcols = ["method", "RSS after build (MiB)", "module fit: peak RSS − RSS at start (MiB)",
                 "plain loop: peak RSS − RSS at start (MiB)", "process peak RSS (MiB)"] + \
            (["CUDA max allocated module / loop (MiB)"] if cuda else [])
        print(md_table([{"method": m["method"], mcols[1]: f"{m['rss_after_build_mib']:.0f}",
                         mcols[2]: f"{m['module_peak_increment_mib']:.1f}",
                         mcols[3]: f"{m['loop_peak_increment_mib']:.1f}",
                         mcols[4]: f"{m['process_peak_rss_mib']:.0f}",
                         "CUDA max allocated module / loop (MiB)": f"{m['cuda_module_mib']} / {m['cuda_loop_mib']}"}
                        for m in mem], mcols))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "checks": checks, "diagnosis": diag, "lean": lean, "nvml": nv, "memory": mem,
                       "header": header()}, f,
                      indent=1, default=str)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Time to quality on ring8: generator steps, wall-clock and CPU seconds until all 8 modes are captured with
≥ 80 % high-quality samples, per method (configs/<method>/ring8.yaml, one torch thread).

    python benchmarks/bench_time_to_quality.py                   # every method, seed 0, caps 3000 steps / 240 s
    python benchmarks/bench_time_to_quality.py --quick           # smoke run (< 30 s): vanilla, caps 200 steps / 10 s
    python benchmarks/bench_time_to_quality.py --methods vanilla wgan_gp --seeds 0 1 2

Each run is a real ``pl.Trainer.fit`` of the method on ring8 (batch 256, logger off, no progress bar, no
checkpoints, none of train.py's evaluation callbacks) with one callback that, every ``--every`` (100) generator
steps, stops the clocks and evaluates the VEEGAN/PacGAN protocol exactly as ``callbacks.modes.ModeCoverage``
does: ``mode_metrics`` of 2,500 samples drawn with ``eval_samples(module, 2500, seed=0)`` (HQ: within 3σ of the
nearest mode). The run stops when modes = 8 and HQ ≥ 80 % (**reached**), or at a cap: ``--max-steps`` (3000)
generator steps or ``--max-seconds`` (240) of wall-clock time of the whole run, evaluations included (**not
reached**). Reported: the generator step of the first passing evaluation, and the training wall-clock and
process-CPU seconds up to it (evaluation time excluded), plus the best evaluation seen.

AE-OT is staged (autoencoder, then the semi-discrete OT, then generation), and its quality exists only after the
OT: its ``gen_step`` counts autoencoder steps plus one for the whole OT solve. Every ``--every`` autoencoder steps
the probe copies the module, runs the OT stage on the copy exactly as training would (``start_ot`` + ``ot_steps``
until the stage is done; the config's solver settings) and evaluates the copy; the live module keeps training its
autoencoder. For AE-OT the reported time is: autoencoder training time up to that step + that probe's OT solve
time, i.e. the cost of a run configured with ``max_gen_steps`` = that step; its generator steps are that + 1.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import argparse
import copy
import json
import logging
import tempfile
import time
import types
import warnings

import pytorch_lightning as pl

from _common import METHODS, Clock, build, header, md_table, trainer

warnings.filterwarnings("ignore", ".*does not have many workers.*")
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

HQ_TARGET, MODES_TARGET = 0.80, 8


def evaluate(module, dm) -> dict:
    from callbacks._util import eval_samples
    from callbacks.modes import mode_metrics

    x = eval_samples(module, 2500, seed=0).float().cpu()
    return mode_metrics(x, dm.modes, dm.mode_std, 3.0)


def aeot_probe(module, dm) -> tuple:
    """(metrics, OT wall s, OT CPU s, OT iterations, converged) of the OT stage run on a copy of ``module``."""
    live = module._trainer
    module._trainer = None
    try:
        probe = copy.deepcopy(module)
    finally:
        module._trainer = live
    probe._trainer = types.SimpleNamespace(datamodule=dm, world_size=1, is_global_zero=True)
    with Clock() as clk:
        probe.start_ot()
        probe._trainer = None  # the solve itself needs no trainer (and logs nothing without one)
        while probe.stage == "ot":
            probe.ot_steps()
    probe._save_stage = None
    s = probe.solver()
    return evaluate(probe, dm), clk.wall, clk.cpu, int(s.t), bool(s.converged)


class TimeToQuality(pl.Callback):
    def __init__(self, method: str, dm, every: int, max_steps: int, max_seconds: float):
        self.method, self.dm, self.every = method, dm, every
        self.max_steps, self.max_seconds = max_steps, max_seconds
        self.evals, self.reached = [], None
        self.eval_wall = self.eval_cpu = 0.0

    def on_train_start(self, trainer, m):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        self.last = m.gen_step

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        g = m.gen_step
        if g == self.last or g % self.every:
            return
        self.last = g
        w, c = time.perf_counter(), time.process_time()
        train_wall, train_cpu = w - self.w0 - self.eval_wall, c - self.c0 - self.eval_cpu
        rec = {"gen_step": g, "train_wall_s": train_wall, "train_cpu_s": train_cpu}
        if self.method == "aeot":
            met, ot_w, ot_c, iters, conv = aeot_probe(m, self.dm)
            rec.update(gen_step=g + 1, ae_steps=g, ot_wall_s=ot_w, ot_cpu_s=ot_c, ot_iters=iters, ot_converged=conv,
                       train_wall_s=train_wall + ot_w, train_cpu_s=train_cpu + ot_c)
        else:
            met = evaluate(m, self.dm)
        rec.update(met)
        self.evals.append(rec)
        ok = met["modes"] >= MODES_TARGET and met["hq"] >= HQ_TARGET
        print(f"    {self.method} step {rec['gen_step']}: modes {met['modes']}, HQ {100 * met['hq']:.1f} %, "
              f"KL {met['kl']:.3f}; train {rec['train_wall_s']:.1f} s wall / {rec['train_cpu_s']:.1f} s CPU"
              + (f" (OT {rec['ot_wall_s']:.1f} s, {rec['ot_iters']} it)" if "ot_wall_s" in rec else ""), flush=True)
        self.eval_wall += time.perf_counter() - w
        self.eval_cpu += time.process_time() - c
        if ok and self.reached is None:
            self.reached = rec
            trainer.should_stop = True
        elif g >= self.max_steps or time.perf_counter() - self.w0 >= self.max_seconds:
            trainer.should_stop = True


def run(method: str, seed: int, every: int, max_steps: int, max_seconds: float) -> dict:
    over = {"max_gen_steps": 10**9} if method == "aeot" else {"max_gen_steps": None}
    model, dm, _ = build(method, seed=seed, **over)
    cb = TimeToQuality(method, dm, every, max_steps, max_seconds)
    with tempfile.TemporaryDirectory() as root:
        with Clock() as clk:
            trainer([cb], root=root).fit(model, datamodule=dm)
    best = max(cb.evals, key=lambda r: (r["modes"], r["hq"])) if cb.evals else {}
    last = cb.evals[-1] if cb.evals else {}
    return {"method": method, "seed": seed, "reached": cb.reached, "best": best, "last": last,
            "evals": cb.evals, "run_wall_s": clk.wall, "run_cpu_s": clk.cpu, "load_end": _common.load_average()}


def row(r: dict, every: int) -> dict:
    hit, best, last = r["reached"], r["best"], r["last"]
    if hit:
        status = "reached"
        steps, wall, cpu = hit["gen_step"], hit["train_wall_s"], hit["train_cpu_s"]
    else:
        status = f"**not reached** (stopped at {last.get('gen_step', 0)} gen steps)"
        steps, wall, cpu = "—", "—", "—"
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else v  # noqa: E731
    return {"method": r["method"], "seed": r["seed"], "8 modes and HQ ≥ 80 %": status, "gen steps": steps,
            "train wall (s)": fmt(wall), "train CPU (s)": fmt(cpu),
            "best eval (step: modes, HQ %)": f"{best.get('gen_step', '—')}: {best.get('modes', '—')}, "
                                             f"{100 * best.get('hq', 0):.1f}",
            "run wall incl. evals (s)": f"{r['run_wall_s']:.0f}", "load at end": r["load_end"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--every", type=int, default=100, help="evaluation cadence in generator steps")
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--max-seconds", type=float, default=240.0, help="wall-clock cap per run, evaluations included")
    p.add_argument("--quick", action="store_true", help="smoke run: vanilla, every 50 steps, caps 200 steps / 10 s")
    p.add_argument("--json", default=None, help="also write all evaluations as JSON to this file")
    a = p.parse_args()
    _common.setup(1)
    if a.quick:
        a.methods = a.methods if a.methods != METHODS else ["vanilla"]
        a.every, a.max_steps, a.max_seconds = 50, 200, 10.0
    print(header(), flush=True)
    print(f"settings: ring8, target modes = {MODES_TARGET} and HQ ≥ {100 * HQ_TARGET:.0f} % "
          f"(2,500 samples, seed 0, 3σ), "
          f"evaluated every {a.every} generator steps; caps {a.max_steps} generator steps or {a.max_seconds:.0f} s "
          f"wall per run; seeds {a.seeds}; 1 torch thread; logger off", flush=True)
    results = []
    t0 = time.perf_counter()
    for seed in a.seeds:
        for method in a.methods:
            results.append(run(method, seed, a.every, a.max_steps, a.max_seconds))
            r = results[-1]
            verdict = f"reached at {r['reached']['gen_step']}" if r["reached"] else "not reached"
            print(f"  {method} seed {seed}: {verdict}"
                  f"; run {r['run_wall_s']:.0f} s wall, {r['run_cpu_s']:.0f} s CPU; load {r['load_end']}", flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s wall; load average at end: {_common.load_average()}\n")
    rows = [row(r, a.every) for r in results]
    print(md_table(rows, list(rows[0])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "header": header()}, f, indent=1, default=str)


if __name__ == "__main__":
    main()

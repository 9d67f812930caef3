"""Where a module's extra time goes (``bench_module_vs_loop.py --diagnose`` / ``--profile`` / ``--nvml-only``):
per-call costs of Lightning's plumbing and the zoo's bookkeeping, the overhead model, values computed only to be
logged, and the plain loop with and without ``PYTORCH_NVML_BASED_CUDA_CHECK``."""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import logging
import os
import tempfile
import time

import pytorch_lightning as pl
import torch

from _common import LOG_EVERY_N_STEPS, iqr, med, trainer
from _plain_loops import PLAIN, fit_trainer, make


def lean_ab(method: str, block: int, budget_s: float, min_pairs: int = 8, max_pairs: int = 200) -> dict:
    """Plain loop with vs without the values the module computes only to log them: ICNN's W2 estimate (incl. a
    ∇ψ̄ pass; logging batches only), dual-flow's batch energy distance (every step). Interleaved A B B A …"""
    model, dm = make(method)
    full, lean = PLAIN[method](model, dm), PLAIN[method](model, dm)
    lean.log_values = False
    t, c = {"full": [], "lean": []}, {"full": [], "lean": []}
    for loop in (full, lean):  # warm-up
        loop.run(block)
    t0, k = time.perf_counter(), 0
    while k < 2 * max_pairs:
        order = [("full", full), ("lean", lean)] if k % 2 == 0 else [("lean", lean), ("full", full)]
        for name, loop in order:
            w0, c0 = time.perf_counter(), time.process_time()
            loop.run(block)
            t[name].append((time.perf_counter() - w0) / block)
            c[name].append((time.process_time() - c0) / block)
        k += 1
        if k >= min_pairs and time.perf_counter() - t0 > budget_s:
            break
    r = [a / b for a, b in zip(c["full"], c["lean"])]
    return {"method": method, "pairs": k, "full_cpu_ms": 1e3 * med(c["full"]), "lean_cpu_ms": 1e3 * med(c["lean"]),
            "ratio_cpu": med(r), "ratio_cpu_iqr": iqr(r)}


NVML_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"


def nvml_ab(method: str, block: int, budget_s: float, min_pairs: int = 8, max_pairs: int = 200) -> dict:
    """The plain loop with and without ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, which ``import lightning_fabric`` sets
    for the whole process: every ``torch.cuda.is_available()`` (each Adam step calls it) then tries to dlopen
    ``libnvidia-ml.so.1`` first. Interleaved A B B A …; returns the ratio with / without."""
    model, dm = make(method)
    on, off = PLAIN[method](model, dm), PLAIN[method](model, dm)
    before = os.environ.get(NVML_ENV)
    c = {"on": [], "off": []}
    try:
        for name, loop in (("on", on), ("off", off)):  # warm-up
            os.environ[NVML_ENV] = "1" if name == "on" else "0"
            loop.run(block)
        t0, k = time.perf_counter(), 0
        while k < 2 * max_pairs:
            order = [("on", on), ("off", off)] if k % 2 == 0 else [("off", off), ("on", on)]
            for name, loop in order:
                os.environ[NVML_ENV] = "1" if name == "on" else "0"
                c0 = time.process_time()
                loop.run(block)
                c[name].append((time.process_time() - c0) / block)
            k += 1
            if k >= min_pairs and time.perf_counter() - t0 > budget_s:
                break
    finally:
        if before is None:
            os.environ.pop(NVML_ENV, None)
        else:
            os.environ[NVML_ENV] = before
    r = [a / b for a, b in zip(c["on"], c["off"])]
    return {"method": method, "pairs": k, "on_cpu_ms": 1e3 * med(c["on"]), "off_cpu_ms": 1e3 * med(c["off"]),
            "ratio_cpu": med(r), "ratio_cpu_iqr": iqr(r), "env_at_start": before}


# =========================================================================================== profile
class _Null(pl.LightningModule):
    """An empty manual-optimization training_step: what remains is Lightning's per-batch loop."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.p = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD([self.p], lr=0.0)


def _per_call(fn, n: int) -> float:
    """Median over 7 rounds of the mean process-CPU time of ``n`` calls (µs)."""
    out = []
    for _ in range(7):
        t = time.process_time()
        for _ in range(n):
            fn()
        out.append((time.process_time() - t) / n * 1e6)
    return med(out)


class _Stop(pl.Callback):
    """Stop after ``batches`` batches in all (batch_idx restarts every epoch)."""

    def __init__(self, batches: int):
        self.batches, self.n = batches, 0

    def on_train_start(self, trainer, m):
        self.c0 = time.process_time()

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        self.n += 1
        if self.n >= self.batches:
            trainer.should_stop = True

    def on_train_end(self, trainer, m):
        self.cpu_per_batch_us = (time.process_time() - self.c0) / max(1, self.n) * 1e6


class _Probe(pl.Callback):
    """Inside a running fit: per-call CPU costs of Lightning's plumbing and of the zoo's bookkeeping, and how
    many optimizer steps / backward calls the method makes per generator step."""

    def __init__(self, at_batch: int):
        self.at, self.out, self.n = at_batch, {}, 0
        self.counts = {"optimizer steps": 0, "manual_backward calls": 0, "Lightning steps": 0}

    def on_train_start(self, trainer, m):
        from pytorch_lightning.core.optimizer import LightningOptimizer

        counts, bwd = self.counts, m.manual_backward

        def counted(step):
            def counted_step(opt, *a, **k):
                counts["optimizer steps"] += 1
                return step(opt, *a, **k)
            return counted_step

        self._restore = [(LightningOptimizer, LightningOptimizer.step)]
        LightningOptimizer.step = counted(LightningOptimizer.step)

        def counted_bwd(loss, *a, **k):
            counts["manual_backward calls"] += 1
            return bwd(loss, *a, **k)

        m.manual_backward = counted_bwd
        self.g0, self.b0 = m.gen_step, m.batch_step

    def on_train_end(self, trainer, m):
        for cls, step in self._restore:
            cls.step = step
        self.counts["gen steps"] = m.gen_step - self.g0
        self.counts["batches"] = m.batch_step - self.b0

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        self.counts["Lightning steps"] += 1
        self.n += 1
        if self.n != self.at:
            return
        from pytorch_lightning.core.optimizer import LightningOptimizer

        n = 3000
        x = torch.zeros(1, requires_grad=True)
        raw = torch.optim.SGD([x], lr=0.0)
        lopt = LightningOptimizer._to_lightning_optimizer(raw, trainer.strategy)
        ((_, step),) = self._restore
        o = self.out
        o["plain: optimizer.step() (SGD, lr 0, one scalar)"] = _per_call(lambda: raw.step(), n)
        o["Lightning: LightningOptimizer.step() (same optimizer)"] = _per_call(lambda: step(lopt), n)
        o["plain: loss.backward() (one-scalar graph)"] = _per_call(lambda: (x * 2).sum().backward(), n)
        o["module: self.manual_backward(loss) (same graph)"] = _per_call(
            lambda: m.__class__.manual_backward(m, (x * 2).sum()), n)
        o["Lightning: self.optimizers()"] = _per_call(m.optimizers, n)
        o["zoo: is_generator_turn()"] = _per_call(m.is_generator_turn, n)
        o["zoo: self.gen_step (int of a buffer)"] = _per_call(lambda: m.gen_step, n)
        buf = m.gen_step_buf.clone()
        o["zoo: count_gen_step()"] = _per_call(m.count_gen_step, n)
        m.gen_step_buf.copy_(buf)
        bs, steps, every = m.batch_step_buf.clone(), m._steps, trainer.log_every_n_steps
        m._steps = every * (steps // every) + 1  # a training step that does not log
        o["zoo: log_train(logs) on a non-logging step"] = _per_call(lambda: m.log_train({}), n)
        o["zoo: count_batch()"] = _per_call(m.count_batch, n)
        m._steps = every * (steps // every + 1)  # a logging step
        logs = {"loss/d": torch.tensor(0.5), "loss/g": torch.tensor(0.7)}
        o["zoo+Lightning: log_train(2 losses) on a logging step"] = _per_call(lambda: m.log_train(logs), 300)
        m.batch_step_buf.copy_(bs)
        m._steps = steps
        ld = int(m.hparams.get("latent_dim", 2))
        o["zoo: sample_latent(256)"] = _per_call(lambda: m.sample_latent(256), n)
        o["plain: torch.randn(256, latent_dim)"] = _per_call(lambda: torch.randn(256, ld), n)


class _Busy(_Null):
    """``training_step`` = ``reps`` products of two 384×384 matrices (no Lightning call inside)."""

    def __init__(self, reps: int, inside: list):
        super().__init__()
        self.reps, self.inside = reps, inside
        self.a, self.b = torch.randn(384, 384), torch.randn(384, 384)

    def training_step(self, batch, batch_idx):
        c = time.process_time()
        for _ in range(self.reps):
            self.a @ self.b
        self.inside.append(time.process_time() - c)


class _BatchClock(_Stop):
    def __init__(self, batches: int, totals: list):
        super().__init__(batches)
        self.totals, self.t = totals, None

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        t = time.process_time()
        if self.t is not None:
            self.totals.append(t - self.t)
        self.t = t
        super().on_train_batch_end(trainer, m, outputs, batch, batch_idx)


def interference(dm, batches: int = 300) -> dict:
    """CPU µs per batch that Lightning's loop costs *outside* ``training_step`` when the step is empty and when it
    does ~5–10 ms of matrix products: the loop's own code runs on caches the step has evicted."""
    out = {}
    for reps in (0, 12, 0, 12):
        inside, totals = [], []
        with tempfile.TemporaryDirectory() as root:
            trainer([_BatchClock(batches, totals)], root=root).fit(_Busy(reps, inside), datamodule=dm)
        outside = [t - i for t, i in zip(totals, inside[1:])]
        out.setdefault(reps, []).append((med(outside) * 1e6, med(inside) * 1e6))
    res = {f"step {med([i for _, i in v]) / 1e3:.1f} ms": med([o for o, _ in v]) for v in out.values()}
    print("  Lightning's loop outside training_step (CPU µs per batch): "
          + ", ".join(f"{k}: {v:.0f}" for k, v in res.items()), flush=True)
    return res


def profile(method: str, batches: int, cprofile: bool = True) -> dict:
    """Per-batch cost of Lightning's loop, per-call costs of its plumbing and of the zoo's bookkeeping, the
    counts per generator step, and (``cprofile``) the top functions of a profiled fit."""
    import cProfile
    import pstats

    # 1. Lightning's loop alone (empty training_step, logger off) vs iterating the DataLoader; interleaved
    _, dm = make(method)
    loop_a, loop_b = [], []
    for _ in range(5):
        stop = _Stop(batches)
        with tempfile.TemporaryDirectory() as root:
            trainer([stop], root=root).fit(_Null(), datamodule=dm)
        loop_a.append(stop.cpu_per_batch_us)
        it, c = iter(dm.train_dataloader()), time.process_time()
        for _ in range(batches):
            try:
                next(it)
            except StopIteration:
                it = iter(dm.train_dataloader())
        loop_b.append((time.process_time() - c) / batches * 1e6)
    res = {"method": method, "null_fit_us": med(loop_a), "dataloader_us": med(loop_b)}
    print(f"\n[{method}] CPU µs per loader item ({dm.batches_per_step} batch(es); median of 5 interleaved runs of "
          f"{batches} items): Lightning fit with an empty training_step {med(loop_a):.0f}, iterating the DataLoader "
          f"{med(loop_b):.0f}: Lightning's loop costs {med(loop_a) - med(loop_b):.0f} µs per training step", flush=True)

    # 2. per-call costs and counts inside the method's own fit
    model, dm = make(method)
    probe = _Probe(at_batch=min(60, batches // 2))
    with tempfile.TemporaryDirectory() as root:
        fit_trainer(dm, [probe, _Stop(batches)], root=root).fit(model, datamodule=dm)
    g = max(1, probe.counts["gen steps"])
    per_gen = {k: v / g for k, v in probe.counts.items() if k != "gen steps"}
    res.update(per_call=probe.out, per_gen_step=per_gen)
    print(f"[{method}] per generator step: " + ", ".join(f"{v:.2f} {k}" for k, v in per_gen.items()))
    print(f"[{method}] CPU µs per call (median of 7 × 3000 calls, inside the fit):")
    for k, v in probe.out.items():
        print(f"  {k:58s} {v:8.2f}")
    o = probe.out
    module_step = "Lightning: LightningOptimizer.step() (same optimizer)"
    opt_oh = o[module_step] - o["plain: optimizer.step() (SGD, lr 0, one scalar)"]
    bwd_oh = o["module: self.manual_backward(loss) (same graph)"] - o["plain: loss.backward() (one-scalar graph)"]
    loop_oh = med(loop_a) - med(loop_b)
    zoo_oh = ((o["zoo: is_generator_turn()"] + o["zoo: count_batch()"]) * per_gen["batches"]
              + o["zoo: log_train(logs) on a non-logging step"] * per_gen["Lightning steps"] + o["zoo: count_gen_step()"])
    log_oh = o["zoo+Lightning: log_train(2 losses) on a logging step"] / LOG_EVERY_N_STEPS * per_gen["batches"]
    pred = {"Lightning loop (per step × steps)": loop_oh * per_gen["Lightning steps"],
            "optimizer-step plumbing": opt_oh * per_gen["optimizer steps"],
            "manual_backward plumbing": bwd_oh * per_gen["manual_backward calls"],
            "self.optimizers() calls (≈ one per step function)":
                o["Lightning: self.optimizers()"] * per_gen["optimizer steps"],
            "zoo counters + log_train check": zoo_oh,
            f"logging steps (amortised, a row per {LOG_EVERY_N_STEPS} batches)": log_oh}
    res["predicted_overhead_us"] = pred
    print(f"[{method}] predicted overhead per generator step (µs CPU): " +
          ", ".join(f"{k} {v:.0f}" for k, v in pred.items()) + f"; total {sum(pred.values()):.0f}", flush=True)

    # 3. interference: Lightning's loop around a training_step that only multiplies matrices (no Lightning call)
    if cprofile:
        res["interference"] = interference(dm, batches=min(batches, 300))

    # 4. cProfile of the fit (Python-level; inflates Python-heavy code relative to torch kernels)
    if cprofile:
        model, dm = make(method)
        with tempfile.TemporaryDirectory() as root:
            tr = trainer([_Stop(batches)], root=root)
            prof = cProfile.Profile()
            prof.enable()
            tr.fit(model, datamodule=dm)
            prof.disable()
        print(f"[{method}] cProfile of a fit of {batches} batches: top 25 functions by own time")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return res

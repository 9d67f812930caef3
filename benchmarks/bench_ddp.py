#!/usr/bin/env python
"""DDP overhead on CPU: 2 processes (gloo) vs 1 process, same global batch, per method.

    OMP_NUM_THREADS=1 python benchmarks/bench_ddp.py [--methods all] [--steps 200] [--warmup 20] [--batch 256]
                                                     [--reps 3]

For each method (settings of ``configs/<method>/ring8.yaml``, else the class defaults; data: ring8 points), A (1
process, batch ``2B``, 1 thread) and B (2 processes, batch ``B`` each, 1 thread each, Lightning's ``ddp`` strategy
with gloo and ``find_unused_parameters=True`` — what ``train.py --trainer.strategy ddp`` uses) are run ``--reps``
times, interleaved (A B, then B A, …) so that drifting machine load hits both. This process is rank 0 of B; one
helper process, spawned once, is rank 1 (it waits, idle, during the A runs), so no run pays for process start-up.
Reported per run:

* steady-state milliseconds per generator step = (t_end − t_warmup) / (steps − warmup), timed on rank 0 between the
  end of generator step ``--warmup`` and the end of generator step ``--steps`` (excludes data and DDP set-up);
  for AE-OT the generator steps are the autoencoder steps, and the OT stage's wall time is reported separately;
* the 1-minute load average when the run started (the machine may be shared).

The overhead ratio is median(B) / median(A): > 1 means two processes are slower than one for the same global
batch (all-reduce latency and the per-step synchronisation outweigh the halved per-process batch), < 1 a speed-up.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

METHODS = ["vanilla", "wgan_gp", "sngan", "srgan", "icnn_w2", "dual_flow", "aeot"]
CONFIG_DIR = {"icnn_w2": "icnn_w2gan"}
_DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


class StepTimer(pl.Callback):
    """Rank 0: time between generator steps ``warmup`` and ``steps``; for AE-OT also the OT stage's duration."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.t0 = self.t1 = self.t_done = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        g, now = pl_module.gen_step, time.perf_counter()
        if self.t0 is None and g >= self.warmup:
            self.t0 = now
        if self.t1 is None and g >= self.steps:
            self.t1 = now
        if self.t_done is None and getattr(pl_module, "stage", None) == "done":
            self.t_done = now

    def result(self) -> dict:
        out = {"per_step_s": (self.t1 - self.t0) / (self.steps - self.warmup)}
        if self.t_done is not None:
            out["ot_s"] = self.t_done - self.t1
        return out


class Ring8Points(pl.LightningDataModule):
    """ring8 training points as a plain tensor, shuffled (Lightning adds the DistributedSampler under DDP)."""

    data_shape = (2,)

    def __init__(self, n: int, batch_size: int):
        super().__init__()
        from datamodules.synthetic import Synthetic2D

        self.x = Synthetic2D("ring8").sample(n, torch.Generator().manual_seed(0))
        self.batch_size = batch_size

    def train_dataloader(self):
        from torch.utils.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(self.x), batch_size=self.batch_size, shuffle=True, drop_last=True)

    def reference_samples(self, n: int, split: str = "val") -> torch.Tensor:  # AE-OT's OT targets
        return self.x[:n]


def model_kwargs(method: str) -> dict:
    """``model.init_args`` of ``configs/<method>/ring8.yaml`` (without its budget), else ``{}``."""
    import yaml

    path = ROOT / "configs" / CONFIG_DIR.get(method, method) / "ring8.yaml"
    if not path.exists():
        return {}
    args = dict(yaml.safe_load(path.read_text())["model"].get("init_args") or {})
    args.pop("max_gen_steps", None)
    args.pop("horizon", None)
    return args


def one_run(method: str, world: int, global_batch: int, steps: int, warmup: int, seed: int) -> dict:
    """One ``fit`` on ``world`` processes (this process is rank 0 or, in the helper, rank 1)."""
    import zoo.methods  # noqa: F401
    from pytorch_lightning.strategies import DDPStrategy
    from zoo.registry import resolve_model

    torch.set_num_threads(1)
    pl.seed_everything(seed, verbose=False)
    model = resolve_model(method)(max_gen_steps=steps, **model_kwargs(method))
    dm = Ring8Points(100_000, global_batch // world)
    timer = StepTimer(warmup, steps)
    strategy = "auto"
    if world > 1:
        strategy = DDPStrategy(process_group_backend="gloo", find_unused_parameters=True,
                               timeout=timedelta(seconds=600))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(accelerator="cpu", devices=world, strategy=strategy, max_epochs=-1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[timer], default_root_dir=tmp)
        t = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        total = time.perf_counter() - t
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()  # a fresh group (new port) for the next B run; A runs see no group
    return {"method": method, "processes": world, "fit_wall_s": total, "load": load, **timer.result()}


def _helper(jobs, done) -> None:
    """Rank 1 of every B run; blocks (idle) on the queue between them."""
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    while True:
        job = jobs.get()
        if job is None:
            return
        port, args = job
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK="0", LOCAL_RANK="1",
                          WORLD_SIZE="2")
        try:
            one_run(*args)
            done.put(None)
        except BaseException as err:  # noqa: BLE001 - reported by the main process
            done.put(repr(err))
            return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_b(jobs, done, args: tuple) -> dict:
    port = _free_port()
    jobs.put((port, args))
    saved = {k: os.environ.get(k) for k in _DIST_ENV}
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK="0", LOCAL_RANK="0", WORLD_SIZE="2")
    try:
        result = one_run(*args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    err = done.get(timeout=600)
    if err is not None:
        raise RuntimeError(f"rank 1 failed: {err}")
    return result


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["all"], help=f"'all' or some of {' '.join(METHODS)}")
    p.add_argument("--steps", type=int, default=200, help="generator steps per run (AE-OT: autoencoder steps)")
    p.add_argument("--warmup", type=int, default=20, help="generator steps excluded from the timing")
    p.add_argument("--batch", type=int, default=256, help="global batch (each DDP process gets half)")
    p.add_argument("--reps", type=int, default=3, help="A/B pairs per method")
    a = p.parse_args()
    methods = METHODS if a.methods == ["all"] else a.methods
    import lightning_fabric
    import warnings

    warnings.filterwarnings("ignore")
    print(f"machine: {machine()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, pytorch_lightning "
          f"{pl.__version__}, lightning_fabric {lightning_fabric.__version__}")
    print(f"command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} {Path(sys.executable).name} "
          f"{' '.join(sys.argv)}")
    print(f"settings: global batch {a.batch}, {a.steps} generator steps, warm-up {a.warmup}, {a.reps} interleaved "
          f"A/B pairs, 1 thread per process, gloo, ddp (launched), find_unused_parameters=True")
    print(f"load average at start (1, 5, 15 min): {os.getloadavg()}", flush=True)
    ctx = mp.get_context("spawn")
    jobs, done = ctx.Queue(), ctx.Queue()
    helper = ctx.Process(target=_helper, args=(jobs, done), daemon=True)
    helper.start()
    rows = []
    t_start = time.perf_counter()
    try:
        for rep in range(a.reps):
            for method in methods:
                order = (1, 2) if rep % 2 == 0 else (2, 1)
                for procs in order:
                    args = (method, procs, a.batch, a.steps, a.warmup, rep)
                    r = one_run(*args) if procs == 1 else run_b(jobs, done, args)
                    r["rep"] = rep
                    rows.append(r)
                    ot = f", OT stage {r['ot_s']:.2f} s" if "ot_s" in r else ""
                    print(f"  rep {rep} {method:9s} processes={procs}: {1e3 * r['per_step_s']:8.2f} ms/gen step{ot} "
                          f"(fit {r['fit_wall_s']:.1f} s, load {r['load']:.2f})", flush=True)
    finally:
        jobs.put(None)
        helper.join(30)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; load average at end (1, 5, 15 min): {os.getloadavg()}")
    print("\n| method | 1 process: ms / gen step | 2 processes: ms / gen step | ratio 2p / 1p (medians) | "
          "load avg during runs |")
    print("|---|---|---|---|---|")
    for method in methods:
        one = [r for r in rows if r["method"] == method and r["processes"] == 1]
        two = [r for r in rows if r["method"] == method and r["processes"] == 2]
        fmt = lambda rs: ", ".join(f"{1e3 * r['per_step_s']:.2f}" for r in rs)  # noqa: E731
        ratio = statistics.median(r["per_step_s"] for r in two) / statistics.median(r["per_step_s"] for r in one)
        loads = [r["load"] for r in one + two]
        print(f"| {method} | {fmt(one)} | {fmt(two)} | {ratio:.2f} | {min(loads):.1f}–{max(loads):.1f} |")
        if any("ot_s" in r for r in one + two):
            fo = lambda rs: ", ".join(f"{r['ot_s']:.2f}" for r in rs)  # noqa: E731
            ot_ratio = statistics.median(r["ot_s"] for r in two) / statistics.median(r["ot_s"] for r in one)
            print(f"| {method}: OT stage, s | {fo(one)} | {fo(two)} | {ot_ratio:.2f} | |")


if __name__ == "__main__":
    main()

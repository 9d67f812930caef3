#!/usr/bin/env python
"""DDP overhead on CPU: 2 processes (gloo, ``ddp_spawn``) vs 1 process, same global batch, per method.

    python benchmarks/bench_ddp.py [--methods vanilla] [--steps 300] [--warmup 30] [--batch 256] [--reps 3]

For each method, A (1 process, batch ``2B``, 1 thread) and B (2 processes, batch ``B`` each, 1 thread each,
``DDPStrategy(find_unused_parameters=True)``) are run alternately ``--reps`` times (A B A B …, interleaved so that
drifting machine load hits both). Reported per run:

* steady-state seconds per generator step = (t_end − t_warmup) / (gen_steps − warmup), timed on rank 0 between the
  end of generator step ``--warmup`` and the end of training (excludes process start, data set-up, DDP set-up);
* total wall time of ``trainer.fit`` seen from the launching process (includes spawning the workers).

The overhead ratio is median(B step time) / median(A step time): > 1 means two processes are slower than one for the
same global batch (all-reduce + gloo latency outweigh the halved per-process batch), < 1 a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402


class StepTimer(pl.Callback):
    """Rank 0 writes {"seconds", "steps"} of the steady state to ``path``."""

    def __init__(self, path: str, warmup: int):
        self.path, self.warmup = path, warmup
        self.t0 = None
        self.g0 = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.t0 is None and pl_module.gen_step >= self.warmup:
            self.t0, self.g0 = time.perf_counter(), pl_module.gen_step

    def on_train_end(self, trainer, pl_module):
        if trainer.is_global_zero and self.t0 is not None:
            Path(self.path).write_text(json.dumps({"seconds": time.perf_counter() - self.t0,
                                                   "steps": pl_module.gen_step - self.g0,
                                                   "world_size": trainer.world_size}))


class Ring8Points(pl.LightningDataModule):
    """ring8 training points as a plain tensor, shuffled (Lightning adds the DistributedSampler under DDP).

    ``datamodules.Synthetic2D`` holds a local closure and cannot be pickled for ``ddp_spawn`` (reported to the lead);
    this stand-in draws the same law (Synthetic2D.sample) and is picklable.
    """

    data_shape = (2,)

    def __init__(self, n: int, batch_size: int):
        super().__init__()
        from datamodules.synthetic import Synthetic2D

        self.x = Synthetic2D("ring8").sample(n, torch.Generator().manual_seed(0))
        self.batch_size = batch_size

    def train_dataloader(self):
        from torch.utils.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(self.x), batch_size=self.batch_size, shuffle=True, drop_last=True)


def one_run(method: str, processes: int, global_batch: int, steps: int, warmup: int, seed: int = 0) -> dict:
    import zoo.methods  # noqa: F401
    from pytorch_lightning.strategies import DDPStrategy
    from zoo.registry import resolve_model

    torch.set_num_threads(1)
    pl.seed_everything(seed, verbose=False)
    model = resolve_model(method)(max_gen_steps=steps)
    dm = Ring8Points(100_000, global_batch // processes)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timing.json")
        strategy = (DDPStrategy(start_method="spawn", process_group_backend="gloo", find_unused_parameters=True)
                    if processes > 1 else "auto")
        trainer = pl.Trainer(accelerator="cpu", devices=processes, strategy=strategy, max_epochs=-1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[StepTimer(path, warmup)])
        t = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        total = time.perf_counter() - t
        timing = json.loads(Path(path).read_text())
    return {"method": method, "processes": processes, "per_step_s": timing["seconds"] / timing["steps"],
            "steps_timed": timing["steps"], "fit_wall_s": total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["vanilla"])
    p.add_argument("--steps", type=int, default=300, help="generator steps per run")
    p.add_argument("--warmup", type=int, default=30, help="generator steps excluded from the timing")
    p.add_argument("--batch", type=int, default=256, help="global batch (each DDP process gets half)")
    p.add_argument("--reps", type=int, default=3, help="A/B pairs per method")
    a = p.parse_args()
    import lightning_fabric

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, pytorch_lightning "
          f"{pl.__version__}, lightning_fabric {lightning_fabric.__version__}")
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(f"settings: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, global batch {a.batch}, "
          f"{a.steps} generator steps, warm-up {a.warmup}, {a.reps} interleaved A/B pairs")
    rows = []
    for method in a.methods:
        for rep in range(a.reps):
            for procs in (1, 2):
                r = one_run(method, procs, a.batch, a.steps, a.warmup, seed=rep)
                r["rep"] = rep
                rows.append(r)
                print(f"  {method} rep {rep} processes={procs}: {1e3 * r['per_step_s']:.2f} ms/gen step "
                      f"(steady state, {r['steps_timed']} steps), fit wall {r['fit_wall_s']:.1f} s", flush=True)
    print()
    print("| method | 1 process: ms / gen step | 2 processes: ms / gen step | ratio 2p/1p (median) | "
          "fit wall 1p (s) | fit wall 2p (s) |")
    print("|---|---|---|---|---|---|")
    for method in a.methods:
        one = [r for r in rows if r["method"] == method and r["processes"] == 1]
        two = [r for r in rows if r["method"] == method and r["processes"] == 2]
        m1 = statistics.median(r["per_step_s"] for r in one)
        m2 = statistics.median(r["per_step_s"] for r in two)
        fmt = lambda rs: ", ".join(f"{1e3 * r['per_step_s']:.2f}" for r in rs)  # noqa: E731
        print(f"| {method} | {fmt(one)} | {fmt(two)} | {m2 / m1:.2f} | "
              f"{statistics.median(r['fit_wall_s'] for r in one):.1f} | "
              f"{statistics.median(r['fit_wall_s'] for r in two):.1f} |")


if __name__ == "__main__":
    main()

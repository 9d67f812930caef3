"""Overhead of the evaluation callbacks at their default intervals.

One training run per setup (VanillaGAN, Lightning Trainer, CPU, 1 thread). A timing callback measures the wall
time of every generator step and, every ``--every`` generator steps, pauses the stopwatch and runs one evaluation
of each callback (with its default settings) under a timer — so step times and evaluation times are measured
interleaved, in the same process, under the same machine load (the spectrum PNGs, drawn once at the end of a
run by default, are timed the same way and reported as a one-time cost). The overhead of a callback at its
default interval N is

    overhead = t_eval / (N · t_step)          (t_step: median wall time of one generator step)

Setups: ``stacked16`` = StackedDigits 16×16 (DCGAN nets, base_channels 32, batch 64) for FID (digits extractor),
StackedModeCount and SpectralMonitor; ``ring8`` = Synthetic2D ring8 (MLP 3×128, batch 256) for SampleDistances
and SpectralMonitor. The first FID evaluation also computes the real statistics (once per run); it is reported
separately.

    OMP_NUM_THREADS=1 python benchmarks/bench_callbacks.py [--gen_steps 120] [--every 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from callbacks.distances import SampleDistances  # noqa: E402
from callbacks.fid import FID  # noqa: E402
from callbacks.spectral import SpectralMonitor, discriminator_of  # noqa: E402
from callbacks.stacked import StackedModeCount  # noqa: E402


class Bench(pl.Callback):
    def __init__(self, every: int, evals: dict):
        self.every, self.evals = every, evals
        self.step_times, self.eval_times = [], {k: [] for k in evals}
        self.first = {}
        self._t = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t is None:
            self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        step = pl_module.gen_step
        if step > 5:  # skip warm-up
            self.step_times.append(now - self._t)
        if step % self.every == 0:
            for name, fn in self.evals.items():
                t0 = time.perf_counter()
                fn(trainer, pl_module)
                dt = time.perf_counter() - t0
                if name not in self.first:
                    self.first[name] = dt
                else:
                    self.eval_times[name].append(dt)
        self._t = time.perf_counter()


def run(setup: str, gen_steps: int, every: int, root: str):
    from datamodules.images import StackedDigits
    from datamodules.synthetic import Synthetic2D
    from zoo.vanilla import VanillaGAN

    torch.manual_seed(0)
    if setup == "stacked16":
        dm = StackedDigits(n_samples=20_000, image_size=16, batch_size=64, seed=0)
        model = VanillaGAN(latent_dim=64, base_channels=32, max_gen_steps=gen_steps)
        fid, stacked, spec = FID(), StackedModeCount(), SpectralMonitor()
        evals = {
            "FID(digits)": lambda tr, m: fid.compute(tr, m),
            "StackedModeCount": lambda tr, m: stacked.compute(tr, m),
            "SpectralMonitor": lambda tr, m: spec.measure(discriminator_of(m), m.gen_step),
            "SpectralMonitor PNGs (once, at the end)": lambda tr, m: spec.save_plots(tr, final=True),
        }
        defaults = {"FID(digits)": fid.every_n_gen_steps, "StackedModeCount": stacked.every_n_gen_steps,
                    "SpectralMonitor": spec.every_n_gen_steps, "SpectralMonitor PNGs (once, at the end)": None}
    else:
        dm = Synthetic2D(name="ring8", n_samples=20_000, batch_size=256, seed=0)
        model = VanillaGAN(latent_dim=2, max_gen_steps=gen_steps)
        dist, spec = SampleDistances(), SpectralMonitor()
        evals = {
            "SampleDistances": lambda tr, m: dist.compute(tr, m),
            "SpectralMonitor": lambda tr, m: spec.measure(discriminator_of(m), m.gen_step),
            "SpectralMonitor PNGs (once, at the end)": lambda tr, m: spec.save_plots(tr, final=True),
        }
        defaults = {"SampleDistances": dist.every_n_gen_steps, "SpectralMonitor": spec.every_n_gen_steps,
                    "SpectralMonitor PNGs (once, at the end)": None}
    bench = Bench(every, evals)
    trainer = pl.Trainer(max_epochs=-1, accelerator="cpu", logger=pl.loggers.CSVLogger(root, name=setup),
                         callbacks=[bench], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=50)
    trainer.fit(model, datamodule=dm)
    t_step = statistics.median(bench.step_times)
    rows = []
    for name in evals:
        t_eval = statistics.median(bench.eval_times[name]) if bench.eval_times[name] else bench.first[name]
        n = defaults[name]
        rows.append((setup, name, n, t_step, bench.first[name], t_eval, len(bench.eval_times[name]),
                     t_eval / (n * t_step) if n else None))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gen_steps", type=int, default=120)
    p.add_argument("--every", type=int, default=30)
    p.add_argument("--setups", type=str, default="stacked16,ring8")
    args = p.parse_args()
    torch.set_num_threads(1)
    import pytorch_lightning
    import torchmetrics
    import ot

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, pytorch_lightning "
          f"{pytorch_lightning.__version__}, torchmetrics {torchmetrics.__version__}, POT {ot.__version__}")
    print("command: OMP_NUM_THREADS=1 python benchmarks/bench_callbacks.py " + " ".join(sys.argv[1:]))
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for setup in args.setups.split(","):
            rows += run(setup, args.gen_steps, args.every, root)
    print()
    print("| setup | callback | default interval N | t_step (ms) | first eval (s) | eval (s, median) | #evals | "
          "overhead t_eval/(N·t_step) |")
    print("|---|---|---|---|---|---|---|---|")
    for setup, name, n, t_step, first, t_eval, k, ov in rows:
        ovs = f"{100 * ov:.2f} %" if ov is not None else f"once per run (= {t_eval / t_step:.0f} steps)"
        print(f"| {setup} | {name} | {n or 'end'} | {1000 * t_step:.1f} | {first:.2f} | {t_eval:.3f} | {k} | {ovs} |")


if __name__ == "__main__":
    main()

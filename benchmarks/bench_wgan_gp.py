"""One WGAN-GP critic step: the zoo module (inside a real Lightning fit) vs a plain PyTorch loop, A/B interleaved.

A: ``WGANGP.discriminator_step`` as Lightning calls it (manual optimization: ``self.optimizers()``,
   ``manual_backward``, LightningOptimizer.step), timed around the call inside ``trainer.fit``.
B: the same arithmetic in plain PyTorch on copies of the same nets (fake = G(z) without grad,
   E f(fake) − E f(real) + λ E(|∇f(x̂)| − 1)², ``torch.autograd.grad(..., create_graph=True)``, one backward,
   Adam step), run right after each A step from a callback, on the same real batch.

The fit uses ``n_critic`` = 10⁹ so every batch is a critic step. Reports medians and the ratio A/B (target ≤ 1.10),
plus the whole ``training_step`` (A + logging bookkeeping) for reference.

    OMP_NUM_THREADS=1 python benchmarks/bench_wgan_gp.py [--steps 300] [--hidden 512] [--batch 256]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules import Synthetic2D  # noqa: E402
from zoo.wgan_gp import WGANGP  # noqa: E402


def plain_step(G, D, opt, real, lam, latent_dim):
    with torch.no_grad():
        fake = G(torch.randn(real.shape[0], latent_dim))
    eps = torch.rand(real.shape[0], 1)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    gp = (grad.norm(2, dim=1) - 1).pow(2).mean()
    loss = D(fake).mean() - D(real).mean() + lam * gp
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


class AB(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.a, self.b, self.full = [], [], []

    def on_fit_start(self, trainer, m):
        self.G = copy.deepcopy(m.generator)
        self.D = copy.deepcopy(m.critic)
        self.opt = torch.optim.Adam(self.D.parameters(), lr=m.hparams.lr_d, betas=tuple(m.hparams.betas))
        inner = m.discriminator_step

        def timed(real):
            t0 = time.perf_counter()
            out = inner(real)
            self._a = time.perf_counter() - t0
            self._real = real
            return out

        m.discriminator_step = timed

    def on_train_batch_start(self, trainer, m, batch, batch_idx):
        self._t_full = time.perf_counter()

    def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
        full = time.perf_counter() - self._t_full
        t0 = time.perf_counter()
        plain_step(self.G, self.D, self.opt, self._real, m.lam, m.hparams.latent_dim)
        b = time.perf_counter() - t0
        if batch_idx >= self.warmup:
            self.a.append(self._a)
            self.b.append(b)
            self.full.append(full)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}; torch threads 1")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, lightning {pl.__version__}")
    print(f"command: OMP_NUM_THREADS=1 python benchmarks/bench_wgan_gp.py {' '.join(sys.argv[1:])}".strip())
    print(f"setup: ring8, batch {args.batch}, critic and generator 3x{args.hidden} ReLU MLPs, lambda 10, "
          f"two-sided GP, independent pairs, {args.steps} interleaved A/B critic steps after {args.warmup} warm-up")
    m = WGANGP(hidden=(args.hidden,) * 3, n_critic=10**9, lam=10.0)
    dm = Synthetic2D("ring8", n_samples=args.batch * (args.steps + args.warmup + 2), batch_size=args.batch)
    ab = AB(args.warmup)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=args.steps + args.warmup, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ab], log_every_n_steps=50)
    trainer.fit(m, dm)
    med_a, med_b, med_f = (statistics.median(x) * 1e3 for x in (ab.a, ab.b, ab.full))
    ratios = sorted(a / b for a, b in zip(ab.a, ab.b))
    print(f"| A: module discriminator_step | B: plain PyTorch step | ratio A/B (medians) | per-pair ratio median "
          f"| module training_step (incl. bookkeeping) |")
    print("|---|---|---|---|---|")
    print(f"| {med_a:.2f} ms | {med_b:.2f} ms | {med_a / med_b:.3f} | {statistics.median(ratios):.3f} | "
          f"{med_f:.2f} ms |")
    print(f"n = {len(ab.a)} pairs; target ratio <= 1.10: {'met' if med_a / med_b <= 1.10 else 'NOT met'}")


if __name__ == "__main__":
    main()

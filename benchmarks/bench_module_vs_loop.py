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
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from _common import LOG_EVERY_N_STEPS, ROOT, Clock, METHODS, build, header, iqr, med, md_table, trainer
from datamodules.base import BatchGroup

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*`training_step` returned `None`.*")
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)


# =========================================================================================== plain loops
def plain_loader(dm):
    """The datamodule's training DataLoader with one batch per item (``batches_per_step`` = 1), whatever the
    module's fit uses: a plain loop fetches batch by batch."""
    k, dm.batches_per_step = dm.batches_per_step, 1
    try:
        return dm.train_dataloader()
    finally:
        dm.batches_per_step = k


class PlainLoop:
    """The method's arithmetic without Lightning. ``one_batch(real)`` consumes one real batch exactly as the
    module's ``training_step`` does (a discriminator step, and a generator step every ``n_dis``-th batch)."""

    def __init__(self, module, dm, shared_optimizers: Optional[list] = None):
        if shared_optimizers is None:  # B: a copy of the module's nets and fresh optimizers of its own config
            assert module._trainer is None, "copy the module before it is attached to a Trainer"
            self.twin = copy.deepcopy(module)
            self.twin.train()
            opts = self.twin.configure_optimizers()
        else:  # the "plain-step" ablation: the module's own nets and Lightning's raw optimizers
            self.twin, opts = module, shared_optimizers
        self.opts = list(opts) if isinstance(opts, (list, tuple)) else [opts]
        self.n_dis = int(getattr(module, "n_dis", 1))
        self.latent_dim = int(module.hparams["latent_dim"])
        self.shape = tuple(module.data_shape)
        self.device = torch.device("cpu")
        self.loader = plain_loader(dm)
        self._it = iter(self.loader)
        self.batch_step = 0
        self.gen_step = 0
        self.log_values = True  # compute the values the module computes only to log them (False: a lean loop)
        self.setup()

    def setup(self) -> None:
        pass

    def to(self, device):
        self.device = torch.device(device)
        self.twin.to(self.device)
        return self

    def next_batch(self):
        try:
            real = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            real = next(self._it)
        return real.to(self.device, non_blocking=True)

    def will_log(self) -> bool:
        """The module's ``will_log()``: this batch is a logging batch (every ``LOG_EVERY_N_STEPS``-th, train.py's
        ``log_every_n_steps``), so values computed only to be logged are computed here too (and only here)."""
        return self.log_values and (self.batch_step + 1) % LOG_EVERY_N_STEPS == 0

    def run(self, gen_steps: int) -> None:
        target = self.gen_step + gen_steps
        while self.gen_step < target:
            self.one_batch(self.next_batch())

    def one_batch(self, real) -> None:
        self.d_step(real)
        if (self.batch_step + 1) % self.n_dis == 0:
            self.g_step(real)
            self.gen_step += 1
        self.batch_step += 1

    def z(self, n: int):
        return torch.randn(n, self.latent_dim, device=self.device)

    def G(self, z):
        return self.twin.generator(z).reshape(z.shape[0], *self.shape)

    def d_step(self, real):  # pragma: no cover - abstract
        raise NotImplementedError

    def g_step(self, real):  # pragma: no cover - abstract
        raise NotImplementedError


class PlainVanilla(PlainLoop):
    def setup(self):
        self.opt_g, self.opt_d = self.opts
        self.D = self.twin.discriminator

    def d_step(self, real):
        with torch.no_grad():
            fake = self.G(self.z(real.shape[0]))
        loss = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()

    def g_step(self, real):
        loss = F.softplus(-self.D(self.G(self.z(real.shape[0])))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


class PlainWGANGP(PlainLoop):
    def setup(self):
        from zoo.wgan_gp import critic_loss

        self.critic_loss = critic_loss
        self.opt_g, self.opt_d = self.opts
        self.D = self.twin.critic
        self.lam, self.one_sided, self.pairing = self.twin.lam, self.twin.one_sided, self.twin.pairing

    def d_step(self, real):
        with torch.no_grad():
            fake = self.G(self.z(real.shape[0]))
        loss, _ = self.critic_loss(self.D, real, fake, self.lam, self.one_sided, self.pairing)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()

    def g_step(self, real):
        loss = -self.D(self.G(self.z(real.shape[0]))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


class PlainSNGAN(PlainLoop):
    """SN-GAN (hinge or non-saturating loss); SR-GAN adds the spectral rewrite after D steps when due."""

    def setup(self):
        from zoo.srgan import regularizable_layers, spectral_regularize_

        hp = self.twin.hparams
        assert not hp.lr_decay, "the plain SN-GAN loop does not implement lr_decay (the ring8 configs do not use it)"
        self.opt_g, self.opt_d = self.opts
        self.D = self.twin.discriminator
        self.hinge = hp.loss == "hinge"
        self.sr = "sr_mode" in hp
        if self.sr:
            self.spectral_regularize_ = spectral_regularize_
            self.sr_layers = regularizable_layers(self.D, hp.sr_layers)
            self.sr_args = (hp.sr_mode, hp.sr_fraction, {}, hp.sr_power_iterations)
            self.sr_every = int(hp.sr_every)

    def d_step(self, real):
        with torch.no_grad():
            fake = self.G(self.z(real.shape[0]))
        r, f = self.D(real), self.D(fake)
        if self.hinge:
            loss = F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
        else:
            loss = F.softplus(-r).mean() + F.softplus(f).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        if self.sr and self.gen_step % self.sr_every == 0:
            mode, fraction, states, iters = self.sr_args
            self.spectral_regularize_(self.sr_layers, mode, fraction, states, iters)

    def g_step(self, real):
        f = self.D(self.G(self.z(real.shape[0])))
        loss = -f.mean() if self.hinge else F.softplus(-f).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


class PlainICNNW2(PlainLoop):
    def setup(self):
        from zoo.ot.icnn import potential_grad

        hp = self.twin.hparams
        assert hp.solver == "w2gn", "the plain ICNN loop implements the w2gn solver (the ring8 config's)"
        try:  # the same loss function as the module: zoo.ot.w2.w2gn_loss, through torch.compile when configured
            from zoo.icnn_w2gan import _w2gn_loss

            loss_fn = _w2gn_loss(bool(hp.get("compile", False)))
        except ImportError:  # code before 1df08b8 (run against an older revision for before/after tables)
            from zoo.ot.w2 import w2gn_loss as loss_fn
        self.potential_grad, self.w2gn_loss = potential_grad, loss_fn
        self.opt_g, self.opt_psi, self.opt_bar = self.opts
        self.psi, self.psi_bar = self.twin.psi, self.twin.psi_bar
        self.cycle = self.twin.cycle
        self.s = None

    def d_step(self, real):
        n = real.shape[0]
        if self.s is None:  # the data scale s from the first real batch (the module's buffer)
            self.s = float(real.reshape(n, -1).detach().float().pow(2).mean().sqrt().clamp(min=1e-6))
            self.twin.data_scale.fill_(self.s)
        s = self.s
        with torch.no_grad():
            x = self.G(self.z(n)).reshape(n, -1) / s
        y = real.reshape(n, -1).float() / s
        loss = self.w2gn_loss(self.psi, self.psi_bar, x, y, self.cycle)
        self.opt_psi.zero_grad(set_to_none=True)
        self.opt_bar.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_psi.step()
        self.opt_bar.step()
        log_now = self.will_log()  # the module computes its W2 estimate on logging batches only
        if log_now:
            x_hat = self.potential_grad(self.psi_bar, y)
        self.psi.convexify()
        self.psi_bar.convexify()
        if log_now:
            with torch.no_grad():  # the module's logged W2 estimate
                val = 0.5 * x.pow(2).sum(-1).mean() + 0.5 * y.pow(2).sum(-1).mean() - self.psi(x).mean() \
                    - ((x_hat * y).sum(-1) - self.psi(x_hat)).mean()
                self.w2_estimate = 2.0 * s ** 2 * val

    def g_step(self, real):
        n, s = real.shape[0], self.s
        fake = self.G(self.z(n))
        target = (s * self.potential_grad(self.psi, fake.detach().reshape(n, -1) / s)).reshape(fake.shape).detach()
        loss = 0.5 * (fake.reshape(n, -1) - target.reshape(n, -1)).pow(2).sum(-1).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


class PlainDualFlow(PlainLoop):
    """The explicit scheme with a closed-form kernel discriminator (the ring8 config: energy, r = 5)."""

    def setup(self):
        from zoo.ot.kernels import energy_distance, gaussian_mmd2, witness_grad

        hp = self.twin.hparams
        assert hp.scheme == "explicit" and hp.discriminator in ("energy", "gaussian") and hp.generator == "mlp" \
            and hp.ratio_r is not None, "the plain dual-flow loop implements the ring8 config (explicit, kernel D)"
        self.witness_grad, self.energy_distance, self.gaussian_mmd2 = witness_grad, energy_distance, gaussian_mmd2
        self.opt_g = self.opts[0]
        self.kernel, self.sigma, self.lam = hp.discriminator, float(hp.sigma), float(hp.lambda_reg)
        self.kappa = float(hp.ratio_r) * self.lam * float(hp.tau)
        self.memory_len = int(hp.memory)
        self.tau = float(hp.tau)
        self.memory: list = []

    def d_grad(self, q):
        if not self.memory:
            return torch.zeros_like(q)
        x = torch.cat([f for f, _, _ in self.memory])
        y = torch.cat([r for _, r, _ in self.memory])
        wx = torch.cat([f.new_full((f.shape[0],), c / f.shape[0]) for f, _, c in self.memory])
        wy = torch.cat([r.new_full((r.shape[0],), c / r.shape[0]) for _, r, c in self.memory])
        return self.witness_grad(q, x, y, self.kernel, self.sigma, wx, wy) / self.lam

    def one_batch(self, real):
        n = real.shape[0]
        z = self.z(n)
        with torch.no_grad():
            fake_n = self.G(z).detach()
        flat_fake, flat_real = fake_n.reshape(n, -1), real.reshape(n, -1)
        # generator: one explicit SGD step against D_n
        flat = self.G(z).reshape(n, -1)
        loss = (flat * self.d_grad(flat.detach())).sum(1).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        # discriminator: D_{n+1} = (1 − κ) D_n + κ D*(μ_n), memory folded beyond ``memory`` terms
        keep, new = 1.0 - self.kappa, self.kappa
        mem = [(f, y, c * keep) for f, y, c in self.memory]
        while mem and len(mem) >= self.memory_len:
            if len(mem) >= 2:
                mem = [(*mem[1][:2], mem[0][2] + mem[1][2])] + mem[2:]
            else:
                new, mem = new + mem[0][2], []
        self.memory = mem + [(flat_fake, flat_real.detach(), new)]
        if self.log_values:
            with torch.no_grad():  # the module's logged values (computed every step)
                self.distance = (self.gaussian_mmd2(flat_fake, flat_real, self.sigma) if self.kernel == "gaussian"
                                 else self.energy_distance(flat_fake, flat_real))
        self.gen_step += 1
        self.batch_step += 1


class PlainAEOT(PlainLoop):
    """AE-OT's autoencoder stage (every batch: one Adam step on the autoencoder loss, one generator step)."""

    def setup(self):
        self.opt = self.opts[0]
        self.E, self.Dec = self.twin.encoder, self.twin.decoder
        self.l1 = float(self.twin.hparams.l1_weight)
        self.code_mean, self.code_sq = self.twin.code_mean, self.twin.code_sq

    def one_batch(self, real):
        code = self.E(real)
        rec = F.mse_loss(self.Dec(code), real)
        loss = rec + self.l1 * code.abs().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():  # running code statistics (the module's fallback sampler)
            c = code.detach().float()
            stats = torch.stack([c.mean(0), (c * c).mean(0)])
            self.code_mean.lerp_(stats[0], 0.05)
            self.code_sq.lerp_(stats[1], 0.05)
        self.gen_step += 1
        self.batch_step += 1


PLAIN = {"vanilla": PlainVanilla, "wgan_gp": PlainWGANGP, "sngan": PlainSNGAN, "srgan": PlainSNGAN,
         "icnn_w2": PlainICNNW2, "dual_flow": PlainDualFlow, "aeot": PlainAEOT, "sngan_cifar10": PlainSNGAN}

#: an image workload: configs/sngan/cifar10.yaml's nets (ResNet G 256 / D 128 channels, hinge, n_dis 5) on synthetic
#: 3×32×32 images in [-1, 1] (an ArrayFile of IMAGE_SAMPLES uniform images; no download), batch IMAGE_BATCH
#: (the config's 64 would take ~25 s per generator step on one CPU thread); lr_decay off (the plain loop has none)
IMAGE_CONFIG, IMAGE_SAMPLES, IMAGE_BATCH = "configs/sngan/cifar10.yaml", 256, 8
ALL_METHODS = METHODS + ["sngan_cifar10"]


#: model init_args overriding the ring8 configs (``--hidden``: wider MLPs, to show the overhead is per batch)
OVERRIDES: Dict[str, object] = {}
DATA_OVERRIDES: Dict[str, object] = {}  # --batches-per-step


def fit_trainer(dm, callbacks, **kw):
    """The benchmark Trainer for ``dm``: a log row every LOG_EVERY_N_STEPS batches, as train.py with the configs
    (``log_every_n_steps`` counts training steps, each of ``dm.batches_per_step`` batches)."""
    return trainer(callbacks, log_every_n_steps=max(1, LOG_EVERY_N_STEPS // dm.batches_per_step), **kw)


def make(method: str, seed: int = 0):
    """(module, datamodule) with networks built; no step limit (AE-OT: its OT stage never starts)."""
    over = {"max_gen_steps": 10**9} if method == "aeot" else {"max_gen_steps": None}
    over.update(OVERRIDES)
    if method == "sngan_cifar10":
        return make_image(seed)
    model, dm, _ = build(method, seed=seed, data_overrides=DATA_OVERRIDES, **over)
    dm.setup("fit")
    return model, dm


def make_image(seed: int = 0):
    """The image workload (:data:`IMAGE_CONFIG`'s SN-GAN on synthetic CIFAR-shaped images)."""
    import yaml

    import numpy as np
    import pytorch_lightning as pl

    from datamodules import ArrayFile
    from zoo.srgan import SNGAN

    cfg = yaml.safe_load((ROOT / IMAGE_CONFIG).read_text())
    path = Path(tempfile.gettempdir()) / f"zoo-bench-images-{IMAGE_SAMPLES}.npy"
    if not path.exists():
        rng = np.random.default_rng(0)
        np.save(path, rng.uniform(-1, 1, size=(IMAGE_SAMPLES, 3, 32, 32)).astype(np.float32))
    dm = ArrayFile(str(path), batch_size=IMAGE_BATCH, val_fraction=0.1, seed=0, **DATA_OVERRIDES)
    kw = dict(cfg["model"]["init_args"], lr_decay=False, max_gen_steps=None)
    pl.seed_everything(seed, verbose=False)
    model = SNGAN(**kw)
    model.ensure_built(dm.data_shape)
    dm.setup("fit")
    return model, dm


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


# =========================================================================================== memory
def memory_child(method: str, steps: int) -> dict:
    """Peak memory of a Lightning fit and of the plain loop, ``steps`` generator steps each; on the GPU when CUDA is
    available (then ``torch.cuda.max_memory_allocated`` is the number that matters), else on the CPU."""
    from _common import PeakMemory, peak_rss_mib, rss_mib

    cuda = torch.cuda.is_available()

    class Stop(pl.Callback):
        def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
            if m.gen_step >= steps:
                trainer.should_stop = True

    model, dm = make(method)
    plain = PLAIN[method](model, dm)
    if cuda:
        plain.to("cuda")
    base = rss_mib()
    with tempfile.TemporaryDirectory() as root:
        tr = trainer([Stop()], root=root, accelerator="gpu" if cuda else "cpu")
        with PeakMemory() as pa:
            tr.fit(model, datamodule=dm)
    with PeakMemory() as pb:
        plain.run(steps)
    return {"method": method, "steps": steps, "rss_after_build_mib": base,
            "module_peak_increment_mib": pa.rss_increment, "loop_peak_increment_mib": pb.rss_increment,
            "process_peak_rss_mib": peak_rss_mib(), "peak_reset": pa.reset_ok,
            "device": "cuda" if cuda else "cpu",
            "cuda_module_mib": pa.cuda_increment, "cuda_loop_mib": pb.cuda_increment}


def memory_all(methods: List[str], steps: int) -> List[dict]:
    rows = []
    for method in methods:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", method,
                              "--memory-steps", str(steps)], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or not line:
            print(f"memory probe of {method} failed:\n{out.stderr[-2000:]}", flush=True)
            continue
        rows.append(json.loads(line[-1]))
        print(f"  memory {method}: {rows[-1]}", flush=True)
    return rows


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

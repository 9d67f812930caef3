"""B of ``bench_module_vs_loop.py``: for each zoo method, a plain PyTorch loop doing the same arithmetic on the same
nets and data as the Lightning module (A), and how both are built (ring8 configs; the CIFAR-10 SN-GAN image workload)."""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import copy
import logging
import tempfile
from pathlib import Path
from typing import Dict, Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from _common import LOG_EVERY_N_STEPS, ROOT, METHODS, build, trainer


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
        self.opt_g, self.opt_psi, *bar = self.opts  # one Adam over ψ and ψ̄ since issue #20 (two before)
        self.opt_bar = bar[0] if bar else None
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
        if self.opt_bar is not None:
            self.opt_bar.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_psi.step()
        if self.opt_bar is not None:
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

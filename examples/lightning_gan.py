"""A GAN written the way Lightning's documentation writes one (its domain-template GAN): a plain LightningModule
with ``generator`` / ``discriminator``, ``forward(z)``, ``hparams.latent_dim``, manual optimization with two
optimizers, the non-saturating BCE losses. It imports nothing from the zoo. ``n_critic`` discriminator steps per
generator step (1 in Lightning's example) lets a test check that generator updates, not optimizer steps, are
counted."""

from __future__ import annotations

import math
from typing import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim: int, img_shape: Sequence[int], hidden: int = 64):
        super().__init__()
        self.img_shape = tuple(img_shape)
        self.model = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                   nn.LeakyReLU(0.2), nn.Linear(hidden, math.prod(self.img_shape)))

    def forward(self, z):
        return self.model(z).view(z.size(0), *self.img_shape)


class Discriminator(nn.Module):
    def __init__(self, img_shape: Sequence[int], hidden: int = 64):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(math.prod(img_shape), hidden), nn.LeakyReLU(0.2),
                                   nn.Linear(hidden, 1))

    def forward(self, img):
        return self.model(img.view(img.size(0), -1))


class GAN(pl.LightningModule):
    def __init__(self, latent_dim: int = 8, lr: float = 0.0002, b1: float = 0.5, b2: float = 0.999,
                 img_shape: Sequence[int] = (1, 28, 28), hidden: int = 64, n_critic: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(latent_dim, img_shape, hidden)
        self.discriminator = Discriminator(img_shape, hidden)

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        imgs = batch[0] if isinstance(batch, (list, tuple)) else batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(imgs.shape[0], self.hparams.latent_dim, device=imgs.device)

        self.toggle_optimizer(opt_d)
        real = self.discriminator(imgs)
        fake = self.discriminator(self(z).detach())
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                        + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        self.manual_backward(d_loss)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)
        self.log("d_loss", d_loss, prog_bar=True)

        if (batch_idx + 1) % self.hparams.n_critic == 0:
            self.toggle_optimizer(opt_g)
            out = self.discriminator(self(z))
            g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            self.manual_backward(g_loss)
            opt_g.step()
            opt_g.zero_grad()
            self.untoggle_optimizer(opt_g)
            self.log("g_loss", g_loss, prog_bar=True)

    def configure_optimizers(self):
        betas = (self.hparams.b1, self.hparams.b2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_g, opt_d]


class NoSampler(pl.LightningModule):
    """A LightningModule with nothing to sample from (no sample, no generator, no forward)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return ((x - self.w) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

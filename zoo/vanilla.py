"""VanillaGAN — the non-saturating GAN of Goodfellow et al. (2014), the mode-collapse control.

Algorithm (one generator iteration, ``n_dis`` discriminator steps, each on a fresh real batch):

1. discriminator: minimise  −E_x log D(x) − E_z log(1 − D(G(z)))
   = softplus(−ℓ(x)) + softplus(ℓ(G(z))) with logits ℓ;
2. generator (non-saturating): minimise  −E_z log D(G(z)) = softplus(−ℓ(G(z))).

Networks come from :mod:`zoo.nets`: MLPs for vectors, DCGAN conv nets for images (in [-1, 1]).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo import nets
from zoo.base import GANModule
from zoo.registry import register_model


@register_model("vanilla")
class VanillaGAN(GANModule):
    """Non-saturating GAN.

    Args:
        latent_dim: dimension of z ~ N(0, I).
        hidden: MLP widths (vector data).
        base_channels: DCGAN width (image data).
        g_norm, d_norm: normalisation in the generator / discriminator (``batch``, ``layer``, ``none``).
        lr_g, lr_d, betas: Adam settings (DCGAN defaults: 2e-4, (0.5, 0.999)).
        n_dis: discriminator steps per generator step.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        base_channels: int = 32,
        g_norm: str = "none",
        d_norm: str = "none",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Tuple[float, float] = (0.5, 0.999),
        n_dis: int = 1,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        self.save_hyperparameters()
        self.n_dis = int(n_dis)

    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        self.generator = nets.make_generator(hp.latent_dim, data_shape, hp.hidden, norm=hp.g_norm,
                                             base_channels=hp.base_channels)
        self.discriminator = nets.make_discriminator(data_shape, hp.hidden, act="leaky_relu", norm=hp.d_norm,
                                                     base_channels=hp.base_channels)
        if nets.is_image_shape(data_shape):
            nets.dcgan_init(self)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        return opt_g, opt_d

    def discriminator_step(self, real: Tensor) -> Dict[str, Tensor]:
        _, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self.generate(self.sample_latent(real.shape[0]))
        loss = F.softplus(-self.discriminator(real)).mean() + F.softplus(self.discriminator(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        return {"loss/d": loss.detach()}

    def generator_step(self, real: Tensor) -> Dict[str, Tensor]:
        opt_g, _ = self.optimizers()
        fake = self.generate(self.sample_latent(real.shape[0]))
        loss = F.softplus(-self.discriminator(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        return {"loss/g": loss.detach()}

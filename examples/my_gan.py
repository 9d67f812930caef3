"""A new method in 30 lines: the least-squares GAN (Mao et al. 2017) as a zoo member.

    python train.py fit --model examples.my_gan.LeastSquaresGAN --data ring8 --model.max_gen_steps 2000
"""
from typing import Optional, Sequence

import torch

from zoo import GANModule, nets


class LeastSquaresGAN(GANModule):
    """D minimises ½E(D(x) − 1)² + ½E D(G(z))²; G minimises ½E(D(G(z)) − 1)²."""

    def __init__(self, latent_dim: int = 2, hidden: Sequence[int] = (128, 128), lr: float = 1e-3,
                 data_shape: Optional[Sequence[int]] = None, max_gen_steps: Optional[int] = None):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        self.save_hyperparameters()

    def build(self, data_shape):
        self.generator = nets.make_generator(self.hparams.latent_dim, data_shape, self.hparams.hidden)
        self.discriminator = nets.make_discriminator(data_shape, self.hparams.hidden)

    def configure_optimizers(self):
        adam = lambda net: torch.optim.Adam(net.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999))  # noqa: E731
        return adam(self.generator), adam(self.discriminator)

    def discriminator_step(self, real):
        fake = self.generate(self.sample_latent(len(real))).detach()
        loss = 0.5 * ((self.discriminator(real) - 1) ** 2).mean() + 0.5 * (self.discriminator(fake) ** 2).mean()
        return self._step(self.optimizers()[1], loss, "loss/d")

    def generator_step(self, real):
        loss = 0.5 * ((self.discriminator(self.generate(self.sample_latent(len(real)))) - 1) ** 2).mean()
        return self._step(self.optimizers()[0], loss, "loss/g")

    def _step(self, opt, loss, name):
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        return {name: loss.detach()}

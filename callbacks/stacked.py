"""Mode counting on stacked digits (the stacked-MNIST protocol of VEEGAN / PacGAN, on 8×8 digits).

A generated image has 3 channels; each channel is classified by the shipped digit classifier
(``callbacks/assets/digits_cnn.pt``, see :mod:`callbacks.fid`) into digits a, b, c, and the sample falls into
mode m = 100a + 10b + c ∈ {0, …, 999} (the datamodule's labelling). With counts n_m over N samples and
p_m = n_m / N:

* ``modes`` = #{m : n_m > 0} (out of 1000);
* ``kl``    = KL(p ‖ U_1000) = Σ_{p_m > 0} p_m log(1000 p_m) = log 1000 − H(p) (nats; PacGAN's
  ``log_metrics``).

Evaluated on 26,000 generated samples by default (VEEGAN / PacGAN); every sample counts (no confidence
threshold), as in PacGAN.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks._util import EveryNGenSteps, eval_samples, gen_step_of, log_eval
from callbacks.fid import load_digits_classifier, to_digit_input

NUM_MODES = 1000


@torch.no_grad()
def classify_channels(images: Tensor, classifier: Optional[torch.nn.Module] = None,
                      batch_size: int = 4096) -> Tensor:
    """Digit (0–9) of every channel: ``(N, C, H, W)`` in [-1, 1] → ``(N, C)`` long."""
    net = classifier if classifier is not None else load_digits_classifier()
    net.eval()
    n, c = images.shape[:2]
    dev = next(net.parameters()).device
    out = [net(to_digit_input(images[i:i + batch_size].to(dev))).argmax(1).cpu()
           for i in range(0, n, batch_size)]
    return (torch.cat(out) if out else torch.empty(0, dtype=torch.long)).reshape(n, c)


def triple_modes(digits: Tensor) -> Tensor:
    """Mode index 100a + 10b + c of each row ``(a, b, c)`` of ``digits`` ``(N, 3)``."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def mode_histogram_metrics(modes: Tensor, num_modes: int = NUM_MODES) -> Dict[str, float]:
    """``modes`` = number of distinct modes hit, ``kl`` = Σ_{p>0} p log(K p) for the empirical histogram p."""
    if modes.numel() == 0:
        return {"modes": 0, "kl": math.log(num_modes)}
    counts = torch.bincount(modes.long().flatten(), minlength=num_modes).double()
    p = counts[counts > 0] / counts.sum()
    return {"modes": int((counts > 0).sum()), "kl": max(float((p * torch.log(p * num_modes)).sum()), 0.0)}


def stacked_mode_metrics(images: Tensor, classifier: Optional[torch.nn.Module] = None) -> Dict[str, float]:
    """``dict(modes, kl)`` of 3-channel images ``(N, 3, H, W)`` in [-1, 1] (see module doc)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"stacked digits need (N, 3, H, W) images, got {tuple(images.shape)}")
    return mode_histogram_metrics(triple_modes(classify_channels(images, classifier)))


class StackedModeCount(EveryNGenSteps, pl.Callback):
    """Log ``eval/modes`` (of 1000) and ``eval/kl`` for stacked-digits data every ``every_n_gen_steps``
    generator steps and at the end of training (global rank 0).

    Applies when the datamodule has ``num_modes == 1000`` and 3-channel images (``StackedDigits``); does
    nothing otherwise.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end). 26,000 samples cost about as
            much as 200 DCGAN generator steps on one CPU core (mostly the 78,000 digit classifications), so the
            default cadence is 5,000 (≈ 4 % overhead, docs/EVALUATION.md).
        n_samples: generated samples per evaluation (26,000: VEEGAN / PacGAN protocol).
        batch_size: samples generated and classified per chunk.
        weights_path: another classifier file (default: the shipped ``digits_cnn.pt``).
        seed: seed of the evaluation samples.
    """

    def __init__(self, every_n_gen_steps: int = 5000, n_samples: int = 26_000, batch_size: int = 2000,
                 weights_path: Optional[str] = None, seed: int = 0):
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.n_samples, self.batch_size = int(n_samples), max(1, int(batch_size))
        self.weights_path, self.seed = weights_path, int(seed)
        self._last = -1
        self._net = None

    @staticmethod
    def applicable(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        dm = getattr(trainer, "datamodule", None)
        shape = tuple(getattr(pl_module, "data_shape", None) or getattr(dm, "data_shape", None) or ())
        return (hasattr(pl_module, "sample") and getattr(dm, "num_modes", None) == NUM_MODES
                and len(shape) == 3 and shape[0] == 3)

    def classifier(self, device) -> torch.nn.Module:
        if self._net is None:
            self._net = load_digits_classifier(self.weights_path)
        return self._net.to(device)

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, float]:
        net = self.classifier(pl_module.device)
        modes = []
        for i, start in enumerate(range(0, self.n_samples, self.batch_size)):
            size = min(self.batch_size, self.n_samples - start)
            x = eval_samples(pl_module, size, seed=self.seed * 1_000_003 + i)
            modes.append(triple_modes(classify_channels(x, net)))
        m = mode_histogram_metrics(torch.cat(modes))
        return {"eval/modes": m["modes"], "eval/kl": m["kl"]}

    def _run(self, trainer, pl_module) -> None:
        self.mark(pl_module, trainer)
        if trainer.is_global_zero and self.applicable(trainer, pl_module):
            log_eval(trainer, pl_module, self.compute(trainer, pl_module))

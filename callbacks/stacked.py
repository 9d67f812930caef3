"""Mode counting on stacked digits (the stacked-MNIST protocol of VEEGAN / PacGAN, on 8×8 digits).

A generated image has C digit channels (C = 3 for stacked digits, C = 1 for plain digits); each channel is
classified by the shipped digit classifier (``callbacks/assets/digits_cnn.pt``, see :mod:`callbacks.fid`), and
the sample falls into mode m = Σ_c 10^(C−1−c) · digit_c ∈ {0, …, 10^C − 1} (for C = 3: m = 100a + 10b + c,
the datamodule's labelling). With K = 10^C modes and counts n_m over N samples, p_m = n_m / N:

* ``modes`` = #{m : n_m > 0} (out of K: 1000 for stacked digits, 10 for digits);
* ``kl``    = KL(p ‖ U_K) = Σ_{p_m > 0} p_m log(K p_m) = log K − H(p) (nats; PacGAN's ``log_metrics``).

Evaluated on 26,000 generated samples by default (VEEGAN / PacGAN); every sample counts (no confidence
threshold), as in PacGAN.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks._util import check_schedule, EveryNGenSteps, check_eval_options, can_sample, eval_samples, gen_step_of, log_eval
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
    """Mode index Σ_c 10^(C−1−c)·digit_c of each row of ``digits`` ``(N, C)``: 100a + 10b + c for C = 3."""
    c = digits.shape[1]
    place = 10 ** torch.arange(c - 1, -1, -1, device=digits.device)
    return (digits * place).sum(1)


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
    """Log ``eval/modes`` (of 10^C) and ``eval/kl`` for digit data every ``every_n_gen_steps`` generator steps
    and at the end of training (global rank 0).

    Applies when the datamodule's ``num_modes`` equals 10^C for C-channel images: ``StackedDigits`` (C = 3,
    1000 modes) and ``Digits`` (C = 1, 10 modes); does nothing otherwise.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end). 26,000 samples cost about as
            much as 200 DCGAN generator steps on one CPU core (mostly the 78,000 digit classifications), so the
            default cadence is 5,000 (≈ 4 % overhead, docs/EVALUATION.md).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        n_samples: generated samples per evaluation (26,000: VEEGAN / PacGAN protocol).
        batch_size: samples generated and classified per chunk.
        weights_path: another classifier file (default: the shipped ``digits_cnn.pt``).
        seed: seed of the evaluation samples.
    """

    def __init__(self, every_n_gen_steps: int = 5000, n_samples: int = 26_000, batch_size: int = 2000,
                 weights_path: Optional[str] = None, seed: int = 0, schedule: str = "linear"):
        check_eval_options("stacked_modes", every_n_gen_steps, n_samples=n_samples, batch_size=batch_size)
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("stacked_modes", schedule)
        self.n_samples, self.batch_size = int(n_samples), max(1, int(batch_size))
        self.weights_path, self.seed = weights_path, int(seed)
        self._last = -1
        self._net = None

    @staticmethod
    def applicable(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        dm = getattr(trainer, "datamodule", None)
        shape = tuple(getattr(pl_module, "data_shape", None) or getattr(dm, "data_shape", None) or ())
        return (can_sample(pl_module) and len(shape) == 3 and shape[0] in (1, 2, 3)
                and getattr(dm, "num_modes", None) == 10 ** shape[0])

    def classifier(self, device) -> torch.nn.Module:
        if self._net is None:
            self._net = load_digits_classifier(self.weights_path)
        return self._net.to(device)

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, float]:
        net = self.classifier(pl_module.device)
        modes, channels = [], 1
        for i, start in enumerate(range(0, self.n_samples, self.batch_size)):
            size = min(self.batch_size, self.n_samples - start)
            x = eval_samples(pl_module, size, seed=self.seed * 1_000_003 + i)
            modes.append(triple_modes(classify_channels(x, net)))
            channels = x.shape[1]
        m = mode_histogram_metrics(torch.cat(modes), num_modes=10 ** channels)
        return {"eval/modes": m["modes"], "eval/kl": m["kl"]}

    def _run(self, trainer, pl_module) -> None:
        self.mark(pl_module, trainer)
        if trainer.is_global_zero and self.applicable(trainer, pl_module):
            log_eval(trainer, pl_module, self.compute(trainer, pl_module))

"""Mode-collapse metrics for data with known modes (VEEGAN / PacGAN protocol).

For samples x_1..x_N, mode means m_1..m_K and per-axis standard deviation s:

* a sample is **high quality** (HQ) when its Euclidean distance to the nearest mode is ≤ 3·s;
* ``hq`` = (number of HQ samples) / N, a fraction in [0, 1] (tables print it as a percentage);
* ``modes`` = number of modes that are the nearest mode of at least one HQ sample;
* ``kl`` = reverse KL of the HQ mode histogram p̂ against uniform: KL(p̂ ‖ U_K) = Σ_{p̂_k>0} p̂_k log(K p̂_k)
  = log K − H(p̂). With no HQ sample at all, p̂ is undefined and ``kl`` is reported as log K (the value of a
  single captured mode, the worst case with any HQ sample).

Evaluated on 2,500 generated samples by default, as in VEEGAN and PacGAN.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks._util import check_schedule, EveryNGenSteps, can_sample, check_eval_options, eval_samples, log_eval


def mode_metrics(samples: Tensor, modes: Tensor, std: float, threshold: float = 3.0) -> Dict[str, float]:
    """``dict(modes=int, hq=float, kl=float)`` for ``samples`` (N, d) against ``modes`` (K, d); see module doc."""
    x = samples.detach().reshape(samples.shape[0], -1).double().cpu()
    m = modes.detach().reshape(modes.shape[0], -1).double().cpu()
    k = m.shape[0]
    if x.shape[0] == 0:
        return {"modes": 0, "hq": 0.0, "kl": math.log(k)}
    finite = torch.isfinite(x).all(1)
    dist = torch.cdist(x[finite], m) if finite.any() else torch.empty(0, k, dtype=torch.float64)
    dmin, nearest = dist.min(1) if dist.shape[0] else (torch.empty(0), torch.empty(0, dtype=torch.long))
    hq = dmin <= threshold * float(std)
    counts = torch.bincount(nearest[hq], minlength=k).double()
    n_hq = float(counts.sum())
    if n_hq == 0:
        kl = math.log(k)
    else:
        p = counts[counts > 0] / n_hq
        kl = float((p * torch.log(p * k)).sum())
    return {"modes": int((counts > 0).sum()), "hq": n_hq / x.shape[0], "kl": max(kl, 0.0)}


def support_metrics(samples: Tensor, distance: Tensor, tolerance: float = 0.05) -> Dict[str, float]:
    """``off_support`` = fraction of samples farther than ``tolerance`` from a known support (distance given)."""
    off = (distance > tolerance) | ~torch.isfinite(distance)
    return {"off_support": float(off.double().mean()) if len(distance) else 0.0}


class ModeCoverage(EveryNGenSteps, pl.Callback):
    """Log ``eval/modes``, ``eval/hq``, ``eval/kl`` every ``every_n_gen_steps`` generator steps and at the end.

    Uses the datamodule's ``modes`` and ``mode_std``; for datasets with a known support instead
    (``distance_to_support``), logs ``eval/off_support``. Does nothing for other data.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end of training).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        n_samples: generated samples per evaluation (2,500 in the VEEGAN/PacGAN protocol).
        threshold: HQ radius in standard deviations (3).
        support_tolerance: distance beyond which a sample counts as off-support.
        seed: seed of the evaluation samples (evaluation never perturbs training's RNG).
    """

    def __init__(self, every_n_gen_steps: int = 500, n_samples: int = 2500, threshold: float = 3.0,
                 support_tolerance: float = 0.05, seed: int = 0, schedule: str = "linear"):
        check_eval_options("mode_coverage", every_n_gen_steps, n_samples=n_samples)
        if not float(threshold) > 0:
            from zoo.errors import ConfigError

            raise ConfigError(f"mode_coverage.threshold must be > 0 standard deviations, got {threshold}")
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("mode_coverage", schedule)
        self.n_samples = int(n_samples)
        self.threshold = float(threshold)
        self.support_tolerance = float(support_tolerance)
        self.seed = int(seed)
        self._last = -1

    @staticmethod
    def _data(trainer: pl.Trainer):
        dm = getattr(trainer, "datamodule", None)
        modes = getattr(dm, "modes", None)
        std = getattr(dm, "mode_std", None)
        dist = getattr(dm, "distance_to_support", None)
        return modes, std, dist

    def applicable(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        modes, std, dist = self._data(trainer)
        return can_sample(pl_module) and ((modes is not None and std is not None) or callable(dist))

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, float]:
        modes, std, dist_fn = self._data(trainer)
        x = eval_samples(pl_module, self.n_samples, self.seed).float().cpu()
        out: Dict[str, float] = {}
        if modes is not None and std is not None:
            out.update({f"eval/{k}": v for k, v in mode_metrics(x, modes, std, self.threshold).items()})
        if callable(dist_fn):
            d = dist_fn(x)
            if d is not None:
                out.update({f"eval/{k}": v for k, v in support_metrics(x, d, self.support_tolerance).items()})
        return out

    def _run(self, trainer, pl_module) -> None:
        self.mark(pl_module, trainer)
        if trainer.is_global_zero and self.applicable(trainer, pl_module):
            metrics = self.compute(trainer, pl_module)
            if metrics:
                log_eval(trainer, pl_module, metrics)

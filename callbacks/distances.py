"""Sample-based distances for low-dimensional data: exact W2 (POT) and energy distance.

For generated points x_1..x_n and held-out real points y_1..y_m (uniform weights 1/n, 1/m):

* ``w2`` — the exact 2-Wasserstein distance between the two empirical measures,
  W2 = ( min_{π ∈ Π(1/n, 1/m)} Σ_ij π_ij |x_i − y_j|² )^{1/2}, cost |x − y|² (not ½|x − y|²), solved by POT's
  network simplex ``ot.emd2`` in float64 (no hand-written LP). Between samples of the *same* distribution it is
  not 0 but shrinks with n (≈ n^{-1/d} in d ≥ 3), so compare values only at equal sizes.
* ``energy`` — the squared energy distance (Székely & Rizzo) as a V-statistic,
  E = 2/(nm) Σ_ij |x_i − y_j| − 1/n² Σ_ii' |x_i − x_i'| − 1/m² Σ_jj' |y_j − y_j'|  ≥ 0
  (Euclidean norms; ``scipy.stats.energy_distance`` returns √E for 1-D samples).

Default sizes (1,000 generated vs 1,000 held-out real points) keep ``ot.emd2`` at about a second on one busy
CPU core (2,000 × 2,000 takes ≈ 5× longer).
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks._util import check_schedule, EveryNGenSteps, check_eval_options, can_sample, eval_samples, gen_step_of, log_eval


def _flat64(x) -> np.ndarray:
    t = torch.as_tensor(x).detach().cpu().double()
    return t.reshape(t.shape[0], -1).numpy()


def w2_exact(x: Tensor, y: Tensor, num_iter_max: int = 10_000_000) -> float:
    """Exact W2 between the empirical measures of ``x`` (n, d) and ``y`` (m, d) (see module doc)."""
    import ot

    a, b = _flat64(x), _flat64(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    cost = ot.dist(a, b, metric="sqeuclidean")
    wa, wb = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    value, log = ot.emd2(wa, wb, cost, numItermax=int(num_iter_max), log=True)
    if log.get("warning"):
        warnings.warn(f"ot.emd2: {log['warning']}")
    return float(np.sqrt(max(float(value), 0.0)))


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Squared energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistic, Euclidean norm) between samples ``x``
    (n, d) and ``y`` (m, d), in float64 (:func:`zoo.ot.kernels.energy_distance` on uniform weights)."""
    from zoo.ot.kernels import energy_distance as _energy

    return max(float(_energy(torch.as_tensor(_flat64(x)), torch.as_tensor(_flat64(y)))), 0.0)


def sample_distances(x: Tensor, y: Tensor) -> Dict[str, float]:
    """``dict(w2=…, energy=…)`` for generated ``x`` and real ``y``."""
    return {"w2": w2_exact(x, y), "energy": energy_distance(x, y)}


class SampleDistances(EveryNGenSteps, pl.Callback):
    """Log ``eval/w2`` (exact, POT) and ``eval/energy`` between ``n_samples`` generated points and
    ``n_samples`` held-out real points (``reference_samples(n, reference_split)``) every
    ``every_n_gen_steps`` generator steps and at the end of training (global rank 0).

    Applies to vector data of at most ``max_dim`` dimensions (the 2-D mixtures…); does nothing for images.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        n_samples: points on each side (1,000: ``ot.emd2`` in about a second).
        reference_split: ``val`` (held-out, default) or ``train``.
        max_dim: largest data dimension measured.
        seed: seed of the generated points.
    """

    def __init__(self, every_n_gen_steps: int = 1000, n_samples: int = 1000, reference_split: str = "val",
                 max_dim: int = 64, seed: int = 0, schedule: str = "linear"):
        check_eval_options("distances", every_n_gen_steps, n_samples=n_samples, max_dim=max_dim)
        if reference_split not in ("val", "train"):
            from zoo.errors import ConfigError

            raise ConfigError(f"reference_split must be 'val' or 'train', got {reference_split!r}")
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("distances", schedule)
        self.n_samples, self.reference_split = int(n_samples), reference_split
        self.max_dim, self.seed = int(max_dim), int(seed)
        self._last = -1
        self._real: Optional[Tensor] = None

    def applicable(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        dm = getattr(trainer, "datamodule", None)
        shape = tuple(getattr(pl_module, "data_shape", None) or getattr(dm, "data_shape", None) or ())
        return (can_sample(pl_module) and hasattr(dm, "reference_samples") and len(shape) == 1
                and shape[0] <= self.max_dim)

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, float]:
        if self._real is None:  # the same held-out points at every evaluation
            self._real = trainer.datamodule.reference_samples(self.n_samples, self.reference_split).detach().cpu()
        x = eval_samples(pl_module, len(self._real), self.seed).cpu()
        finite = torch.isfinite(x.reshape(len(x), -1)).all(1)
        if not bool(finite.all()):
            return {"eval/w2": float("inf"), "eval/energy": float("inf")}
        return {f"eval/{k}": v for k, v in sample_distances(x, self._real).items()}

    def _run(self, trainer, pl_module) -> None:
        self.mark(pl_module, trainer)
        if trainer.is_global_zero and self.applicable(trainer, pl_module):
            log_eval(trainer, pl_module, self.compute(trainer, pl_module))

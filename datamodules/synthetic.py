"""2-D synthetic datasets with known modes or known supports.

* ``ring8`` — 8 Gaussians at angles 2πi/8, i = 0..7 (radius 1), std 0.01 (VEEGAN/PacGAN protocol).
  The angles are 2πi/K for i = 0..K−1 — **not** ``linspace(0, 2π, K)``, which repeats the first mode and
  yields only K−1 distinct modes.
* ``grid25`` — 25 Gaussians at {−4, −2, 0, 2, 4}², std 0.05 (VEEGAN/PacGAN protocol).
* ``ring8_wgangp`` — the WGAN-GP toy 8 Gaussians: radius 2 on axes and diagonals, std 0.02, all divided by
  1.414 (Gulrajani et al., ``gan_toy.py``).
* ``grid25_wgangp`` — the WGAN-GP toy 25 Gaussians: {−4..4 step 2}², std 0.05, divided by 2.828.
* ``swissroll`` — sklearn ``make_swiss_roll(noise=0.25)``, columns (0, 2), divided by 7.5 (WGAN-GP toy).
* ``two_moons`` — sklearn ``make_moons(noise=0.05)``.
* ``two_squares`` — uniform on [−2, −1] × [−½, ½] ∪ [1, 2] × [−½, ½] (disconnected support).
* ``annulus`` — uniform on 1 ≤ |x| ≤ 1.5 (connected, non-convex support).

Mixtures expose ``modes`` (K×2) and ``mode_std``; uniform-support sets expose ``distance_to_support(x)``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch import Tensor

from datamodules.base import BatchedTensorDataset, GANDataModule
from zoo.errors import ConfigError


def ring_modes(k: int, radius: float = 1.0) -> Tensor:
    """K means at angles 2πi/K, i = 0..K−1, on a circle of ``radius``."""
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1).float()


def grid_modes(values=(-4.0, -2.0, 0.0, 2.0, 4.0)) -> Tensor:
    v = torch.tensor(values, dtype=torch.float32)
    return torch.cartesian_prod(v, v)


def _draw_mixture(modes: Tensor, std: float, n: int, g: torch.Generator) -> Tensor:
    idx = torch.randint(len(modes), (n,), generator=g)
    return modes[idx] + std * torch.randn(n, 2, generator=g)


def _mixture(modes: Tensor, std: float) -> Callable[[int, torch.Generator], Tensor]:
    """Sampler of the equal-weight Gaussian mixture (picklable, for ddp_spawn)."""
    return functools.partial(_draw_mixture, modes, std)


def _draw_sklearn(fn: Callable[[int, int], np.ndarray], n: int, g: torch.Generator) -> Tensor:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return torch.as_tensor(fn(n, seed), dtype=torch.float32)


def _sklearn(fn: Callable[[int, int], np.ndarray]) -> Callable[[int, torch.Generator], Tensor]:
    """Sampler from a scikit-learn generator ``fn(n, seed)`` (picklable, for ddp_spawn)."""
    return functools.partial(_draw_sklearn, fn)


def _swissroll(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(n, noise=0.25, random_state=seed)
    return x[:, [0, 2]] / 7.5


def _moons(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=0.05, random_state=seed)
    return x


_SQUARES = torch.tensor([[-2.0, -0.5, -1.0, 0.5], [1.0, -0.5, 2.0, 0.5]])  # (xmin, ymin, xmax, ymax)


def _two_squares(n: int, g: torch.Generator) -> Tensor:
    which = torch.randint(2, (n,), generator=g)
    lo, hi = _SQUARES[which, :2], _SQUARES[which, 2:]
    return lo + (hi - lo) * torch.rand(n, 2, generator=g)


def _two_squares_distance(x: Tensor) -> Tensor:
    d = []
    for xmin, ymin, xmax, ymax in _SQUARES.tolist():
        dx = (torch.clamp(xmin - x[:, 0], min=0) + torch.clamp(x[:, 0] - xmax, min=0))
        dy = (torch.clamp(ymin - x[:, 1], min=0) + torch.clamp(x[:, 1] - ymax, min=0))
        d.append(torch.sqrt(dx**2 + dy**2))
    return torch.stack(d, 1).min(1).values


_R_IN, _R_OUT = 1.0, 1.5


def _annulus(n: int, g: torch.Generator) -> Tensor:
    r = torch.sqrt(_R_IN**2 + (_R_OUT**2 - _R_IN**2) * torch.rand(n, generator=g))  # uniform in area
    t = 2 * math.pi * torch.rand(n, generator=g)
    return torch.stack([r * torch.cos(t), r * torch.sin(t)], 1)


def _annulus_distance(x: Tensor) -> Tensor:
    r = x.norm(dim=1)
    return torch.clamp(_R_IN - r, min=0) + torch.clamp(r - _R_OUT, min=0)


_S2 = 1.414
_S8 = 2.828
#: name -> (sampler, modes or None, mode_std or None, distance_to_support or None)
DATASETS: Dict[str, tuple] = {
    "ring8": (None, ring_modes(8, 1.0), 0.01, None),
    "grid25": (None, grid_modes(), 0.05, None),
    "ring8_wgangp": (None, ring_modes(8, 2.0) / _S2, 0.02 / _S2, None),
    "grid25_wgangp": (None, grid_modes() / _S8, 0.05 / _S8, None),
    "swissroll": (_sklearn(_swissroll), None, None, None),
    "two_moons": (_sklearn(_moons), None, None, None),
    "two_squares": (_two_squares, None, None, _two_squares_distance),
    "annulus": (_annulus, None, None, _annulus_distance),
}


class Synthetic2D(GANDataModule):
    """2-D datasets with known modes (mixtures) or known supports.

    Args:
        name: one of ``ring8``, ``grid25``, ``ring8_wgangp``, ``grid25_wgangp``, ``swissroll``, ``two_moons``,
            ``two_squares``, ``annulus``.
        n_samples: size of the fixed training set (VEEGAN/PacGAN: 100,000).
        val_samples: size of the held-out set.
        batch_size, num_workers, seed, batches_per_step: see :class:`GANDataModule`; ``seed`` fixes the drawn
            points.
    """

    def __init__(self, name: str = "ring8", n_samples: int = 100_000, val_samples: int = 10_000,
                 batch_size: int = 256, num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        if name not in DATASETS:
            raise ConfigError(f"unknown 2-D dataset {name!r}: use one of {', '.join(DATASETS)}")
        if n_samples <= 0 or val_samples <= 0:
            raise ConfigError("n_samples and val_samples must be positive")
        self.endless = True  # points of a known density: epochs carry no meaning
        self.name = name
        self.n_samples = int(n_samples)
        self.val_samples = int(val_samples)
        sampler, modes, std, dist = DATASETS[name]
        self.modes: Optional[Tensor] = modes.clone() if modes is not None else None
        self.mode_std: Optional[float] = std
        self._sampler = sampler or _mixture(modes, std)
        self._distance = dist
        self.data_shape = (2,)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Fresh i.i.d. samples from the data law."""
        g = generator or torch.Generator().manual_seed(self.seed + 7919)
        return self._sampler(int(n), g)

    def distance_to_support(self, x: Tensor) -> Optional[Tensor]:
        """Euclidean distance of each point to the support (``None`` for datasets without a known support)."""
        return None if self._distance is None else self._distance(x.float().cpu())

    def _build(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.train_set = BatchedTensorDataset(self._sampler(self.n_samples, g))
        self.val_set = BatchedTensorDataset(self._sampler(self.val_samples, g))

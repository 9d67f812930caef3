"""Your own data from a file: points ``(n, d)`` or images ``(n, C, H, W)`` in an array file.

    python train.py fit --model wgan_gp --data ArrayFile --data.path my_points.npy
    python train.py fit --model vanilla --data ArrayFile --data.path faces.pt --data.image_range [0,255]

Formats: ``.npy``; ``.npz`` (``--data.key``, default: the only array); ``.pt``/``.pth`` (a tensor, or a dict of
tensors with ``--data.key``; loaded with ``torch.load(weights_only=True)``); ``.csv``/``.txt`` (numbers separated
by commas or whitespace, one sample per row, an optional header line). Conventions: 2-D arrays are points in
data space, used as given; 4-D arrays are images ``(n, C, H, W)`` which must end up in [-1, 1] — give
``--data.image_range [lo,hi]`` to map ``[lo, hi]`` linearly onto [-1, 1] (e.g. ``[0,255]`` or ``[0,1]``).

Everything is checked before training starts, each failure a one-line :class:`~zoo.errors.ConfigError`: a
missing or unreadable file, a wrong shape, fewer than 2 samples, NaN/Inf values (with how many samples hold
them), images outside [-1, 1]. A fraction ``val_fraction`` of the samples (seeded split) is held out as the
reference set of the evaluation callbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from datamodules.base import BatchedTensorDataset, GANDataModule, check_finite, split_indices
from zoo.errors import ConfigError

__all__ = ["ArrayFile", "load_array"]


def _pick(arrays: dict, key: Optional[str], path: Path):
    if key is not None:
        if key not in arrays:
            raise ConfigError(f"{path} has no array {key!r}: use data.key one of {', '.join(map(str, arrays))}")
        return arrays[key]
    if len(arrays) != 1:
        raise ConfigError(f"{path} holds {len(arrays)} arrays ({', '.join(map(str, arrays))}): set data.key")
    return next(iter(arrays.values()))


def load_array(path, key: Optional[str] = None) -> Tensor:
    """The float32 tensor stored in ``path`` (formats in the module docstring); ConfigError when unreadable."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist: check data.path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arr = _pick({k: z[k] for k in z.files}, key, path)
        elif suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            arr = _pick(obj, key, path) if isinstance(obj, dict) else obj
            if not isinstance(arr, Tensor):
                raise ConfigError(f"{path} does not hold a tensor (found {type(arr).__name__}): save a tensor")
        elif suffix in (".csv", ".txt"):
            text = path.read_text().strip().splitlines()
            sep = "," if text and "," in text[0] else None
            skip = 1 if text and not _numeric(text[0], sep) else 0
            arr = np.loadtxt(path, delimiter=sep, skiprows=skip, ndmin=2, dtype=np.float64)
        else:
            raise ConfigError(f"unsupported data file type {suffix!r} ({path}): use .npy, .npz, .pt or .csv")
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot read {path} ({first[:160]}): is the file complete and in its format?") from None
    t = arr if isinstance(arr, Tensor) else torch.from_numpy(np.asarray(arr))
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ConfigError(f"{path} holds {t.dtype} values: store numbers")
    return t.to(torch.float32)


def _numeric(line: str, sep) -> bool:
    try:
        [float(x) for x in (line.split(sep) if sep else line.split())]
        return True
    except ValueError:
        return False


class ArrayFile(GANDataModule):
    """Points or images from an array file (see the module docstring).

    Args:
        path: the file (.npy, .npz, .pt/.pth, .csv/.txt).
        key: the array's name in an .npz file or a dict saved in a .pt file.
        image_range: for 4-D image arrays, ``(lo, hi)`` mapped linearly onto [-1, 1]; ``None``: already in [-1, 1].
        val_fraction: held-out share (reference samples of the evaluation callbacks).
        batch_size, num_workers, seed, batches_per_step: as every datamodule (:class:`GANDataModule`; ``seed``
            fixes the train/val split).
    """

    def __init__(self, path: str, key: Optional[str] = None, image_range: Optional[Tuple[float, float]] = None,
                 val_fraction: float = 0.1, batch_size: int = 256, num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.path, self.key = str(path), key
        self.image_range = tuple(float(v) for v in image_range) if image_range is not None else None
        if self.image_range is not None and not (len(self.image_range) == 2 and self.image_range[0] < self.image_range[1]):
            raise ConfigError(f"image_range must be (lo, hi) with lo < hi, got {image_range}")
        self.val_fraction = float(val_fraction)
        self.name = Path(self.path).stem
        self.data = self._load()
        self.data_shape = tuple(int(s) for s in self.data.shape[1:])

    def _load(self) -> Tensor:
        x = load_array(self.path, self.key)
        if x.dim() not in (2, 4):
            raise ConfigError(f"{self.path} has shape {tuple(x.shape)}: use (n, d) points or (n, C, H, W) images")
        if x.shape[0] < 2:
            raise ConfigError(f"{self.path} holds {x.shape[0]} sample(s): at least 2 are needed")
        check_finite(x, str(self.path))
        if x.dim() == 4:
            if self.image_range is not None:
                lo, hi = self.image_range
                x = (x - lo) * (2.0 / (hi - lo)) - 1.0
            lo_, hi_ = float(x.min()), float(x.max())
            if lo_ < -1.0 - 1e-5 or hi_ > 1.0 + 1e-5:
                raise ConfigError(f"images in {self.path} span [{lo_:g}, {hi_:g}], not [-1, 1]: set "
                                  "data.image_range to their range (e.g. --data.image_range [0,255])")
        return x

    def _build(self) -> None:
        train_idx, val_idx = split_indices(self.data.shape[0], self.val_fraction, self.seed)
        self.train_set = BatchedTensorDataset(self.data[train_idx])
        self.val_set = BatchedTensorDataset(self.data[val_idx] if len(val_idx) else self.data[train_idx])

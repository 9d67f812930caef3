"""Shared datamodule machinery: in-memory batched datasets and the common interface.

Every datamodule of the zoo exposes

* ``data_shape`` — the shape of one data point (``(2,)`` for 2-D mixtures, ``(C, H, W)`` for images);
* ``train_dataloader()`` — shuffled batches of real data (images normalised to [-1, 1]); under DDP
  Lightning swaps in a ``DistributedSampler`` so each rank sees its own share;
* ``reference_samples(n, split="val")`` — up to ``n`` held-out real samples for evaluation (FID statistics,
  exact W2); ``split="train"`` gives training samples.

Datamodules know nothing of the methods.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zoo.errors import ConfigError


def _identity_collate(batch):
    return batch


class BatchedTensorDataset(Dataset):
    """A dataset over tensors that returns whole batches at once (``__getitems__``).

    ``transform`` (optional) is applied to the gathered batch of the first tensor, e.g. uint8 → [-1, 1] and
    resizing, so no per-item Python work is done.
    """

    def __init__(self, *tensors: Tensor, transform=None):
        if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("tensors must share their first dimension")
        self.tensors = tensors
        self.transform = transform

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def _gather(self, idx):
        out = [t[idx] for t in self.tensors]
        if self.transform is not None:
            out[0] = self.transform(out[0])
        return out[0] if len(out) == 1 else tuple(out)

    def __getitem__(self, i: int):
        item = self._gather(torch.as_tensor([i]))
        return item[0] if isinstance(item, Tensor) else tuple(t[0] for t in item)

    def __getitems__(self, indices: Sequence[int]):
        return self._gather(torch.as_tensor(indices, dtype=torch.long))


class GANDataModule(pl.LightningDataModule):
    """Base class: batch size checks, shuffled drop-last loaders, held-out reference samples.

    Subclasses fill ``self.train_set`` / ``self.val_set`` (datasets) and ``self.data_shape``.
    """

    data_shape: Tuple[int, ...]

    def __init__(self, batch_size: int = 256, num_workers: int = 0, seed: int = 0):
        super().__init__()
        if int(batch_size) <= 0:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size}: set data.batch_size")
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None

    # subclasses implement
    def _build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is None:
            self._build()
        if len(self.train_set) < self.batch_size:
            raise ConfigError(
                f"batch_size {self.batch_size} is larger than the training set ({len(self.train_set)} samples): "
                "lower data.batch_size"
            )

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        batched = hasattr(dataset, "__getitems__")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=_identity_collate if batched else None,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def reference_samples(self, n: int, split: str = "val") -> Tensor:
        """The first ``n`` samples of the held-out (``val``) or ``train`` split, data tensor only."""
        self.setup("fit")
        ds = {"val": self.val_set, "train": self.train_set}.get(split)
        if ds is None:
            raise ConfigError(f"unknown split {split!r}: use val or train")
        n = min(int(n), len(ds))
        item = ds.__getitems__(list(range(n))) if hasattr(ds, "__getitems__") else torch.stack(
            [ds[i][0] if isinstance(ds[i], tuple) else ds[i] for i in range(n)])
        return item[0] if isinstance(item, tuple) else item


def check_finite(x: Tensor, what: str) -> None:
    """Fail early on NaN/Inf in user-supplied data."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).sum())
        raise ConfigError(f"{what} contains non-finite values in {bad} samples: clean the data before training")

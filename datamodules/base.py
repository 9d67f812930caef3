"""Shared datamodule machinery: in-memory batched datasets and the common interface.

Every datamodule of the zoo exposes

* ``data_shape`` — the shape of one data point (``(2,)`` for 2-D mixtures, ``(C, H, W)`` for images);
* ``train_dataloader()`` — shuffled, drop-last batches of real data (images normalised to [-1, 1]) drawn by a
  :class:`ResumableSampler`: the order is a function of (order seed, epoch, rank), each rank of a DDP run takes
  its own share, and a run resumed from a mid-epoch checkpoint continues with exactly the batches it would have
  seen (the datamodule's ``state_dict`` holds the order seed and the number of batches consumed). With
  ``batches_per_step`` = K > 1 each loader item is a :class:`BatchGroup` of the next K batches of the same
  stream (the stream itself does not change; an epoch's last group holds its remaining batches), so a training
  loop's fixed cost per step is paid once per K batches;
* ``reference_samples(n, split="val")`` — up to ``n`` held-out real samples for evaluation (FID statistics,
  exact W2); ``split="train"`` gives training samples.

Datamodules know nothing of the methods.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from zoo.errors import ConfigError


class BatchGroup(list):
    """K consecutive real batches handed to one ``training_step`` (a datamodule's ``batches_per_step`` = K > 1);
    each element is what the loader yields with K = 1 (a tensor or a tuple ``(data, labels…)``). A type of its
    own, so a step tells a group from a batch without guessing from shapes; Lightning moves it to the device
    element by element (it is a list)."""


def _identity_collate(batch):
    return batch


def _split_batch(batch, size: int) -> list:
    """A collated batch of m·B samples (a tensor, or a tuple / list of them) → m batches of B = ``size``."""
    if isinstance(batch, Tensor):
        return list(batch.split(size))
    parts = [_split_batch(t, size) for t in batch]
    return [type(batch)(p[i] for p in parts) for i in range(len(parts[0]))]


class _GroupCollate:
    """Collate up to K·B samples with ``inner``, then cut them into a :class:`BatchGroup` of batches of B."""

    def __init__(self, inner: Callable, batch_size: int):
        self.inner, self.batch_size = inner, int(batch_size)

    def __call__(self, samples) -> BatchGroup:
        return BatchGroup(_split_batch(self.inner(samples), self.batch_size))


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


def _world() -> Tuple[int, int]:
    """(world size, rank) of the initialised process group, (1, 0) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class ResumableSampler(DistributedSampler):
    """Shuffled training indices whose position in the stream is given from outside, so a resumed run continues
    with exactly the batches an uninterrupted run would have drawn.

    With ``n`` samples, world size ``W``, rank ``r`` and batch size ``B``, epoch ``e`` is the permutation
    ``π_e = randperm(n)`` of a ``torch.Generator`` seeded with ``(seed, e)``, cut to ``⌊n/W⌋·W`` entries, and rank
    ``r`` takes ``π_e[r], π_e[r+W], …`` — so the ranks' shares partition the epoch (drop-last). The sampler
    holds no epoch counter of its own: each iteration starts at global batch ``k = position()`` (batches consumed
    so far by this rank), i.e. epoch ``e = k // P`` with ``P = ⌊⌊n/W⌋/B⌋`` batches per epoch, skipping the
    first ``k mod P`` batches of that epoch, and yields the indices of the epoch's remaining whole batches only
    (the last ``⌊n/W⌋ − P·B`` of the share are never drawn). ``set_epoch`` is accepted and ignored.

    It subclasses ``DistributedSampler`` so Lightning keeps it under DDP instead of wrapping it; rank and
    world size are read from ``torch.distributed`` when it iterates (no process group is needed to build it).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, position: Callable[[], int]):
        # DistributedSampler.__init__ would require an initialised process group; set its public fields instead
        self.dataset, self.batch_size, self.seed, self.position = dataset, int(batch_size), int(seed), position
        self.shuffle, self.drop_last, self.epoch = True, True, 0

    def batches_per_epoch(self) -> int:
        """``P = ⌊⌊n/W⌋ / B⌋`` full batches per rank and epoch."""
        return (len(self.dataset) // _world()[0]) // self.batch_size

    def __len__(self) -> int:
        """``P·B``: the full batches of one epoch (the rest of the permutation is never drawn)."""
        return self.batches_per_epoch() * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the epoch follows from ``position()``."""

    def __iter__(self) -> Iterator[int]:
        w, r = _world()
        n = len(self.dataset)
        self.epoch, skip = divmod(int(self.position()), max(1, self.batches_per_epoch()))
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2 ** 63))
        mine = torch.randperm(n, generator=g)[: (n // w) * w][r::w]
        return iter(mine[skip * self.batch_size:len(self)].tolist())


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that states its resumability to Lightning through Lightning's own interface
    (``state_dict`` / ``load_state_dict``, saved in and restored from checkpoints with the loops' state): its state is
    its datamodule's — the order seed and the number of batches consumed, from which :class:`ResumableSampler`
    continues exactly where an uninterrupted run would be."""

    def __init__(self, datamodule: "GANDataModule", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._datamodule = datamodule

    def state_dict(self) -> Dict[str, Any]:
        return self._datamodule.state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._datamodule.load_state_dict(state_dict)


class GANDataModule(pl.LightningDataModule):
    """Base class: batch size checks, shuffled drop-last loaders, held-out reference samples.

    Subclasses fill ``self.train_set`` / ``self.val_set`` (datasets) and ``self.data_shape``.

    Args:
        batch_size: real samples per batch B (one discriminator step).
        num_workers: DataLoader worker processes.
        seed: fixes the data (generated points, splits); the training order follows ``seed_everything``.
        batches_per_step: K; each training step receives a :class:`BatchGroup` of the next K batches instead of
            one batch. The stream of batches is the same for every K (a zoo module trains on it identically);
            only the training loop's fixed cost per step (about 1 ms with Lightning on a CPU) is paid once per K
            batches, which matters for small nets (docs/PERFORMANCE.md). Evaluation callbacks then run at the
            first step boundary at or after their cadence.
    """

    data_shape: Tuple[int, ...]
    #: True for samplers of a known density (the 2-D mixtures): an epoch is an artefact of the sample size, and
    #: progress displays count generator steps only (``callbacks.progress``).
    endless: bool = False

    def __init__(self, batch_size: int = 256, num_workers: int = 0, seed: int = 0, batches_per_step: int = 1):
        super().__init__()
        if int(batch_size) <= 0:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size}: set data.batch_size")
        if int(batches_per_step) < 1:
            raise ConfigError(f"batches_per_step must be >= 1, got {batches_per_step}: set data.batches_per_step")
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = int(batch_size)
        self.batches_per_step = int(batches_per_step)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self._order_seed: Optional[int] = None  # seed of the training order (saved in checkpoints)
        self._batches_consumed = 0  # training batches handed to the module by this rank (saved in checkpoints)

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

    def _loader(self, dataset: Dataset, sampler: DistributedSampler) -> DataLoader:
        """Batches of ``dataset`` in ``sampler``'s order (whole batches at once when it has ``__getitems__``); with
        ``batches_per_step`` = K > 1, :class:`BatchGroup` s of K batches, the last group of an epoch holding the
        epoch's remaining batches (so passes fall on the same batches for every K).

        Each pass of a ``DataLoader`` draws its workers' base seed from the loader's ``generator``, by default
        torch's global one — the one the modules draw their noise from. The loader gets a generator of its own
        (seeded with the sampler's order seed), so epoch starts take nothing from the noise stream: a run
        resumed from a checkpoint written on an epoch's last batch (whose next pass was opened before the
        checkpoint's random state was restored) draws the same noise as an uninterrupted run."""
        collate = _identity_collate if hasattr(dataset, "__getitems__") else default_collate
        k = self.batches_per_step
        return ResumableDataLoader(
            self,
            dataset,
            batch_size=self.batch_size * k,
            sampler=sampler,
            drop_last=False,  # the sampler yields whole batches only
            num_workers=self.num_workers,
            collate_fn=collate if k == 1 else _GroupCollate(collate, self.batch_size),
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(int(getattr(sampler, "seed", 0)) % (2 ** 63)),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled drop-last batches in a resumable order (:class:`ResumableSampler`).

        The order seed is ``torch.initial_seed()`` (so ``seed_everything`` fixes it) unless a checkpoint
        restored one; under DDP rank 0's seed is broadcast so the ranks' shares partition each epoch.
        """
        self.setup("fit")
        if self._order_seed is None:
            seed = int(torch.initial_seed()) % (2 ** 63)
            trainer = getattr(self, "trainer", None)
            if trainer is not None and trainer.world_size > 1:
                seed = int(trainer.strategy.broadcast(seed, src=0))
            self._order_seed = seed
        sampler = ResumableSampler(self.train_set, self.batch_size, self._order_seed, lambda: self._batches_consumed)
        return self._loader(self.train_set, sampler)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the training batches handed to the module (the resume position of :class:`ResumableSampler`)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            self._batches_consumed += len(batch) if isinstance(batch, BatchGroup) else 1
        return batch

    def state_dict(self) -> Dict[str, Any]:
        """The training order's seed and the number of batches consumed (saved in checkpoints)."""
        return {"order_seed": self._order_seed, "batches_consumed": self._batches_consumed}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._order_seed = state_dict.get("order_seed", self._order_seed)
        self._batches_consumed = int(state_dict.get("batches_consumed", 0))

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


def split_indices(n: int, val_fraction: float, seed: int) -> Tuple[Tensor, Tensor]:
    """(train, val) indices of a seeded split: ``perm = randperm(n)``, the first ``round(n·val_fraction)`` are val."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def check_finite(x: Tensor, what: str) -> None:
    """Fail early on NaN/Inf in user-supplied data."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).sum())
        raise ConfigError(f"{what} contains non-finite values in {bad} samples: clean the data before training")

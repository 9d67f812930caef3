"""Assertions and callbacks shared by the tests (``from _checks import ...``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Recursive exact equality of checkpoint contents: tensors bit-identical (same dtype, shape and values),
    dicts with the same keys, sequences of the same length, other values equal (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs (max abs diff {(a.double() - b.double()).abs().max():.3g})"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


class StopAtBatch(pl.Callback):
    """Stop training after the module has consumed ``batch`` real batches (a stand-in for a preemption)."""

    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.batch_step >= self.batch:
            trainer.should_stop = True


def image_folder_with_two_bad_files(root, ext: str = "png", side: int = 12, seed: int = 1):
    """Six random RGB images ``0..5.<ext>`` under ``root``, of which ``2`` is not an image at all and ``4`` is a
    valid file cut in half (as by an interrupted copy)."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / f"{i}.{ext}")
    (root / f"2.{ext}").write_bytes(b"not an image at all")
    good = (root / f"4.{ext}").read_bytes()
    (root / f"4.{ext}").write_bytes(good[: len(good) // 2])
    return root

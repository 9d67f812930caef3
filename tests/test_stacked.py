"""Stacked-digits mode counting, against the datamodule's labels and hand-computed histograms."""

import csv
import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from callbacks.stacked import (StackedModeCount, classify_channels, mode_histogram_metrics, stacked_mode_metrics,
                               triple_modes)
from datamodules.images import Digits, StackedDigits


def test_histogram_metrics_by_hand():
    m = mode_histogram_metrics(torch.tensor([0, 0, 1, 999]))
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert m["modes"] == 3
    assert m["kl"] == pytest.approx(float((p * torch.log(1000 * p)).sum()), rel=1e-12)
    u = mode_histogram_metrics(torch.arange(1000).repeat(3))
    assert u["modes"] == 1000 and u["kl"] == pytest.approx(0.0, abs=1e-12)
    assert mode_histogram_metrics(torch.full((50,), 7))["kl"] == pytest.approx(math.log(1000))


@pytest.mark.parametrize("size", [8, 32])
def test_classifier_recovers_held_out_triples(size):
    dm = StackedDigits(n_samples=64, val_samples=1000, image_size=size, seed=0)
    dm.setup("fit")
    x, mode = dm.val_set.__getitems__(list(range(1000)))
    digits = classify_channels(x)
    assert digits.shape == (1000, 3)
    acc = float((triple_modes(digits) == mode).double().mean())
    assert acc >= 0.93, acc  # ≈ 0.99³ with per-digit accuracy 0.99
    assert stacked_mode_metrics(x)["modes"] == int(torch.unique(triple_modes(digits)).numel())


class TenTriples(pl.LightningModule):
    """Cycles through 10 held-out stacked images whose triples the classifier gets right."""

    def __init__(self, images):
        super().__init__()
        self.automatic_optimization = False
        self.images = images
        self.data_shape = tuple(images.shape[1:])
        self.gen_step = 0
        self.p = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n):
        return self.images[torch.arange(n) % len(self.images)]

    def training_step(self, batch, batch_idx):
        self.gen_step += 1

    def configure_optimizers(self):
        return None


def test_callback_counts_ten_modes(tmp_path):
    dm = StackedDigits(n_samples=64, val_samples=300, image_size=16, batch_size=8, seed=0)
    dm.setup("fit")
    x, mode = dm.val_set.__getitems__(list(range(300)))
    ok = triple_modes(classify_channels(x)) == mode
    chosen, seen = [], set()
    for i in torch.nonzero(ok).flatten().tolist():
        if int(mode[i]) not in seen:
            seen.add(int(mode[i]))
            chosen.append(i)
        if len(chosen) == 10:
            break
    cb = StackedModeCount(every_n_gen_steps=0, n_samples=1000, batch_size=300)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, logger=CSVLogger(tmp_path, name="r", version=""), callbacks=[cb],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(TenTriples(x[chosen]), datamodule=dm)
    rows = [r for r in csv.DictReader(open(tmp_path / "r" / "metrics.csv")) if r.get("eval/modes")]
    assert len(rows) == 1
    # chunks of 300 restart the cycle: counts 30,30,... per chunk → 1000 = 3·300 + 100; each of the 10
    # images appears 3·30 + 10 = 100 times: uniform over 10 modes → KL = log(1000/10)
    assert float(rows[0]["eval/modes"]) == 10
    assert float(rows[0]["eval/kl"]) == pytest.approx(math.log(100), rel=1e-9)


def test_mode_index_place_values():
    assert triple_modes(torch.tensor([[3, 0, 7], [0, 0, 0], [9, 9, 9]])).tolist() == [307, 0, 999]
    assert triple_modes(torch.tensor([[4], [9]])).tolist() == [4, 9]


def test_callback_counts_digit_classes(tmp_path):
    """Plain digits: 10 modes (the classes). Four held-out images of classes the classifier gets right, each
    generated 250 times of 1000 → 4 modes, KL(p ‖ U_10) = log(10/4)."""
    dm = Digits(image_size=8, batch_size=8, seed=0)
    dm.setup("fit")
    x, label = dm.val_set.__getitems__(list(range(len(dm.val_set))))
    ok = classify_channels(x)[:, 0] == label
    chosen = [int(torch.nonzero(ok & (label == c)).flatten()[0]) for c in (0, 3, 5, 8)]
    cb = StackedModeCount(every_n_gen_steps=0, n_samples=1000, batch_size=200)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, logger=CSVLogger(tmp_path, name="r", version=""),
                         callbacks=[cb], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(TenTriples(x[chosen]), datamodule=dm)
    rows = [r for r in csv.DictReader(open(tmp_path / "r" / "metrics.csv")) if r.get("eval/modes")]
    assert len(rows) == 1
    assert float(rows[0]["eval/modes"]) == 4
    assert float(rows[0]["eval/kl"]) == pytest.approx(math.log(10 / 4), rel=1e-9)

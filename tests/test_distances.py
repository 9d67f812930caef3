"""Exact W2 (POT) and energy distance, against brute force, the Hungarian algorithm, 1-D closed forms and scipy."""

import csv
import itertools

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from scipy.optimize import linear_sum_assignment
from scipy.stats import energy_distance as scipy_energy

from callbacks.distances import SampleDistances, energy_distance, w2_exact


def test_w2_matches_brute_force_over_permutations():
    g = np.random.default_rng(0)
    x, y = g.normal(size=(6, 3)), g.normal(size=(6, 3)) + 0.5
    best = min(sum(((x[i] - y[p[i]]) ** 2).sum() for i in range(6)) for p in itertools.permutations(range(6))) / 6
    assert w2_exact(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(np.sqrt(best), rel=1e-10)


def test_w2_matches_hungarian_and_1d_closed_form():
    g = np.random.default_rng(1)
    x, y = g.normal(size=(300, 2)), g.standard_t(3, size=(300, 2))
    c = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    r, k = linear_sum_assignment(c)
    assert w2_exact(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(np.sqrt(c[r, k].mean()), rel=1e-9)
    a, b = g.normal(size=500), g.exponential(size=500)
    closed = np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))  # monotone rearrangement in 1-D
    assert w2_exact(torch.from_numpy(a[:, None]), torch.from_numpy(b[:, None])) == pytest.approx(closed, rel=1e-9)


def test_w2_unequal_sizes_by_hand():
    # x = {0, 2}, y = {1}: every point moves distance 1 → W2 = 1; x = {0, 0, 3}, y = {0, 3} (1-D):
    # mass 1/3 at 0 stays, 1/3 of 0 travels 3 → 1/3·9 ... with y weights 1/2: π(0→0)=1/2, π(0→3)=1/6,
    # π(3→3)=1/3 → W2² = 9/6
    assert w2_exact(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0]])) == pytest.approx(1.0)
    assert w2_exact(torch.tensor([[0.0], [0.0], [3.0]]), torch.tensor([[0.0], [3.0]])) == pytest.approx(np.sqrt(1.5))


def test_energy_distance_against_scipy_and_brute_force():
    g = np.random.default_rng(2)
    a, b = g.normal(size=200), g.normal(1.0, 2.0, size=150)
    assert energy_distance(torch.from_numpy(a[:, None]), torch.from_numpy(b[:, None])) == pytest.approx(
        scipy_energy(a, b) ** 2, rel=1e-9)
    x, y = g.normal(size=(7, 3)), g.normal(size=(5, 3))
    d = lambda p, q: np.linalg.norm(p - q)  # noqa: E731
    brute = (2 * np.mean([d(p, q) for p in x for q in y]) - np.mean([d(p, q) for p in x for q in x])
             - np.mean([d(p, q) for p in y for q in y]))
    assert energy_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(brute, rel=1e-9)
    assert energy_distance(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-12)


class Shifted(pl.LightningModule):
    """'Generates' the datamodule's held-out points translated by c: W2 = |c| exactly."""

    def __init__(self, dm, shift):
        super().__init__()
        self.automatic_optimization = False
        self.dm, self.shift = dm, torch.tensor(shift)
        self.data_shape = (2,)
        self.gen_step = 0
        self.p = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n):
        return self.dm.reference_samples(n, "val") + self.shift

    def training_step(self, batch, batch_idx):
        self.gen_step += 1

    def configure_optimizers(self):
        return None


def test_callback_logs_w2_of_a_translation(tmp_path):
    from datamodules.synthetic import Synthetic2D

    dm = Synthetic2D(name="ring8", n_samples=2000, val_samples=1000, batch_size=32)
    dm.setup("fit")
    cb = SampleDistances(every_n_gen_steps=2, n_samples=400)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, logger=CSVLogger(tmp_path, name="r", version=""), callbacks=[cb],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(Shifted(dm, [0.3, -0.4]), datamodule=dm)
    rows = [r for r in csv.DictReader(open(tmp_path / "r" / "metrics.csv")) if r.get("eval/w2")]
    assert [int(float(r["trainer/gen_step"])) for r in rows] == [2, 3]  # cadence + once at the end
    for r in rows:
        assert float(r["eval/w2"]) == pytest.approx(0.5, rel=1e-6)
        assert float(r["eval/energy"]) > 0

"""Datasets: mode positions and counts, normalisation, splits, loaders (independent hand-computed checks)."""

import math

import numpy as np
import pytest
import torch

from datamodules import Digits, StackedDigits, Synthetic2D, resolve_data
from datamodules.synthetic import ring_modes
from zoo.errors import ConfigError


def test_ring8_has_eight_distinct_modes_at_2pi_i_over_8():
    dm = Synthetic2D("ring8")
    expected = [(math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)) for i in range(8)]
    assert torch.allclose(dm.modes, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    # all pairwise distances equal 2 sin(pi/8) or more: 8 distinct modes (linspace(0, 2pi, 8) would give 7)
    d = torch.cdist(dm.modes, dm.modes) + torch.eye(8) * 10
    assert d.min() == pytest.approx(2 * math.sin(math.pi / 8), rel=1e-5)
    assert dm.mode_std == 0.01


def test_linspace_gotcha_gives_seven_modes():
    angles = np.linspace(0, 2 * np.pi, 8)
    pts = np.round(np.stack([np.cos(angles), np.sin(angles)], 1), 6)
    assert len({tuple(p) for p in pts}) == 7  # the bug the datamodule avoids
    assert len({tuple(p) for p in np.round(ring_modes(8).numpy(), 6)}) == 8


def test_grid25_means_and_std():
    dm = Synthetic2D("grid25")
    vals = {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert dm.modes.shape == (25, 2)
    assert {tuple(m) for m in dm.modes.tolist()} == {(a, b) for a in vals for b in vals}
    assert dm.mode_std == 0.05


def test_wgangp_scalings():
    r = Synthetic2D("ring8_wgangp")
    assert torch.allclose(r.modes.norm(dim=1), torch.full((8,), 2 / 1.414), atol=1e-5)
    assert r.mode_std == pytest.approx(0.02 / 1.414)
    g = Synthetic2D("grid25_wgangp")
    assert g.modes.abs().max() == pytest.approx(4 / 2.828, rel=1e-5)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_are_drawn_around_modes_with_the_right_std(name):
    dm = Synthetic2D(name, n_samples=20_000, val_samples=100, seed=3)
    dm.setup()
    x = dm.train_set.tensors[0]
    d = torch.cdist(x, dm.modes)
    nearest = d.argmin(1)
    resid = x - dm.modes[nearest]
    assert resid.std().item() == pytest.approx(dm.mode_std, rel=0.05)
    counts = torch.bincount(nearest, minlength=len(dm.modes)).float()
    assert counts.min() / counts.max() > 0.8  # uniform weights


def test_support_datasets_lie_in_their_support():
    for name in ("two_squares", "annulus"):
        dm = Synthetic2D(name, n_samples=5000, val_samples=100)
        dm.setup()
        x = dm.train_set.tensors[0]
        assert dm.modes is None
        assert dm.distance_to_support(x).max() < 1e-6
        assert dm.distance_to_support(torch.tensor([[0.0, 0.0]])).item() > 0.5
    r = Synthetic2D("annulus", n_samples=20_000).sample(20_000).norm(dim=1)
    # uniform in area: P(r <= 1.25) = (1.25^2 - 1) / (1.5^2 - 1) = 0.45
    assert (r <= 1.25).float().mean().item() == pytest.approx(0.45, abs=0.02)


def test_seed_fixes_the_data_and_loader_batches():
    a, b = Synthetic2D("ring8", seed=1), Synthetic2D("ring8", seed=1)
    a.setup(), b.setup()
    assert torch.equal(a.train_set.tensors[0], b.train_set.tensors[0])
    batch = next(iter(a.train_dataloader()))
    assert batch.shape == (256, 2)
    assert a.reference_samples(10).shape == (10, 2)


def test_digits_normalised_to_unit_range_and_split_fixed():
    dm = Digits(seed=0)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and dm.data_shape == (1, 8, 8)
    assert x.min() >= -1 and x.max() <= 1
    all_x = dm.train_set.transform(dm.train_set.tensors[0])
    assert all_x.min().item() == -1.0 and all_x.max().item() == 1.0  # pixel 0 -> -1, 16 -> 1
    assert len(dm.train_set) + len(dm.val_set) == 1797
    up = Digits(image_size=32)
    up.setup()
    assert next(iter(up.train_dataloader()))[0].shape == (64, 1, 32, 32)


def test_stacked_digits_modes_match_channel_labels():
    from datamodules.images import load_digits_tensor

    images, labels = load_digits_tensor()
    dm = StackedDigits(n_samples=500, val_samples=50, seed=0)
    dm.setup()
    x, mode = dm.train_set.__getitems__(list(range(20)))
    assert x.shape == (20, 3, 8, 8) and dm.data_shape == (3, 8, 8)
    for i in range(20):
        for c, digit in enumerate((mode[i] // 100, (mode[i] // 10) % 10, mode[i] % 10)):
            # the channel is one of the digit images with that label
            cands = (images[labels == digit] / 16 * 2 - 1)
            assert (cands - x[i, c]).abs().amax(dim=(1, 2)).min() < 1e-5
    assert dm.num_modes == 1000


def test_bad_data_configs_fail_with_one_line_messages():
    with pytest.raises(ConfigError, match="unknown 2-D dataset 'ring9'"):
        Synthetic2D("ring9")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        Synthetic2D("ring8", batch_size=0)
    with pytest.raises(ConfigError, match="unknown dataset"):
        resolve_data("imagenet")
    with pytest.raises(ConfigError, match="image_size"):
        Digits(image_size=12)

"""mode_metrics against hand-computed cases (VEEGAN/PacGAN definitions)."""

import math

import pytest
import torch

from callbacks.modes import mode_metrics

MODES = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def test_all_samples_on_one_mode():
    x = torch.zeros(100, 2)
    m = mode_metrics(x, MODES, std=0.1)
    assert m["modes"] == 1 and m["hq"] == 1.0
    assert m["kl"] == pytest.approx(math.log(4))  # one of K=4 modes: KL = log K


def test_uniform_over_modes_gives_zero_kl():
    x = MODES.repeat(25, 1)
    m = mode_metrics(x, MODES, std=0.1)
    assert m == {"modes": 4, "hq": 1.0, "kl": pytest.approx(0.0, abs=1e-12)}


def test_hand_computed_mixture_with_low_quality_samples():
    # 6 HQ samples: 3 at mode 0, 2 at mode 1, 1 at mode 2 (within 3 std = 0.3); 4 far-off samples
    x = torch.tensor([[0.0, 0.1], [0.2, 0.0], [0.0, -0.29], [10.1, 0.0], [9.8, 0.1], [0.0, 10.0],
                      [5.0, 5.0], [0.0, 0.31], [3.0, 3.0], [10.0, 5.0]])
    m = mode_metrics(x, MODES, std=0.1)
    expected_kl = sum(p * math.log(p * 4) for p in (3 / 6, 2 / 6, 1 / 6))
    assert m["modes"] == 3
    assert m["hq"] == pytest.approx(0.6)
    assert m["kl"] == pytest.approx(expected_kl, rel=1e-9)


def test_no_hq_samples_and_nonfinite_samples():
    x = torch.tensor([[5.0, 5.0], [float("nan"), 0.0]])
    m = mode_metrics(x, MODES, std=0.1)
    assert m["modes"] == 0 and m["hq"] == 0.0 and m["kl"] == pytest.approx(math.log(4))


def test_threshold_is_three_std_euclidean():
    inside = torch.tensor([[0.299, 0.0]])
    outside = torch.tensor([[0.25, 0.17]])  # |x| = 0.302
    assert mode_metrics(inside, MODES, std=0.1)["hq"] == 1.0
    assert mode_metrics(outside, MODES, std=0.1)["hq"] == 0.0

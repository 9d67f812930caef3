"""The SR-GAN 2-D study's definitions on hand-made curves (experiments/srgan_grid.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from srgan_grid import first_flag, mode_collapse_step  # noqa: E402


def test_mode_collapse_is_a_30_percent_fall_below_the_running_maximum_after_half_the_modes():
    steps = [250, 500, 750, 1000, 1250, 1500]
    # 25 modes: the maximum reaches 15 (≥ 12.5), then 10 ≤ 0.7·15 = 10.5 → collapse at 1250
    assert mode_collapse_step(steps, [4, 15, 12, 11, 10, 2], 25) == 1250
    # 11 = 0.73·15: not yet
    assert mode_collapse_step(steps[:4], [4, 15, 12, 11], 25) is None
    # a fall from a maximum below K/2 is no collapse (there was no healthy phase): 12 → 2
    assert mode_collapse_step(steps, [12, 2, 1, 0, 3, 2], 25) is None
    # exactly 0.7 of the maximum counts (30 % below it): 10 modes, maximum 10, then 7
    assert mode_collapse_step([1, 2, 3], [10, 8, 7], 10) == 3


def test_flags_running_maximum_versus_window():
    steps = [0, 1000, 2000, 3000, 4000, 5000, 6000]
    frac = [0.9, 0.6, 0.5, 0.44, 0.40, 0.38, 0.15]
    # running maximum 0.9 from the initialisation: 0.44 < 0.45 at 3000 (a slow concentration)
    assert first_flag(steps, frac) == 3000
    # the windowed flag (max over the preceding 2000 steps) fires only on the fast fall at 6000 (0.15 < 0.2)
    assert first_flag(steps, frac, window=2000) == 6000
    assert first_flag(steps, [0.5, 0.5, 0.5], window=2000) is None


def test_collapse_on_the_forward_mean_ignores_single_noisy_evaluations():
    from srgan_grid import smoothed

    steps = list(range(0, 4000, 250))
    modes = [4, 15, 9, 16, 15, 14, 16, 15, 6, 5, 4, 5, 6, 4, 5, 5]  # one noisy dip at 500, the fall at 2000
    assert mode_collapse_step(steps, modes, 25) == 500                # raw: the dip reads as a collapse
    # forward mean over 1000 steps (4 evaluations): 11, 13.75, 13.5, 15.25, 15, 12.75, 10.5, 7.5, 5, …
    assert smoothed(steps, modes, 1000)[:3] == [11.0, 13.75, 13.5]
    assert mode_collapse_step(steps, modes, 25, window=1000) == 1500  # 10.5 ≤ 0.7 · 15.25 = 10.675 (12.75 is not)

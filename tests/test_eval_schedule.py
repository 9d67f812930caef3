"""Anytime evaluation: the ``log2`` schedule of the evaluation callbacks (callbacks._util.scheduled_steps).

References: the schedules written out by hand; a real ``train.py`` run's metrics.csv."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callbacks._util import check_schedule, scheduled_steps
from zoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _sequence(n, schedule, end):
    out, last = [], 0
    while True:
        step = scheduled_steps(n, schedule, last)
        if step > end:
            return out
        out.append(step)
        last = step


def test_schedules_by_hand():
    assert _sequence(250, "log2", 20_000) == [250, 500, 1000, 2000, 4000, 8000, 16000]
    assert _sequence(500, "linear", 2600) == [500, 1000, 1500, 2000, 2500]
    # grouped batches can pass a scheduled step: the next one is the first after the step where it fired
    assert scheduled_steps(250, "log2", 1003) == 2000 and scheduled_steps(500, "linear", 1003) == 1500
    with pytest.raises(ConfigError, match="unknown schedule 'log10'"):
        check_schedule("mode_coverage", "log10")


def test_train_cli_evaluates_at_log_spaced_steps_and_at_the_end(tmp_path):
    cmd = [sys.executable, "train.py", "fit", "--model", "vanilla", "--data", "ring8", "--data.n_samples", "2000",
           "--model.max_gen_steps", "450", "--mode_coverage.every_n_gen_steps", "50",
           "--mode_coverage.schedule", "log2", "--mode_coverage.n_samples", "500",
           "--sample_plot.every_n_gen_steps", "0", "--trainer.enable_progress_bar", "false",
           "--run_name", "anytime", "--trainer.default_root_dir", str(tmp_path), "--wandb", "false"]
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    with open(tmp_path / "anytime" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/modes")]
    assert [int(float(r["trainer/gen_step"])) for r in rows] == [50, 100, 200, 400, 450]
    assert all(float(r["time/wall_s"]) > 0 for r in rows)


def test_unknown_schedule_fails_in_one_line(tmp_path):
    cmd = [sys.executable, "train.py", "fit", "--model", "vanilla", "--data", "ring8",
           "--mode_coverage.schedule", "log10", "--trainer.default_root_dir", str(tmp_path), "--wandb", "false"]
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "unknown schedule 'log10'" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]

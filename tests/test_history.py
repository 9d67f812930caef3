"""A resumed run reads as one run: SIGKILL at random moments, resume, and compare with an uninterrupted run.

* ``metrics.csv`` of the killed-and-resumed run equals the uninterrupted run's row for row (training rows, evaluation
  rows, every column but the two clocks, exactly: resume is bit-exact), and its wall-clock column keeps rising
  across the segments;
* ``results.json`` counts the segments and its wall / CPU time covers them (more than the last segment alone);
* the console of a resumed segment holds no warning about resuming or deleted logs, and a fresh run's console none
  about a non-empty log folder, W&B's anonymous setting or Lightning's logger advertisement.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
ENV.pop("WANDB_API_KEY", None)

UNTRUE = ("not resumable", "will be deleted", "exists and is not empty", "anonymous setting", "litlogger")


def _cmd(root: Path, name: str, method: str = "wgan_gp", steps: int = 150) -> list:
    return [sys.executable, "train.py", "fit", "--model", method, "--data", "ring8", "--data.n_samples", "3000",
            "--model.hidden", "[32, 32]", "--model.max_gen_steps", str(steps), "--checkpoint_every_n_steps", "20",
            "--mode_coverage.every_n_gen_steps", "50", "--sample_plot.every_n_gen_steps", "0",
            "--trainer.log_every_n_steps", "7", "--trainer.enable_progress_bar", "false", "--seed_everything", "3",
            "--run_name", name, "--trainer.default_root_dir", str(root)]


def _rows(run: Path) -> list:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _run(cmd) -> str:
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_killed_and_resumed_run_has_one_history_and_all_its_time(tmp_path):
    fresh_console = _run(_cmd(tmp_path, "whole"))
    assert not [ln for ln in fresh_console.splitlines() if any(u in ln for u in UNTRUE)], fresh_console[-3000:]
    whole = _rows(tmp_path / "whole")
    assert any(r["eval/modes"] for r in whole) and any(r["loss/d"] for r in whole)

    run = tmp_path / "cut"
    last = run / "checkpoints" / "last.ckpt"
    rng = random.Random(1)
    kills = 0
    for _ in range(2):  # SIGKILL twice, at random moments after a checkpoint exists
        before = last.stat().st_mtime_ns if last.exists() else 0
        proc = subprocess.Popen(_cmd(tmp_path, "cut"), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while (last.stat().st_mtime_ns if last.exists() else 0) <= before and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.05)
        time.sleep(rng.uniform(0.1, 1.5))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
    assert kills >= 1, "the run finished before it could be killed: lengthen it"
    resumed_console = _run(_cmd(tmp_path, "cut"))
    assert not [ln for ln in resumed_console.splitlines() if any(u in ln for u in UNTRUE)], resumed_console[-3000:]

    cut = _rows(run)
    assert len(cut) == len(whole)
    clock = ("time/wall_s", "time/cpu_s")
    for a, b in zip(whole, cut):  # every row, every column but the clocks: one history, equal to the uninterrupted one
        assert {k: v for k, v in a.items() if k not in clock} == {k: v for k, v in b.items() if k not in clock}
    walls = [float(r["time/wall_s"]) for r in cut if r["time/wall_s"]]
    assert len(walls) >= 3 and walls == sorted(walls), walls  # the wall-clock curve runs on across segments
    assert not list(run.glob("metrics.*.csv")), "no side file: the history is one file"

    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "complete" and res["segments"] == kills + 1
    assert res["wall_time_s"] > res["segment_wall_time_s"] > 0 and res["cpu_time_s"] > 0


def test_fresh_run_in_a_used_folder_keeps_the_old_history_aside(tmp_path):
    """A new run (no checkpoint) whose folder holds an earlier metrics.csv starts a new history and keeps the old
    file beside it — results are never lost."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,loss/d,step\n0,1.0,0\n")
    _run(_cmd(tmp_path, "r", method="vanilla", steps=30))
    kept = list(run.glob("metrics.*.csv"))
    assert len(kept) == 1 and kept[0].read_text() == "epoch,loss/d,step\n0,1.0,0\n"
    assert all(r["step"] != "0" or r["loss/d"] != "1.0" for r in _rows(run))


@pytest.mark.parametrize("extra", [[]])
def test_results_time_without_history_callback_is_the_fit(tmp_path, extra):
    """Outside train.py (no RunHistory callback) results.json still has the fit's wall time."""
    import pytorch_lightning as pl

    from callbacks.results import ResultsWriter
    from datamodules import Synthetic2D
    from zoo.vanilla import VanillaGAN

    dm = Synthetic2D(name="ring8", n_samples=600, batch_size=64)
    model = VanillaGAN(hidden=[8], max_gen_steps=5)
    writer = ResultsWriter(print_summary=False)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[writer], default_root_dir=str(tmp_path))
    trainer.fit(model, datamodule=dm)
    res = json.loads(writer.path.read_text())
    assert res["wall_time_s"] > 0 and "segments" not in res

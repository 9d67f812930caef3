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


def _history_in_process(root: Path, log_every: int) -> list:
    import pytorch_lightning as pl

    from callbacks.history import RunCSVLogger
    from datamodules import Synthetic2D
    from zoo.wgan_gp import WGANGP

    pl.seed_everything(5)
    model = WGANGP(hidden=[16], n_critic=5, max_gen_steps=30)
    dm = Synthetic2D(name="ring8", n_samples=320, batch_size=32)  # 10 batches per epoch: rows cross epochs
    trainer = pl.Trainer(max_epochs=-1, logger=RunCSVLogger(str(root), "r"), log_every_n_steps=log_every,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    return _rows(root / "r")


def test_a_row_carries_each_scalar_at_the_latest_batch_that_produced_it(tmp_path):
    """Reference: the same run logged on every batch. A row logged every 7 batches holds, for each training scalar,
    the value of the latest batch (at or before it) that produced it — a generator loss from the latest generator
    step, not a copy of the last *logged* one that Lightning keeps within an epoch (and that a run resumed mid-epoch
    could not reproduce)."""
    every = _history_in_process(tmp_path / "every", 1)
    sparse = _history_in_process(tmp_path / "sparse", 7)
    latest: dict = {}
    by_step = {}
    for r in every:
        latest.update({k: v for k, v in r.items() if v and k not in ("step", "epoch")})
        by_step[r["step"]] = dict(latest)
    keys = [k for k in sparse[0] if k.startswith(("loss/", "critic/"))]
    assert "loss/g" in keys and "loss/d" in keys
    rows = [r for r in sparse if r["loss/d"]]
    assert len(rows) >= 15
    for r in rows:
        want = by_step[r["step"]]
        assert {k: r[k] for k in keys if r[k]} == {k: want[k] for k in keys if k in want}, r["step"]
    # the rows are not vacuous: most of them are not generator steps, yet carry the generator's loss
    assert sum(1 for r in rows if r["loss/g"]) == len(rows) - sum(1 for r in rows if int(r["step"]) < 4)


def test_a_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    """A SIGKILL in the middle of writing a row leaves a last line without its line end: the resumed segment drops
    that fragment (its numbers may be cut mid-digit) instead of failing or keeping it, and goes on appending whole
    rows under the same header."""
    _run(_cmd(tmp_path, "r", method="vanilla", steps=60))
    path = tmp_path / "r" / "metrics.csv"
    whole = path.read_bytes()
    assert whole.endswith(b"\n")
    path.write_bytes(whole[:-25])  # the last row, cut
    kept = _rows(tmp_path / "r")[:-1]
    _run(_cmd(tmp_path, "r", method="vanilla", steps=80))
    text = path.read_text()
    rows = _rows(tmp_path / "r")
    assert text.endswith("\n") and all(None not in r.values() and None not in r for r in rows)
    assert rows[:len(kept)] == kept, "every whole row logged before the checkpoint is kept as it was"
    assert int(rows[-1]["step"]) > int(kept[-1]["step"]) and rows[-1]["trainer/gen_step"]

"""Never lose a run: SIGKILL at random moments (checkpoint writes included) and SIGTERM inside AE-OT's OT stage.

* ``kill -9`` cannot be caught, so what protects the run is that every file is written atomically
  (Lightning's checkpoint save goes through an fsspec transaction: temporary file, then rename; results.json
  through ``os.replace``). The test checkpoints every 2 optimizer steps so kills often land during a write, kills
  the training subprocess three times at random (seeded) moments, checks after each kill that ``last.ckpt`` loads
  with ``weights_only=True`` and is a consistent state, then lets the same command finish: it must resume and end
  with ``status: complete`` at the requested generator step.
* SIGTERM while AE-OT solves its semi-discrete OT must leave ``interrupted.ckpt`` in the OT stage and an
  ``incomplete`` results.json; re-running the command finishes the solve.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
COMMON = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--seed_everything", "0"]


def _start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


def _wait_for(path: Path, proc, timeout=240.0, newer_than: int = 0):
    """Wait until ``path`` exists with a modification time after ``newer_than`` (ns)."""
    deadline = time.time() + timeout
    while _mtime(path) <= newer_than:
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before {path.name}:\n{proc.stdout.read()[-3000:]}")
        assert time.time() < deadline, f"timeout waiting for {path}"
        time.sleep(0.05)


def test_random_sigkills_never_corrupt_the_run(tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    cmd = [sys.executable, "train.py", "fit", "--model", "vanilla", "--data", "ring8", "--data.n_samples", "2000",
           "--model.hidden", "[32, 32]", "--model.max_gen_steps", "400", "--checkpoint_every_n_steps", "2",
           "--mode_coverage.every_n_gen_steps", "100", "--run_name", "run",
           "--trainer.default_root_dir", str(tmp_path), *COMMON]
    rng = random.Random(0)
    steps = []
    for _ in range(3):
        before = _mtime(last)
        proc = _start(cmd)
        _wait_for(last, proc, newer_than=before)  # this process is training and checkpointing
        time.sleep(rng.uniform(0.0, 1.0))
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=60)
        ckpt = torch.load(last, weights_only=True, map_location="cpu")  # must never be half-written
        gen = int(ckpt["state_dict"]["gen_step_buf"])
        assert gen == ckpt["zoo"]["gen_step"] and ckpt["optimizer_states"], "inconsistent checkpoint"
        steps.append(gen)
        if (run / "results.json").exists():
            json.loads((run / "results.json").read_text())  # parseable whenever it exists
    assert steps == sorted(steps) and steps[-1] > steps[0], f"the killed runs did not make progress: {steps}"
    proc = _start(cmd)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "complete" and res["steps"]["gen_step"] == 400, res["steps"]


def test_sigterm_during_ot_stage_resumes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", "fit", "--model", "aeot", "--data", "ring8", "--data.n_samples", "2000",
           "--model.hidden", "[32, 32]", "--model.max_gen_steps", "30", "--model.n_targets", "128",
           "--model.ot_iters_per_step", "1", "--model.ot_samples", "4096", "--model.ot_tol_tv", "1e-9",
           "--model.ot_method", "adam",  # the sampled solver: Newton would finish (or stall) before the signal
           "--model.ot_patience", "100000", "--model.stats_samples", "1000", "--run_name", "run",
           "--trainer.default_root_dir", str(tmp_path), *COMMON]
    proc = _start(cmd + ["--model.ot_max_iters", "1000000"])  # the solve cannot finish before the signal
    _wait_for(run / "checkpoints" / "stage1-ae.ckpt", proc)  # written when the OT stage starts
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "incomplete", res
    ckpt = torch.load(run / "checkpoints" / "interrupted.ckpt", weights_only=True, map_location="cpu")
    assert int(ckpt["state_dict"]["stage_buf"]) == 1, "interrupted outside the OT stage"  # STAGES.index("ot")
    assert ckpt["state_dict"]["h"].shape == (128,)
    iters = ckpt["aeot"]["solver"]["t"]  # solver iterations done when interrupted
    proc = _start(cmd + ["--model.ot_max_iters", str(iters + 20)])  # resume and finish 20 iterations later
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "complete", res
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert int(final["state_dict"]["stage_buf"]) == 2 and final["state_dict"]["h"].shape == (128,)
    assert final["aeot"]["solver"]["t"] == iters + 20 and iters > 0  # the solve went on from where it stopped

"""Ctrl-C (SIGINT) and SIGTERM during training leave a usable checkpoint and an incomplete results.json."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_resumable_checkpoint(tmp_path, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", "fit", "--model", "vanilla", "--data", "ring8", "--data.n_samples", "5000",
           "--model.max_gen_steps", "1000000", "--run_name", "run", "--trainer.default_root_dir", str(tmp_path),
           "--checkpoint_every_n_steps", "50", "--wandb", "false", "--trainer.enable_progress_bar", "false",
           "--seed_everything", "0"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    # a shell's background job inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
    # give the child the default disposition, as a terminal's foreground process has
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out[-3000:]
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "incomplete", res
    assert res["steps"]["gen_step"] > 0
    ckpt = torch.load(run / "checkpoints" / "interrupted.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["zoo"]["gen_step"] == res["steps"]["gen_step"]
    from zoo import VanillaGAN

    model = VanillaGAN.load_from_checkpoint(run / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert model.gen_step == res["steps"]["gen_step"] and model.sample(4).shape == (4, 2)

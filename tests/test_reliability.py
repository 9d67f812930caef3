"""Divergence stops the run with a clear message; crafted checkpoints are refused (weights_only=True)."""

import pickle

import pytest
import torch

from zoo.cli import main
from zoo.vanilla import VanillaGAN

FAST = ["--trainer.enable_progress_bar", "false", "--seed_everything", "0", "--wandb", "false"]


class ExplodingGAN(VanillaGAN):
    """VanillaGAN whose discriminator loss turns NaN at batch 7 (a stand-in for a diverging run)."""

    def discriminator_step(self, real):
        logs = super().discriminator_step(real)
        if self.batch_step >= 7:
            logs["loss/d"] = torch.tensor(float("nan"))
        return logs


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path):
    args = ["fit", "--model", f"{__name__}.ExplodingGAN", "--data", "ring8", "--data.n_samples", "2000",
            "--model.max_gen_steps", "100", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "4",
            "--trainer.default_root_dir", str(tmp_path), "--run_name", "r", *FAST]
    with pytest.raises(FloatingPointError) as exc:
        main(args)
    msg = str(exc.value)
    # NaN from the 8th batch on (batch index 7): reported after that batch, i.e. after 8 generator steps
    assert "loss/d=nan at gen_step 8 (batch 8)" in msg and "last good checkpoint" in msg and "last.ckpt" in msg
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_crafted_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, bad)
    with pytest.raises(pickle.UnpicklingError):
        VanillaGAN.load_from_checkpoint(bad, weights_only=True)
    with pytest.raises(SystemExit):
        main(["fit", "--model", "vanilla", "--data", "ring8", "--data.n_samples", "2000",
              "--model.max_gen_steps", "3", "--ckpt_path", str(bad), "--trainer.default_root_dir", str(tmp_path),
              "--run_name", "r", *FAST])
    assert not (tmp_path / "PWNED").exists()

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


def _diverged(capsys, args) -> str:
    """train.py stops a diverged run with one line ``error: training diverged …`` and exit status 1."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert exc.value.code == 1 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path, capsys):
    args = ["fit", "--model", f"{__name__}.ExplodingGAN", "--data", "ring8", "--data.n_samples", "2000",
            "--model.max_gen_steps", "100", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "4",
            "--trainer.default_root_dir", str(tmp_path), "--run_name", "r", *FAST]
    msg = _diverged(capsys, args)
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


class PoisonedGAN(VanillaGAN):
    """VanillaGAN whose generator weights turn NaN once, after batch 10 of the process (a one-off blow-up)."""

    poisoned = False  # class-level: once per test process

    def generator_step(self, real):
        logs = super().generator_step(real)
        if self.batch_step >= 10 and not type(self).poisoned:
            type(self).poisoned = True
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("inf"))
        return logs


def _poison_args(tmp_path, *extra):
    return ["fit", "--model", f"{__name__}.PoisonedGAN", "--data", "ring8", "--data.n_samples", "2000",
            "--model.max_gen_steps", "30", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "4",
            "--trainer.default_root_dir", str(tmp_path), "--run_name", "r", *FAST, *extra]


def test_nan_parameter_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(PoisonedGAN, "poisoned", False)
    msg = _diverged(capsys, _poison_args(tmp_path))
    assert "parameter generator." in msg and "=inf at gen_step 11" in msg and "last.ckpt" in msg
    ckpt_dir = tmp_path / "r" / "checkpoints"
    assert not (ckpt_dir / "interrupted.ckpt").exists()  # a diverged state is never checkpointed
    ckpt = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    # saved every 4 optimizer steps = 2 generator steps (D + G per step): the last save before the blow-up
    assert int(ckpt["state_dict"]["gen_step_buf"]) == 10
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_rollback_restores_last_good_checkpoint_with_lower_lr(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(PoisonedGAN, "poisoned", False)
    cli = main(_poison_args(tmp_path, "--rollback.enabled", "true", "--rollback.lr_factor", "0.25"))
    model = cli.model
    assert PoisonedGAN.poisoned and model.gen_step == 30
    assert all(torch.isfinite(p).all() for p in model.parameters())
    err = capsys.readouterr().err
    assert "rolled back to" in err and "last.ckpt (gen_step 10)" in err and "x0.25 (rollback 1/3)" in err
    for opt in cli.trainer.optimizers:  # 2e-4 (VanillaGAN's default lr) x 0.25
        assert all(abs(g["lr"] - 5e-5) < 1e-12 for g in opt.param_groups)


def test_parameter_check_names_the_bad_tensor_and_never_false_alarms():
    """The screening float64 sums: NaN / ±Inf anywhere is found and named; finite float64 values whose sum
    overflows (1e308 + 1e308) are not a divergence."""
    torch.manual_seed(0)
    m = VanillaGAN(data_shape=(2,), hidden=(8,))
    m.ensure_built()
    assert m._non_finite_parameter() is None
    m.register_buffer("huge", torch.full((2,), 1e308, dtype=torch.float64))
    assert m._non_finite_parameter() is None
    names = [n for n, _ in m.named_parameters()]
    with torch.no_grad():
        dict(m.named_parameters())[names[-1]][0] = float("inf")
        dict(m.named_parameters())[names[1]].view(-1)[3] = float("-inf")
    msg = m._non_finite_parameter()
    assert msg is not None and f"parameter {names[1]}=-inf" in msg  # the first bad tensor in module order
    with torch.no_grad():
        dict(m.named_parameters())[names[1]].view(-1)[3] = float("nan")
    assert f"parameter {names[1]}=nan" in m._non_finite_parameter()

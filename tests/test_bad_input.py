"""Every bad input of ``train.py fit``, ``zoo.compare`` and ``zoo.leaderboard`` is answered with one line
``error: …`` and exit status 2 before any training, and leaves the run folder as it was (docs/RELIABILITY.md,
"Bad input"). Each case holds a fragment of its message: the option or file it names and what to do."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from _checks import image_folder_with_two_bad_files
from zoo.cli import main

B = ["--model", "vanilla", "--data", "ring8", "--data.n_samples", "2000"]
FAST = ["--trainer.enable_progress_bar", "false", "--seed_everything", "0", "--wandb", "false",
        "--model.max_gen_steps", "3", "--mode_coverage.every_n_gen_steps", "0", "--sample_plot.every_n_gen_steps", "0"]


def _files(tmp: Path) -> dict:
    """Inputs in the formats users hand over, broken the ways they break."""
    imgs = image_folder_with_two_bad_files(tmp / "imgs", ext="jpg", side=16)
    real = tmp / "real.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 0}, real)
    raw = real.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(raw[:len(raw) // 2])
    (tmp / "text.ckpt").write_text("P1\n")
    torch.save({"weights": torch.zeros(2)}, tmp / "not_lightning.ckpt")
    (tmp / "file").write_text("x")
    dmg = tmp / "runs" / "dmg" / "checkpoints"
    dmg.mkdir(parents=True)
    (dmg / "last.ckpt").write_bytes(raw[: len(raw) - 10])
    (tmp / "bad.yaml").write_text("model: [unclosed\n")
    np.save(tmp / "vector.npy", np.zeros(10))
    return {"imgs": imgs, "dmg": dmg / "last.ckpt"}


#: (id, arguments, fragment of the one error line). Arguments may use {tmp}.
TRAIN_CASES = [
    ("lr nan", [*B, "--model.lr_g", "nan"], "--model.lr_g: expected a float, got nan (NaN and Inf are not accepted)"),
    ("lr inf", [*B, "--model.lr_d", "inf"], "--model.lr_d: expected a float, got inf"),
    ("lr zero", [*B, "--model.lr_g", "0"], "model.lr_g must be a positive learning rate"),
    ("lr negative", [*B, "--model.lr_d", "-1"], "model.lr_d must be a positive learning rate"),
    ("lr text", [*B, "--model.lr_g", "fast"], "--model.lr_g: expected a float, got fast"),
    ("betas", [*B, "--model.betas", "[2, 0.9]"], "model.betas must be two numbers in [0, 1)"),
    ("hidden zero", [*B, "--model.hidden", "[0]"], "model.hidden must be positive integers"),
    ("latent_dim zero", [*B, "--model.latent_dim", "0"], "model.latent_dim must be positive integers"),
    ("model max_gen_steps", [*B, "--model.max_gen_steps", "-5"], "max_gen_steps must be positive"),
    ("top max_gen_steps", [*B, "--max_gen_steps", "0"], "max_gen_steps must be a positive number"),
    ("n_critic", ["--model", "wgan_gp", "--data", "ring8", "--model.n_critic", "0"], "n_critic must be >= 1"),
    ("icnn width", ["--model", "icnn_w2", "--data", "ring8", "--model.icnn_hidden", "[-3]"],
     "model.icnn_hidden must be positive integers"),
    ("sr_fraction", ["--model", "srgan", "--data", "ring8", "--model.sr_fraction", "2"], "sr_fraction must be in [0, 1]"),
    ("batch_size", [*B, "--data.batch_size", "-1"], "batch_size must be a positive integer"),
    ("batch_size huge", [*B, "--data.batch_size", "1000000000"], "is larger than the training set"),
    ("batch_size text", [*B, "--data.batch_size", "x"], "--data.batch_size: expected an int, got x"),
    ("n_samples", [*B, "--data.n_samples", "0"], "n_samples and val_samples must be positive"),
    ("batches_per_step", [*B, "--data.batches_per_step", "0"], "batches_per_step must be >= 1"),
    ("num_workers", [*B, "--data.num_workers", "-1"], "num_workers must be >= 0"),
    ("seed text", [*B, "--seed_everything", "abc"], "--seed_everything: expected a bool or an int, got abc"),
    ("devices", [*B, "--trainer.devices", "0"], "trainer: `Trainer(devices='0')` value is not a valid input"),
    ("max_epochs", [*B, "--trainer.max_epochs", "-5"], "trainer: `max_epochs` must be a non-negative integer"),
    ("checkpoint cadence", [*B, "--checkpoint_every_n_steps", "-1"], "checkpoint_every_n_steps must be >= 0"),
    ("run_name", [*B, "--run_name", "../escape"], "run_name '../escape' must be a folder name"),
    ("root is a file", [*B, "--trainer.default_root_dir", "{tmp}/file"], "is a file, not a folder"),
    ("root cannot be created", [*B, "--trainer.default_root_dir", "/proc/no/runs"],
     "cannot write runs under /proc/no/runs"),
    ("ckpt missing", [*B, "--ckpt_path", "{tmp}/nope.ckpt"], "nope.ckpt does not exist: check --ckpt_path"),
    ("ckpt folder", [*B, "--ckpt_path", "{tmp}"], "is a folder, not a checkpoint file"),
    ("ckpt text", [*B, "--ckpt_path", "{tmp}/text.ckpt"], "text.ckpt is damaged or not a checkpoint"),
    ("ckpt truncated", [*B, "--ckpt_path", "{tmp}/truncated.ckpt"], "truncated.ckpt is damaged or not a checkpoint"),
    ("ckpt not lightning", [*B, "--ckpt_path", "{tmp}/not_lightning.ckpt"], "is not a Lightning checkpoint"),
    ("last.ckpt damaged", [*B, "--run_name", "dmg", "--trainer.default_root_dir", "{tmp}/runs"],
     "last.ckpt is damaged or not a checkpoint (not a torch zip archive"),
    ("config missing", ["--config", "{tmp}/none.yaml"], "File does not exist"),
    ("config not yaml", ["--config", "{tmp}/bad.yaml"], "Problems parsing config"),
    ("unknown key", [*B, "--model.no_such_key", "1"], "no_such_key"),
    ("corrupt images", ["--model", "vanilla", "--data", "ImageFolderImages", "--data.root", "{tmp}/imgs",
                        "--data.image_size", "16", "--data.batch_size", "2"],
     "2 of 6 files under {tmp}/imgs are not readable images (2.jpg: "),
    ("array shape", ["--model", "vanilla", "--data", "ArrayFile", "--data.path", "{tmp}/vector.npy"],
     "has shape (10,)"),
    ("eval cadence", [*B, "--mode_coverage.every_n_gen_steps", "-1"], "mode_coverage.every_n_gen_steps must be >= 0"),
    ("eval samples", [*B, "--mode_coverage.n_samples", "0"], "mode_coverage.n_samples must be >= 1"),
    ("fid samples", ["--model", "vanilla", "--data", "digits", "--fid.n_fake", "1"], "fid.n_real and fid.n_fake"),
    ("spectral level", ["--model", "sngan", "--data", "ring8", "--spectral.threshold", "2"],
     "spectral.threshold must be in (0, 1)"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    return tmp, _files(tmp)


def _sub(args, tmp):
    return [a.replace("{tmp}", str(tmp)) for a in args]


def _snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case,args,expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input_one_line_exit_2(case, args, expected, inputs, tmp_path, capsys):
    tmp, _ = inputs
    before = _snapshot(tmp)
    args = _sub(args, tmp)
    root = [] if "--trainer.default_root_dir" in args else ["--trainer.default_root_dir", str(tmp_path / "runs")]
    fast = [x for i in range(0, len(FAST), 2) if FAST[i] not in args for x in FAST[i:i + 2]]
    with pytest.raises(SystemExit) as exc:
        main(["fit", *args, *root, *fast])
    out = capsys.readouterr()
    text = out.out + out.err
    lines = [ln for ln in out.err.splitlines() if ln.startswith("error:")]
    assert exc.value.code == 2, text[-2000:]
    assert len(lines) == 1 and _sub([expected], tmp)[0] in lines[0], text[-2000:]
    assert "Traceback" not in text
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder may be made"
    assert _snapshot(tmp) == before, "the user's files and run folders are left as they were"


COMPARE_CASES = [
    ("method", ["--methods", "vanila", "--budget", "10steps"], "unknown method 'vanila'"),
    ("budget", ["--methods", "vanilla", "--budget", "10parsecs"], "cannot read budget '10parsecs'"),
    ("budget zero", ["--methods", "vanilla", "--budget", "0steps"], "must be a positive integer"),
    ("seeds", ["--methods", "vanilla", "--budget", "10steps", "--seeds", "-1"], "--seeds must be a positive count"),
    ("data", ["--methods", "vanilla", "--data", "ring9", "--budget", "10steps"], "unknown dataset 'ring9'"),
    ("config path", ["--methods", "vanilla", "--budget", "10steps", "--config_path", "vanilla/ring8=/nope.yaml"],
     "config for vanilla/ring8 not found: /nope.yaml"),
    ("eval cadence", ["--methods", "vanilla", "--budget", "10steps", "--eval_every", "-3"],
     "--eval_every must be a positive number"),
    ("timeout", ["--methods", "vanilla", "--budget", "10steps", "--timeout", "0"], "--timeout must be a positive"),
    ("metric", ["--methods", "vanilla", "--budget", "10steps", "--metric", "speed"], "unknown metric 'speed'"),
]


@pytest.mark.parametrize("case,args,expected", COMPARE_CASES, ids=[c[0] for c in COMPARE_CASES])
def test_compare_bad_input_one_line_exit_2(case, args, expected, tmp_path, capsys):
    from zoo import compare

    code = compare.main([*args, "--out", str(tmp_path / "grid"), "--dry_run"])  # `python -m` exits with it
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and expected in lines[0], err[-2000:]
    assert not (tmp_path / "grid").exists()


def test_leaderboard_bad_input(tmp_path, capsys):
    from zoo import leaderboard

    for args, expected in [([str(tmp_path / "nowhere")], "does not exist"),
                           ([str(tmp_path), "--out", "/proc/no/lb"], "cannot write the leaderboard under /proc/no")]:
        with pytest.raises(SystemExit) as exc:
            leaderboard.main(args)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert exc.value.code == 2 and len(lines) == 1 and expected in lines[0], err
    # a results.json cut short by a crash is skipped with one line naming it; the others still make the table
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text('{"method": "vanilla", "da')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(
        {"method": "vanilla", "data": "ring8", "seed": 0, "status": "complete", "metrics": {"eval/modes": 8}}))
    md = leaderboard.main([str(tmp_path), "--out", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'a' / 'results.json'}: not a readable results.json" in err
    assert "vanilla" in md.lower()


def test_checkpoint_zip_check_is_the_format_torch_writes(tmp_path):
    """The damaged-file test relies on torch checkpoints being zip archives (torch ≥ 1.6's default format)."""
    torch.save({"state_dict": {}}, tmp_path / "c.ckpt")
    assert zipfile.is_zipfile(tmp_path / "c.ckpt")

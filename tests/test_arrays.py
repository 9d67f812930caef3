"""User-supplied array files: every format reads back the array written; bad files fail before training."""

import numpy as np
import pytest
import torch

from datamodules.arrays import ArrayFile, load_array
from zoo.cli import main
from zoo.errors import ConfigError

FAST = ["--trainer.enable_progress_bar", "false", "--seed_everything", "0", "--wandb", "false"]


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)


def test_formats_read_back(tmp_path, points):
    np.save(tmp_path / "a.npy", points)
    np.savez(tmp_path / "b.npz", x=points, y=points[:, :1])
    torch.save({"x": torch.from_numpy(points)}, tmp_path / "c.pt")
    (tmp_path / "d.csv").write_text("u,v\n" + "\n".join(f"{a!r},{b!r}" for a, b in points.tolist()))
    (tmp_path / "e.txt").write_text("\n".join(f"{a!r} {b!r}" for a, b in points.tolist()))
    ref = torch.from_numpy(points)
    for name, key in [("a.npy", None), ("b.npz", "x"), ("c.pt", "x"), ("d.csv", None), ("e.txt", None)]:
        assert torch.equal(load_array(tmp_path / name, key), ref), name
    with pytest.raises(ConfigError, match="set data.key"):
        load_array(tmp_path / "b.npz")


def test_split_and_shape(tmp_path, points):
    np.save(tmp_path / "a.npy", points)
    dm = ArrayFile(str(tmp_path / "a.npy"), val_fraction=0.2, batch_size=8)
    dm.setup("fit")
    assert dm.data_shape == (2,) and len(dm.train_set) == 40 and len(dm.val_set) == 10
    both = torch.cat([dm.reference_samples(40, "train"), dm.reference_samples(10)])
    assert torch.equal(both[both[:, 0].argsort()], torch.from_numpy(points)[torch.from_numpy(points)[:, 0].argsort()])


def test_images_are_mapped_to_minus_one_one(tmp_path):
    imgs = np.random.default_rng(1).integers(0, 256, size=(6, 1, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "img.npy", imgs)
    with pytest.raises(ConfigError, match=r"span \[.*\], not \[-1, 1\]: set data.image_range"):
        ArrayFile(str(tmp_path / "img.npy"))
    dm = ArrayFile(str(tmp_path / "img.npy"), image_range=(0, 255))
    assert torch.allclose(dm.data, torch.from_numpy(imgs).float() / 127.5 - 1, atol=1e-6)


@pytest.mark.parametrize("case,message", [
    ("nan", "contains non-finite values in 2 samples"),
    ("inf", "contains non-finite values in 1 samples"),
    ("truncated", "cannot read"),
    ("shape", "has shape (50,): use (n, d) points"),
    ("missing", "does not exist"),
])
def test_bad_files_fail_before_training(tmp_path, points, capsys, case, message):
    path = tmp_path / "bad.npy"
    if case == "nan":
        points[3, 0] = points[7, 1] = np.nan
        np.save(path, points)
    elif case == "inf":
        points[5, 1] = np.inf
        np.save(path, points)
    elif case == "truncated":
        np.save(path, points)
        path.write_bytes(path.read_bytes()[:150])
    elif case == "shape":
        np.save(path, points[:, 0])
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model", "vanilla", "--data", "ArrayFile", "--data.path", str(path),
              "--trainer.default_root_dir", str(tmp_path), "--run_name", "r", *FAST])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_train_on_user_points(tmp_path, points):
    np.save(tmp_path / "p.npy", points)
    cli = main(["fit", "--model", "vanilla", "--data", "ArrayFile", "--data.path", str(tmp_path / "p.npy"),
                "--data.batch_size", "16", "--model.max_gen_steps", "5", "--trainer.default_root_dir", str(tmp_path),
                "--run_name", "r", *FAST])
    assert cli.model.gen_step == 5 and cli.model.sample(3).shape == (3, 2)


def test_train_py_resolves_arrayfile_in_a_fresh_process(tmp_path):
    """`python train.py fit --data ArrayFile ...` as a user types it (a fresh interpreter: nothing pre-imported)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    imgs = np.random.default_rng(2).integers(0, 256, size=(40, 1, 8, 8)).astype(np.uint8)
    np.save(tmp_path / "imgs.npy", imgs)
    cmd = [sys.executable, "train.py", "fit", "--model", "vanilla", "--data", "ArrayFile", "--data.path",
           str(tmp_path / "imgs.npy"), "--data.image_range", "[0,255]", "--data.batch_size", "16",
           "--model.max_gen_steps", "2", "--fid.every_n_gen_steps", "0", "--trainer.default_root_dir", str(tmp_path),
           "--run_name", "r", *FAST]
    out = subprocess.run(cmd, cwd=root, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "r" / "results.json").exists()

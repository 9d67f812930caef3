"""Any LightningModule plugs in and is measured like the zoo's own (README "Plug in your own method").

The foreign module is ``examples/lightning_gan.py``: written the way Lightning's documentation writes a GAN (plain
``pytorch_lightning.LightningModule``, ``generator``/``discriminator``, ``forward(z)``, ``hparams.latent_dim``,
manual optimization with two optimizers), no zoo imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
GAN = "examples.lightning_gan.GAN"


def _train(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", "fit", "--trainer.default_root_dir", str(tmp_path), "--run_name", "p",
           "--trainer.enable_progress_bar", "false", "--seed_everything", "0", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    if ok:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def _results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "p" / "results.json").read_text())


def test_lightning_gan_on_ring8_is_evaluated_and_counts_generator_updates(tmp_path):
    """5 critic steps per generator step: a budget of 12 generator steps gives exactly 12 generator updates."""
    _train(tmp_path, "--model", GAN, "--data", "ring8", "--data.n_samples", "2000", "--model.img_shape", "[2]",
           "--model.latent_dim", "2", "--model.n_critic", "5", "--max_gen_steps", "12",
           "--mode_coverage.every_n_gen_steps", "6")
    res = _results(tmp_path)
    assert res["method"] == "GAN" and res["evaluated"] is True
    steps = res["steps"]
    assert steps["gen_step"] == 12 and steps["gen_step_counts"] == "generator optimizer steps"
    # every optimizer step is a critic step or a generator step: 12 generator updates, the rest critic updates
    assert steps["global_step"] > 12 * 5
    assert {"eval/modes", "eval/hq", "eval/kl", "eval/w2"} <= set(res["metrics"])
    assert res["artifacts"]["final_plot"] == "plots/samples_final.png"


def test_lightning_gan_on_digits_gets_fid_modes_and_plots(tmp_path):
    _train(tmp_path, "--model", GAN, "--data", "digits", "--model.img_shape", "[1,8,8]", "--model.latent_dim",
           "16", "--max_gen_steps", "20", "--fid.every_n_gen_steps", "20", "--sample_plot.every_n_gen_steps", "0")
    res = _results(tmp_path)
    assert res["evaluated"] is True and res["steps"]["gen_step"] == 20
    assert {"eval/fid", "eval/modes"} <= set(res["metrics"]) and res["artifacts"]["final_plot"]


def test_module_that_cannot_be_sampled_says_so(tmp_path):
    out = _train(tmp_path, "--model", "examples.lightning_gan.NoSampler", "--data", "ring8", "--data.n_samples",
                 "1000", "--trainer.max_steps", "5")
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if "cannot be sampled" in ln]
    assert len(lines) == 1 and "sample(n)" in lines[0]
    res = _results(tmp_path)
    assert res["evaluated"] is False and not any(k.startswith("eval/") for k in res["metrics"])
    assert res["steps"]["gen_step_counts"] == "training steps (global_step)"


def test_lightning_namespace_and_broken_imports_get_one_line(tmp_path):
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lit.py").write_text("import torch\nimport lightning.pytorch as pl\n\nclass GAN(pl.LightningModule):\n"
                                "    pass\n")
    (pkg / "broken.py").write_text("import torch\n\n\ndef f():\n    return {}['latent']\n\n\nX = f()\n")
    env = {**ENV, "PYTHONPATH": str(tmp_path)}
    for mod, expect in (("userpkg.lit.GAN", "pytorch_lightning"), ("userpkg.broken.GAN", "broken.py:5")):
        out = subprocess.run([sys.executable, "train.py", "fit", "--model", mod, "--data", "ring8"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
        err = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
        assert out.returncode == 2 and len(err) == 1 and expect in err[0], out.stderr[-2000:]
        assert "unknown method" not in err[0]


def test_readme_compare_command_runs_with_a_plug_in(tmp_path):
    """The README's compare command, verbatim but for a small budget, one seed and the output folder; and
    Lightning's GAN beside the zoo, its per-dataset settings from --config_path, on the leaderboard by class name."""
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("python -m zoo.compare") and "LeastSquaresGAN" in ln)
    args = line.split()[3:]
    i = args.index("--budget")
    args[i + 1] = "15steps"
    i = args.index("--seeds")
    args[i + 1] = "1"
    out = subprocess.run([sys.executable, "-m", "zoo.compare", *args, "--out", str(tmp_path / "g"), "--accelerator",
                          "cpu", "--wandb", "false"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "LeastSquaresGAN" in out.stdout and re.search(r"\| LeastSquaresGAN \| 1 \| 15 \|", out.stdout), out.stdout

    out = subprocess.run([sys.executable, "-m", "zoo.compare", "--methods", "vanilla", GAN, "--data", "ring8",
                          "digits", "--seeds", "1", "--budget", "20steps", "--out", str(tmp_path / "h"),
                          "--accelerator", "cpu", "--wandb", "false", "--config_path",
                          f"{GAN}/ring8=examples/lightning_gan_ring8.yaml", f"{GAN}/digits=examples/lightning_gan_digits.yaml"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert len(re.findall(r"\| GAN \| 1 \| 20 \|", out.stdout)) == 2, out.stdout  # a row on each dataset's board
    res = json.loads((tmp_path / "h" / f"{GAN}-ring8-s0" / "results.json").read_text())
    assert res["steps"]["gen_step"] == 20 and res["config"]["model"]["init_args"]["img_shape"] == [2]
    assert {"eval/modes", "eval/hq"} <= set(res["metrics"])
    res = json.loads((tmp_path / "h" / f"{GAN}-digits-s0" / "results.json").read_text())
    assert res["steps"]["gen_step"] == 20 and {"eval/fid", "eval/modes"} <= set(res["metrics"])


def test_installed_wheel_outside_the_checkout(tmp_path):
    """Build the wheel, install it into a fresh virtual environment (dependencies from this one, no network), and use
    it from a directory outside the checkout: `zoo fit` with a plug-in, `zoo compare` with a zoo method (its config
    comes from the package) and the plug-in."""
    dist = tmp_path / "dist"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                          "--no-index", "-q", "-w", str(dist)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(dist.glob("ot_gan_zoo-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "zz_deps.pth").write_text(deps + "\n")  # after the venv's own site-packages: the wheel's zoo wins
    out = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "lightning_gan.py", work / "mygan.py")
    (work / "mygan_ring8.yaml").write_text(textwrap.dedent("""\
        model:
          class_path: mygan.GAN
          init_args: {latent_dim: 2, img_shape: [2]}
        """))
    env = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    zoo = str(env_dir / "bin" / "zoo")
    check = subprocess.run([str(py), "-c", "import zoo, sys; print(zoo.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in check, f"zoo imported from {check}"
    out = subprocess.run([zoo, "fit", "--model", "mygan.GAN", "--data", "ring8", "--data.n_samples", "1000",
                          "--model.img_shape", "[2]", "--model.latent_dim", "2", "--max_gen_steps", "5",
                          "--run_name", "p", "--trainer.default_root_dir", "runs", "--trainer.enable_progress_bar",
                          "false"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert json.loads((work / "runs" / "p" / "results.json").read_text())["steps"]["gen_step"] == 5
    out = subprocess.run([zoo, "compare", "--methods", "vanilla", "mygan.GAN", "--data", "ring8", "--seeds", "1",
                          "--budget", "10steps", "--out", "grid", "--accelerator", "cpu", "--wandb", "false",
                          "--config_path", "mygan.GAN/ring8=mygan_ring8.yaml"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    van = json.loads((work / "grid" / "vanilla-ring8-s0" / "results.json").read_text())
    assert van["config"]["data"]["init_args"]["batches_per_step"] == 10  # configs/vanilla/ring8.yaml, from the wheel
    assert re.search(r"\| GAN \| 1 \| 10 \|", out.stdout), out.stdout

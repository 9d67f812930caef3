"""train.py end to end: results.json, configs, resume, plug-in modules, one-line errors."""

import csv
import json
from pathlib import Path

import pytest
import torch

from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--trainer.enable_progress_bar", "false", "--seed_everything", "0", "--wandb", "false"]


def _fit(tmp_path, *args, run="run"):
    main(["fit", *args, "--trainer.default_root_dir", str(tmp_path), "--run_name", run, *FAST])
    return json.loads((tmp_path / run / "results.json").read_text())


def test_vanilla_ring8_writes_results(tmp_path):
    res = _fit(tmp_path, "--model", "vanilla", "--data", "ring8", "--data.n_samples", "4000",
               "--model.max_gen_steps", "40", "--mode_coverage.every_n_gen_steps", "20")
    assert res["status"] == "complete"
    assert res["method"] == "vanilla" and res["data"] == "ring8"
    assert res["steps"]["gen_step"] == 40 and res["steps"]["global_step"] == 80  # 1 D + 1 G step per batch
    assert 0 <= res["metrics"]["eval/modes"] <= 8
    assert 0.0 <= res["metrics"]["eval/hq"] <= 1.0
    assert res["metrics"]["trainer/gen_step"] == 40
    assert res["config"]["model"]["class_path"] == "zoo.vanilla.VanillaGAN"
    assert res["seed"] == 0
    assert res["versions"]["torch"] == torch.__version__
    assert res["wall_time_s"] > 0
    run = tmp_path / "run"
    assert (run / res["artifacts"]["final_plot"]).stat().st_size > 1000
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert (run / "config.yaml").exists() and (run / "metrics.csv").exists()


def test_config_file_and_resume_continue_the_run(tmp_path):
    cfg = str(ROOT / "configs" / "vanilla" / "ring8.yaml")
    common = ["--config", cfg, "--data.init_args.n_samples", "3000", "--checkpoint_every_n_steps", "20"]
    first = _fit(tmp_path, *common, "--model.init_args.max_gen_steps", "15")
    assert first["steps"]["gen_step"] == 15
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["zoo"]["gen_step"] == 15
    second = _fit(tmp_path, *common, "--model.init_args.max_gen_steps", "30")  # same run name: resumes
    assert second["steps"]["gen_step"] == 30 and second["steps"]["global_step"] == 60
    # one history: the first segment's rows stay in metrics.csv (no side file), the second's follow them
    assert not list((tmp_path / "run").glob("metrics.*.csv"))
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        gens = [float(r["trainer/gen_step"]) for r in csv.DictReader(f) if r.get("trainer/gen_step")]
    assert min(gens) <= 15 < max(gens) and max(gens) == 30 and gens == sorted(gens)
    assert second["segments"] == 2 and second["wall_time_s"] > second["segment_wall_time_s"]


def test_images_digits_and_sample_range(tmp_path):
    cli_res = _fit(tmp_path, "--model", "vanilla", "--data", "digits", "--model.latent_dim", "16",
                   "--model.max_gen_steps", "5", "--model.base_channels", "8", "--fid.n_real", "300",
                   "--fid.n_fake", "300")
    assert cli_res["status"] == "complete"
    assert cli_res["metrics"]["eval/fid"] > 0  # the shipped digits extractor is used on digits
    assert cli_res["protocols"]["FID"]["n_fake"] == 300
    from zoo import VanillaGAN

    m = VanillaGAN.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    x = m.sample(7)
    assert x.shape == (7, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert (tmp_path / "run" / "plots" / "samples_final.png").exists()


def test_plugin_module_from_readme_trains(tmp_path):
    res = _fit(tmp_path, "--model", "examples.my_gan.LeastSquaresGAN", "--data", "ring8",
               "--data.n_samples", "3000", "--model.max_gen_steps", "20")
    assert res["status"] == "complete" and res["steps"]["gen_step"] == 20
    assert res["model_class"] == "examples.my_gan.LeastSquaresGAN"


def _cli_error(tmp_path, capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["fit", *args, "--trainer.default_root_dir", str(tmp_path), *FAST])
    err = capsys.readouterr().err
    return exc.value.code, [ln for ln in err.splitlines() if ln.startswith("error:")], err


@pytest.mark.parametrize("args,expected", [
    (["--model", "vanila", "--data", "ring8"], "unknown method 'vanila'"),
    (["--model", "vanilla", "--data", "ring9"], "unknown dataset 'ring9'"),
    (["--model", "vanilla", "--data", "ring8", "--data.batch_size", "0"], "batch_size must be a positive integer"),
    (["--model", "vanilla", "--data", "ring8", "--model.data_shape", "[3]"], "configured for data_shape (3,)"),
    (["--model", "vanilla", "--data", "mnist", "--data.root", "/nonexistent/data"], "mnist not found: expected"),
    (["--model", "vanilla", "--data", "ImageFolderImages", "--data.root", "/nonexistent/imgs"], "does not exist"),
    (["--model", "vanilla", "--data", "ring8", "--model.no_such_key", "1"], "no_such_key"),
    (["--model", "vanilla", "--data", "digits", "--fid.extractor", "resnet"], "fid extractor must be 'auto'"),
    (["--model", "vanilla", "--data", "ring8", "--rollback.lr_factor", "2"], "rollback.lr_factor must be in (0, 1]"),
])
def test_bad_input_fails_early_with_one_line(tmp_path, capsys, args, expected):
    code, lines, err = _cli_error(tmp_path, capsys, *args)
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and expected in lines[0], err[-2000:]
    assert not list(tmp_path.rglob("*.ckpt")), "no training may start"

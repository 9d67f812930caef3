"""zoo.AEOT end to end: one ``train.py fit`` runs the autoencoder, the OT and generation, with a checkpoint
between stages. Checked against independent references: brute-force power-cell histograms of the saved h,
the known support of ``two_squares``, and the segment structure of the extended map."""

import json

import pytest
import torch

from zoo.errors import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    os.environ["WANDB_MODE"] = "disabled"
    torch.set_num_threads(1)
    from zoo.cli import main

    root = tmp_path_factory.mktemp("aeot")
    main(["fit", "--model", "zoo.aeot.AEOT", "--data", "two_squares", "--data.n_samples", "4000",
          "--data.val_samples", "500", "--model.max_gen_steps", "300", "--model.n_targets", "64", "--model.lr_final_fraction", "0.1",
          "--model.hidden", "[64, 64]", "--model.ot_samples", "4096", "--model.ot_max_samples", "16384",
          "--model.ot_lr", "3e-3", "--model.ot_max_iters", "300", "--model.ot_iters_per_step", "50",
          "--model.ot_tol_tv", "0.03", "--model.top_k", "6", "--model.angle_threshold", "0.1",
          "--model.stats_samples", "2000", "--mode_coverage.every_n_gen_steps", "0",
          "--mode_coverage.n_samples", "1000", "--sample_plot.every_n_gen_steps", "0",
          "--trainer.accelerator", "cpu", "--trainer.max_epochs", "-1", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(root), "--run_name", "r", "--seed_everything", "0"])
    return root / "r"


def test_all_stages_run_and_write_results(run):
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "complete"
    m = res["metrics"]
    for key in ("eval/off_support", "ot/final_tv", "ot/final_max_rel", "aeot/rejected_fraction"):
        assert key in m, key
    assert res["steps"]["gen_step"] == 301  # 300 autoencoder steps + 1 for the OT solve
    assert (run / "checkpoints" / "stage1-ae.ckpt").exists() and (run / "checkpoints" / "stage2-ot.ckpt").exists()
    stats = json.loads((run / "aeot_generation.json").read_text())
    assert stats["n_pairs"] == 2000 * 5 and len(stats["angle_hist_counts"]) == 40
    # the OT stage's certificate is in results.json: exact cell masses (d = 2), within the config's tolerance
    cert = res["details"]["ot_certificate"]
    assert res["details"]["ot_method"] == "newton" and cert["kind"] == "exact" and cert["passed"]
    assert cert["max_rel"] <= 0.05 and m["ot/converged"] == 1.0 and res["details"]["ot_message"].startswith("converged")


def test_certified_masses_hold_on_fresh_samples(run):
    """The saved h gives each of the 64 cells its mass 1/64 within the certified 5 %, on 4M brute-force points."""
    from zoo.aeot import AEOT

    model = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage2-ot.ckpt"), map_location="cpu")
    y, h = model.targets.double(), model.h.double()
    g = torch.Generator().manual_seed(3)
    counts = torch.zeros(64, dtype=torch.float64)
    for _ in range(16):
        x = torch.rand(2**18, 2, generator=g, dtype=torch.float64) - 0.5
        counts += torch.bincount((x @ y.T + h).argmax(1), minlength=64).double()
    w = counts / (16 * 2**18)
    se = (1 / 64 * (1 - 1 / 64) / (16 * 2**18)) ** 0.5
    assert float((w * 64 - 1).abs().max()) <= 0.05 + 5 * 64 * se


def test_checkpoints_hold_the_ot_state(run):
    from zoo.aeot import AEOT

    after_ae = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage1-ae.ckpt"), map_location="cpu")
    assert after_ae.stage == "ot" and after_ae.targets.shape == (64, 2) and float(after_ae.h.abs().sum()) == 0.0
    model = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage2-ot.ckpt"), map_location="cpu")
    assert model.stage == "done" and model.h.shape == (64,)
    assert torch.equal(model.targets, after_ae.targets)  # the codes are frozen once the OT starts
    # the saved heights balance the cells: brute-force histogram on fresh uniform points of [-0.5, 0.5]²
    x = torch.rand(100_000, 2, generator=torch.Generator().manual_seed(0)) - 0.5
    w = torch.bincount((x @ model.targets.T + model.h).argmax(1), minlength=64).double() / x.shape[0]
    assert float((w - 1 / 64).abs().sum() / 2) <= 0.06 and bool((w > 0).all())
    assert model.solver().t > 0  # solver schedule state restored from the checkpoint


def test_samples_come_from_the_extended_map(run):
    from datamodules.synthetic import _two_squares_distance
    from zoo.aeot import AEOT

    model = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage2-ot.ckpt"), map_location="cpu")
    torch.manual_seed(0)
    out = model.extend(model.draw_source(3000))
    y = model.targets
    # every code lies on a segment between a cell and a neighbour that passed the angle test
    assert torch.allclose(out.codes, (1 - out.lam)[:, None] * y[out.a] + out.lam[:, None] * y[out.b], atol=1e-6)
    mixed = out.a != out.b
    from zoo.ot.extended_map import facet_angles

    assert bool((facet_angles(y, out.a[mixed], out.b[mixed]) <= 0.1 + 1e-6).all())
    x = model.sample(2000)
    assert x.shape == (2000, 2) and bool(torch.isfinite(x).all())
    # a 300-step autoencoder is rough, but most samples must land on (or next to) the two squares
    assert float((_two_squares_distance(x) <= 0.25).double().mean()) >= 0.8


def test_an_unfinished_solve_is_never_sampled(run):
    """Between the step that starts the OT solve (gen_step = max_gen_steps, where a periodic evaluation falls) and
    the end of the solve, ``sample`` is the autoencoder's Gaussian baseline — decoded codes N(mean, E|c|² − mean²)
    by hand here — not the map of the unfitted potential h = 0; once the solve is done it is the extended map."""
    from zoo.aeot import AEOT

    mid = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage1-ae.ckpt"), map_location="cpu")
    assert mid.stage == "ot" and float(mid.h.abs().sum()) == 0.0
    torch.manual_seed(0)
    z = mid.sample_latent(500)
    torch.manual_seed(0)
    std = (mid.code_sq - mid.code_mean ** 2).clamp_min(1e-12).sqrt()
    assert torch.allclose(z * mid.code_scale + mid.code_mean, mid.code_mean + std * torch.randn(500, 2), atol=1e-6)
    done = AEOT.load_from_checkpoint(str(run / "checkpoints" / "stage2-ot.ckpt"), map_location="cpu")
    torch.manual_seed(0)
    z = done.sample_latent(500)
    torch.manual_seed(0)
    assert torch.equal(z, done.extend(done.draw_source(500)).codes)


def test_autoencoder_lr_follows_the_cosine_decay(run):
    """The last autoencoder step (t = 299 of T = 300) ran at lr·(f + (1 − f)·½(1 + cos(π·299/300))), f = 0.1;
    the value is read from the optimizer state saved in the stage-1 checkpoint."""
    import math

    ck = torch.load(run / "checkpoints" / "stage1-ae.ckpt", map_location="cpu", weights_only=True)
    lr = ck["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 299 / 300))), rel=1e-9)


def test_config_errors():
    from zoo.aeot import AEOT

    with pytest.raises(ConfigError):
        AEOT()  # no max_gen_steps
    with pytest.raises(ConfigError):
        AEOT(max_gen_steps=10, angle_threshold=None, angle_percentile=None)
    with pytest.raises(ConfigError):
        AEOT(max_gen_steps=10, mix_weight=1.5)
    with pytest.raises(ConfigError):
        AEOT(max_gen_steps=10, lr_final_fraction=0.0)

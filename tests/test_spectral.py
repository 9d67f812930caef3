"""SpectralMonitor and the spectral helpers, against spectra fixed by construction (W = U diag(s) Vᵀ)."""

import csv
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from callbacks.spectral import (SpectralMonitor, matrix_to_weight, module_weight, monitored_layers,
                                normalized_spectrum, weight_matrix)


def matrix_with_spectrum(m: int, n: int, s, seed: int = 0) -> torch.Tensor:
    """An m×n float64 matrix with singular values ``s`` (U, V random orthonormal from QR)."""
    g = np.random.default_rng(seed)
    u, _ = np.linalg.qr(g.standard_normal((m, m)))
    v, _ = np.linalg.qr(g.standard_normal((n, n)))
    k = len(s)
    return torch.from_numpy(u[:, :k] @ np.diag(s) @ v[:, :k].T)


# ------------------------------------------------------------------------------------------ helpers
def test_weight_matrix_layouts_by_hand():
    conv = nn.Conv2d(3, 5, (2, 4))
    w = conv.weight
    mat = weight_matrix(w)
    assert mat.shape == (5, 3 * 2 * 4)
    # row o, column (i, a, b) in C order = weight[o, i, a, b]
    assert mat[4, 1 * 8 + 1 * 4 + 3] == w[4, 1, 1, 3]
    tconv = nn.ConvTranspose2d(3, 5, 2)  # kernel stored (C_in=3, C_out=5, 2, 2)
    tw = tconv.weight
    tmat = weight_matrix(tw, transposed=True)
    assert tmat.shape == (5, 3 * 4)
    assert tmat[2, 1 * 4 + 1 * 2 + 0] == tw[1, 2, 1, 0]
    lin = nn.Linear(7, 4)
    assert torch.equal(weight_matrix(lin.weight), lin.weight)
    for mod, tr in ((conv, False), (tconv, True), (lin, False), (nn.Conv1d(2, 3, 5), False),
                    (nn.ConvTranspose3d(2, 3, 2), True)):
        assert torch.equal(matrix_to_weight(weight_matrix(mod.weight, tr), mod.weight, tr), mod.weight)


def test_module_weight_finds_the_raw_weight():
    plain = nn.Conv2d(2, 3, 3)
    assert module_weight(plain) is plain.weight
    par = spectral_norm(nn.Conv2d(2, 3, 3))
    assert module_weight(par) is par.parametrizations.weight.original
    legacy = nn.utils.spectral_norm(nn.Linear(4, 3))
    assert module_weight(legacy) is legacy.weight_orig


@pytest.mark.parametrize("transposed", [False, True])
def test_normalized_spectrum_of_a_chosen_svd(transposed):
    s = np.array([3.0, 2.4, 1.8, 1.2, 0.3, 0.06])
    mat = matrix_with_spectrum(6, 4 * 9, s)
    like = torch.empty(4, 6, 3, 3) if transposed else torch.empty(6, 4, 3, 3)
    w = matrix_to_weight(mat, like, transposed)
    got = normalized_spectrum(w, transposed=transposed)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), s / 3.0, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ callback
S_HEALTHY = np.array([2.0, 1.8, 1.6, 1.4, 1.2, 0.8])     # normalised 1, .9, .8, .7, .6, .4 → frac 5/6
S_COLLAPSED = np.array([2.0, 0.4, 0.3, 0.2, 0.1, 0.05])  # normalised 1, .2, ...            → frac 1/6
S_LINEAR = np.array([1.5, 0.9])                          # normalised 1, .6                 → frac 1


class Disc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = spectral_norm(nn.Conv2d(4, 6, 3))           # raw weight (6, 4, 3, 3)
        self.up = nn.ConvTranspose2d(4, 6, 3)                   # kernel (4, 6, 3, 3)
        self.fc = nn.utils.spectral_norm(nn.Linear(3, 2))       # legacy SN, raw weight (2, 3)


def set_spectrum(mod: nn.Module, s, transposed: bool = False, seed: int = 0) -> None:
    raw = module_weight(mod)
    m = raw.shape[1] if transposed else raw.shape[0]
    mat = matrix_with_spectrum(m, raw.numel() // m, s, seed)
    with torch.no_grad():
        raw.copy_(matrix_to_weight(mat, raw, transposed).float())


class Dummy(pl.LightningModule):
    """Does no training; collapses ``disc.conv`` by hand after the second generator step."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.discriminator = Disc()
        set_spectrum(self.discriminator.conv, S_HEALTHY)
        set_spectrum(self.discriminator.up, S_HEALTHY, transposed=True, seed=1)
        set_spectrum(self.discriminator.fc, S_LINEAR, seed=2)
        self.gen_step = 0

    def training_step(self, batch, batch_idx):
        self.gen_step += 1
        if self.gen_step == 3:
            set_spectrum(self.discriminator.conv, S_COLLAPSED, seed=3)

    def configure_optimizers(self):
        return None

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(8, 1), batch_size=1)


def test_monitor_logs_exact_values_and_flags_a_hand_made_collapse(tmp_path, capsys):
    torch.manual_seed(0)
    mon = SpectralMonitor(every_n_gen_steps=1, threshold=0.5, collapse_drop=0.5)  # PNGs at the end
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=4, logger=CSVLogger(tmp_path, name="r", version=""), callbacks=[mon],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(Dummy())
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    by_step = {int(float(r["trainer/gen_step"])): r for r in rows if r.get("spectral/conv/sigma_max")}
    assert sorted(by_step) == [1, 2, 3, 4]
    r1, r3 = by_step[1], by_step[3]
    # healthy conv: σ₁ = 2, normalised (1, .9, .8, .7, .6, .4)
    assert float(r1["spectral/conv/sigma_max"]) == pytest.approx(2.0, abs=1e-6)
    assert float(r1["spectral/conv/frac_above"]) == pytest.approx(5 / 6, abs=1e-6)
    assert float(r1["spectral/conv/mean"]) == pytest.approx((1 + .9 + .8 + .7 + .6 + .4) / 6, abs=1e-6)
    assert float(r1["spectral/conv/collapse"]) == 0.0
    assert float(r1["spectral/up/sigma_max"]) == pytest.approx(2.0, abs=1e-6)
    assert float(r1["spectral/up/frac_above"]) == pytest.approx(5 / 6, abs=1e-6)
    assert float(r1["spectral/fc/sigma_max"]) == pytest.approx(1.5, abs=1e-6)
    assert float(r1["spectral/fc/mean"]) == pytest.approx(0.8, abs=1e-6)
    # collapsed by hand before the 3rd measurement: frac 1/6 < (1 − 0.5)·5/6
    assert float(r3["spectral/conv/frac_above"]) == pytest.approx(1 / 6, abs=1e-6)
    assert float(r3["spectral/conv/mean"]) == pytest.approx((1 + .2 + .15 + .1 + .05 + .025) / 6, abs=1e-6)
    assert float(r3["spectral/conv/collapse"]) == 1.0
    assert float(r3["spectral/up/collapse"]) == 0.0
    assert float(r3["spectral/collapsed_layers"]) == 1.0
    assert float(by_step[2]["spectral/collapsed_layers"]) == 0.0
    assert mon.collapsed_at == {"conv": 3}
    err = capsys.readouterr().err
    assert err.count("spectral collapse") == 1 and "'conv'" in err
    png = tmp_path / "r" / "plots" / "spectral" / "conv.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = torch.load(tmp_path / "r" / "plots" / "spectral" / "spectra.pt", weights_only=True)
    assert saved["conv"]["steps"] == [1, 2, 3, 4]
    np.testing.assert_allclose(saved["conv"]["spectra"][0].numpy(), S_HEALTHY / 2.0, atol=1e-6)


def test_collapse_flag_needs_a_relative_drop():
    net = nn.Sequential(nn.Linear(10, 10))
    mon = SpectralMonitor(collapse_drop=0.5)
    set_spectrum(net[0], np.linspace(1.0, 0.55, 10))            # frac 1.0
    assert mon.measure(net, 1)["spectral/0/collapse"] == 0.0
    set_spectrum(net[0], np.r_[np.linspace(1.0, 0.6, 6), [0.3] * 4])  # frac 0.6 ≥ 0.5·1.0: no flag
    out = mon.measure(net, 2)
    assert out["spectral/0/frac_above"] == pytest.approx(0.6) and out["spectral/0/collapse"] == 0.0
    set_spectrum(net[0], np.r_[np.linspace(1.0, 0.6, 4), [0.3] * 6])  # frac 0.4 < 0.5·1.0: flag
    out = mon.measure(net, 3)
    assert out["spectral/0/frac_above"] == pytest.approx(0.4) and out["spectral/0/collapse"] == 1.0
    # state survives a checkpoint round trip
    mon2 = SpectralMonitor(collapse_drop=0.5)
    mon2.load_state_dict(mon.state_dict())
    assert mon2.max_frac == {"0": 1.0} and mon2.collapsed_at == {"0": 3}


def test_monitored_layers_skips_non_weight_layers_and_filters():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.LeakyReLU(), nn.Flatten(), nn.Linear(8, 1))
    assert [n for n, _ in monitored_layers(net)] == ["0", "4"]
    assert [n for n, _ in monitored_layers(net, r"^4$")] == ["4"]
    assert math.isclose(float(normalized_spectrum(torch.zeros(3, 3)).sum()), 0.0)


def _fraction_above_half(net, k: int) -> None:
    """Set the 10×10 layer's normalised spectrum so that exactly ``k`` of its 10 values exceed ½."""
    set_spectrum(net[0], np.r_[np.linspace(1.0, 0.6, k), [0.3] * (10 - k)] if k else np.r_[[1.0], [0.3] * 9])


def test_windowed_flag_fires_on_a_fall_not_on_a_slow_concentration():
    """Reference: hand-set spectra. The fraction above ½ concentrates slowly from 1.0 (steps 0–4000: 10, 8, 6, 5, 4
    of 10) and then falls within 1000 steps (4 → 1 at 5000). The running-maximum flag fires at 4000 (0.4 < ½·1.0;
    at 3000, 0.5 is not below 0.5) on the slow concentration; the 2000-step window compares with the maximum of the
    last 2000 steps (0.6 at 4000, 0.5 at 5000) and fires only on the fall (0.1 < ½·0.5)."""
    net = nn.Sequential(nn.Linear(10, 10))
    running, windowed = SpectralMonitor(), SpectralMonitor(flag_window=2000)
    flags = {"running": [], "windowed": []}
    for step, k in zip(range(0, 6000, 1000), (10, 8, 6, 5, 4, 1)):
        _fraction_above_half(net, k)
        for name, mon in (("running", running), ("windowed", windowed)):
            out = mon.measure(net, step)
            assert out["spectral/0/frac_above"] == pytest.approx(k / 10)
            flags[name].append(out["spectral/0/collapse"])
    assert flags["running"] == [0, 0, 0, 0, 1, 1]
    assert flags["windowed"] == [0, 0, 0, 0, 0, 1]
    assert running.collapsed_at == {"0": 4000} and windowed.collapsed_at == {"0": 5000}
    # the window's history survives a checkpoint round trip: the same verdict after a resume
    resumed = SpectralMonitor(flag_window=2000)
    resumed.load_state_dict(windowed.state_dict())
    _fraction_above_half(net, 1)
    assert resumed.measure(net, 6000)["spectral/0/collapse"] == 1.0  # max over 4000–6000 is 0.4: 0.1 < 0.2
    with pytest.raises(Exception, match="flag_window must be a positive"):
        SpectralMonitor(flag_window=0)

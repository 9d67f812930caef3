"""SR-GAN / SN-GAN tests: compensation formulas against hand-built spectra, reshaping against torch's own
spectral-norm parametrization, the official cadence, and bit-identical weights across DDP ranks."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from callbacks.spectral import is_transposed, matrix_to_weight
from zoo.errors import ConfigError
from zoo.srgan import (SNGAN, SRGAN, DynamicCompensation, regularizable_layers, spectral_regularize_,
                       static_compensation)

torch.set_num_threads(1)


def orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return q


def with_spectrum(sigma, m: int, n: int, seed: int = 0):
    """W = U diag(σ) Vᵀ with random orthonormal U (m×r), V (n×r); returns (W, U, V)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    r = len(sigma)
    u, v = orthonormal(m, r, seed), orthonormal(n, r, seed + 100)
    return u @ torch.diag(sigma) @ v.T, u, v


def svdvals(w: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(w.double())


# ------------------------------------------------------------------ static compensation
@pytest.mark.parametrize("m,n", [(6, 9), (9, 6), (6, 6)])
def test_static_normalised_spectrum_is_ones_then_tail(m, n):
    sigma = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]  # r = 6, k = ⌊6·½⌋ = 3
    w, u, v = with_spectrum(sigma, m, n, seed=1)
    out = static_compensation(w, fraction=0.5)
    expected = torch.tensor([1.0, 1.0, 1.0, 2 / 5, 1 / 5, 0.5 / 5], dtype=torch.float64)
    torch.testing.assert_close(svdvals(out), expected, atol=1e-12, rtol=0)
    # closed form (1/σ₁)[W + Σ_{i≤k} (σ₁ − σ_i) u_i v_iᵀ] with the hand-built singular vectors
    s = torch.tensor(sigma, dtype=torch.float64)
    closed = (w + sum((s[0] - s[i]) * torch.outer(u[:, i], v[:, i]) for i in range(3))) / s[0]
    torch.testing.assert_close(out, closed, atol=1e-12, rtol=0)


@pytest.mark.parametrize("r,fraction,k", [(5, 0.5, 2), (27, 0.5, 13), (3, 0.5, 1), (8, 0.25, 2), (4, 1.0, 4),
                                          (4, 0.0, 0)])
def test_static_count_is_floor_rank_times_fraction(r, fraction, k):
    sigma = torch.linspace(2.0, 0.1, r, dtype=torch.float64)
    w, _, _ = with_spectrum(sigma, r + 3, r, seed=2)
    out = svdvals(static_compensation(w.float(), fraction)).double()
    expected = sigma / sigma[0]
    expected[:k] = 1.0
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)
    assert float(out[0]) == pytest.approx(1.0, abs=2e-6)  # σ₁ of the rewritten matrix is 1


def test_static_keeps_dtype_and_rejects_bad_input():
    w = torch.randn(4, 7)
    assert static_compensation(w).dtype == torch.float32
    with pytest.raises(ConfigError):
        static_compensation(torch.randn(5))
    with pytest.raises(ConfigError):
        static_compensation(w, fraction=1.5)


# ------------------------------------------------------------------ dynamic compensation
def test_dynamic_first_call_is_identity_then_running_max_with_sigma1_kept():
    comp = DynamicCompensation()
    w0, u, v = with_spectrum([4.0, 3.0, 2.0, 1.0], 5, 7, seed=3)
    torch.testing.assert_close(comp(w0), w0, atol=1e-12, rtol=0)
    # same singular vectors, collapsed tail, σ₁ = 8: normalised [1, .5, .1, .05] < reference [1, .75, .5, .25]
    w1 = u @ torch.diag(torch.tensor([8.0, 4.0, 0.8, 0.4], dtype=torch.float64)) @ v.T
    out = comp(w1)
    expected = 8.0 * torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    torch.testing.assert_close(out, u @ torch.diag(expected) @ v.T, atol=1e-12, rtol=0)
    # normalised [1, .9, .3, .2] vs reference [1, .75, .5, .25]: the running max is [1, .9, .5, .25]; r = 5 with σ₅ = 0
    w2 = u @ torch.diag(torch.tensor([2.0, 1.8, 0.6, 0.4], dtype=torch.float64)) @ v.T
    out2 = comp(w2)
    torch.testing.assert_close(svdvals(out2), 2.0 * torch.tensor([1.0, 0.9, 0.5, 0.25, 0.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)


def test_dynamic_never_falls_below_recorded_maximum():
    g = torch.Generator().manual_seed(4)
    comp = DynamicCompensation()
    running = None
    for t in range(25):
        w = torch.randn(6, 10, generator=g, dtype=torch.float64) * torch.rand(10, generator=g, dtype=torch.float64)
        s = svdvals(w)
        normalised = s / s[0]
        out = comp(w)
        so = svdvals(out)
        running = normalised if running is None else torch.maximum(running, normalised)  # brute-force reference
        torch.testing.assert_close(so / so[0], running, atol=1e-10, rtol=0)
        assert float(so[0]) == pytest.approx(float(s[0]), rel=1e-12)  # σ₁ kept
        assert bool((so / so[0] >= normalised - 1e-10).all())
    state = comp.state_dict()
    clone = DynamicCompensation()
    clone.load_state_dict(state)
    w = torch.randn(6, 10, generator=g, dtype=torch.float64)
    torch.testing.assert_close(clone(w), comp(w))


# ------------------------------------------------------------------ layers: reshaping and SN refresh
def _sn_layers():
    torch.manual_seed(0)
    return nn.ModuleDict({
        "conv": spectral_norm(nn.Conv2d(3, 8, 3)),
        "convt": spectral_norm(nn.ConvTranspose2d(6, 4, 4, 2, 1)),
        "conv1d": spectral_norm(nn.Conv1d(5, 7, 3)),
        "lin": spectral_norm(nn.Linear(12, 9)),
    })


def _torch_matrix(module) -> torch.Tensor:
    """The matrix torch's own SN parametrization normalises (ConvTranspose: dim 1 permuted to the front)."""
    p = module.parametrizations.weight[0]
    return p._reshape_weight_to_matrix(module.parametrizations.weight.original.detach()).double()


def test_layer_selection_conv_only_or_all():
    layers = _sn_layers()
    assert set(regularizable_layers(layers, "conv")) == {"conv", "convt", "conv1d"}
    assert set(regularizable_layers(layers, "all")) == {"conv", "convt", "conv1d", "lin"}
    with pytest.raises(ConfigError):
        regularizable_layers(layers, "some")


def test_static_rewrite_of_conv_and_convtranspose_matches_torch_reshape_and_refreshes_sigma():
    layers = _sn_layers()
    before = {k: _torch_matrix(m) for k, m in layers.items()}
    spectral_regularize_(regularizable_layers(layers, "all"), "static", 0.5, power_iterations=1)
    for k, m in layers.items():
        after = _torch_matrix(m)
        assert after.shape == before[k].shape
        s = svdvals(before[k])
        expected_s = s / s[0]
        expected_s[: len(s) // 2] = 1.0
        torch.testing.assert_close(svdvals(after), expected_s, atol=1e-5, rtol=0)
        # singular subspaces are kept: the rewrite equals the closed form with torch's reshape
        u, sv, vh = torch.linalg.svd(before[k], full_matrices=False)
        t = sv / sv[0]
        t[: len(sv) // 2] = 1.0
        torch.testing.assert_close(after, u @ torch.diag(t) @ vh, atol=1e-5, rtol=0)
        # the refreshed power-iteration vectors give the exact σ₁ = 1: the eval-mode SN weight has norm 1
        m.eval()
        eff = m.parametrizations.weight[0]._reshape_weight_to_matrix(m.weight.detach()).double()
        assert float(svdvals(eff)[0]) == pytest.approx(1.0, abs=1e-5)


def test_power_iteration_vectors_reset_to_the_new_top_pair():
    """With no extra power iteration, the reset u, v alone make the eval-mode SN weight have σ₁ = 1 exactly
    (random u, v would not: the control below)."""
    torch.manual_seed(1)
    m = spectral_norm(nn.Conv2d(4, 16, 3))
    p = m.parametrizations.weight[0]
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        m.parametrizations.weight.original.mul_(torch.rand(16, 1, 1, 1, generator=g) * 3)
        p._u.copy_(torch.nn.functional.normalize(torch.randn(p._u.shape, generator=g), dim=0))
    m.eval()
    eff = p._reshape_weight_to_matrix(m.weight.detach()).double()
    assert abs(float(svdvals(eff)[0]) - 1.0) > 1e-2  # control: an unconverged u gives a wrong σ
    spectral_regularize_({"c": m}, "static", 0.5, power_iterations=0)
    eff = p._reshape_weight_to_matrix(m.weight.detach()).double()
    assert float(svdvals(eff)[0]) == pytest.approx(1.0, abs=1e-6)


def test_dynamic_rewrite_on_layers_keeps_sigma1_and_lifts_spectrum():
    layers = _sn_layers()
    sel = regularizable_layers(layers, "conv")
    states = {}
    before = {k: _torch_matrix(layers[k]) for k in sel}
    spectral_regularize_(sel, "dynamic", states=states)  # first call: reference only
    for k in sel:
        torch.testing.assert_close(_torch_matrix(layers[k]), before[k], atol=1e-6, rtol=0)
    # shrink the tail of every layer by hand (σ_i → σ_i·0.3 for i ≥ 2), keeping σ₁
    with torch.no_grad():
        for k in sel:
            m = layers[k]
            u, s, vh = torch.linalg.svd(_torch_matrix(m), full_matrices=False)
            s2 = s.clone()
            s2[1:] *= 0.3
            mat = (u @ torch.diag(s2) @ vh).float()
            w = m.parametrizations.weight.original
            w.copy_(matrix_to_weight(mat, w, is_transposed(m)))
    spectral_regularize_(sel, "dynamic", states=states)
    for k in sel:
        s_before = svdvals(before[k])
        s_after = svdvals(_torch_matrix(layers[k]))
        torch.testing.assert_close(s_after, s_before, atol=1e-5, rtol=1e-5)  # lifted back to the reference


# ------------------------------------------------------------------ the modules
def test_hinge_and_ns_losses_hand_computed():
    m = SNGAN(data_shape=(2,), latent_dim=2, arch="mlp")
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    # hinge D: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + .5 + 2)/3 + (0 + 1 + 2.5)/3 = 2
    assert float(m.d_loss(real, fake)) == pytest.approx(2.0)
    assert float(m.g_loss(fake)) == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)
    ns = SNGAN(data_shape=(2,), latent_dim=2, arch="mlp", loss="ns")
    sp = torch.nn.functional.softplus
    assert float(ns.g_loss(fake)) == pytest.approx(float(sp(-fake).mean()))


def test_config_errors():
    with pytest.raises(ConfigError):
        SRGAN(sr_mode="median")
    with pytest.raises(ConfigError):
        SNGAN(loss="wasserstein")
    with pytest.raises(ConfigError):
        SNGAN(n_dis=0)
    with pytest.raises(ConfigError, match="sr_start"):
        SRGAN(sr_start=-1)
    m = SRGAN(data_shape=(2,), arch="mlp", latent_dim=2)  # sr_layers=conv on an MLP: nothing to regularize
    with pytest.raises(ConfigError):
        m.ensure_built()


@pytest.mark.parametrize("arch,shape", [("cnn", (3, 8, 8)), ("resnet", (3, 32, 32))])
def test_every_discriminator_layer_is_spectrally_normalised(arch, shape):
    m = SNGAN(data_shape=shape, arch=arch, latent_dim=8, g_channels=16, d_channels=8)
    m.ensure_built()
    weights = [mod for mod in m.discriminator.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert weights and all(hasattr(mod, "parametrizations") for mod in weights)
    x = m.sample(3)
    assert x.shape == (3, *shape) and float(x.abs().max()) <= 1.0


@pytest.mark.parametrize("sr_start,calls", [(0, 6), (5, 4), (6, 2)])
def test_official_cadence_counts_sr_calls(sr_start, calls):
    """n_dis = 2, sr_every = 5, 11 generator steps: SR after each D step of G iterations 0, 5, 10 → 6 calls;
    from G iteration 5 on: 5, 10 → 4 calls; from 6 on: 10 → 2 calls."""
    import pytorch_lightning as pl

    from datamodules import Synthetic2D

    os.environ.setdefault("WANDB_MODE", "disabled")
    pl.seed_everything(0, verbose=False)
    model = SRGAN(latent_dim=2, arch="mlp", hidden=(16, 16), n_dis=2, sr_every=5, sr_layers="all",
                  sr_mode="static", max_gen_steps=11, sr_start=sr_start)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=Synthetic2D(name="grid25", n_samples=4096, val_samples=256, batch_size=64))
    assert model.gen_step == 11
    assert model.sr_calls == calls
    # after training, the last rewrite (G iteration 10) left every regularized layer with the static spectrum,
    # and no D step came after it
    for name, mod in regularizable_layers(model.discriminator, "all").items():
        s = svdvals(_torch_matrix(mod))
        k = len(s) // 2
        torch.testing.assert_close(s[:k], torch.ones(k, dtype=torch.float64), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ DDP
def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = nn.Sequential(spectral_norm(nn.Conv2d(3, 8, 3)), spectral_norm(nn.Conv2d(8, 8, 3)),
                            spectral_norm(nn.ConvTranspose2d(8, 4, 4, 2, 1)))
        if rank == 1:  # simulate ranks drifting apart by round-off before the rewrite
            with torch.no_grad():
                for mod in net:
                    mod.parametrizations.weight.original.add_(1e-4 * torch.randn_like(mod.weight))
        sel = regularizable_layers(net, "conv")
        for mode in ("static", "dynamic", "dynamic"):
            spectral_regularize_(sel, mode, 0.5, states={}, sync=True)
        torch.save({k: v.clone() for k, v in net.state_dict().items()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_hold_identical_weights_after_rewrite():
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    with tempfile.TemporaryDirectory() as d:
        init_file = os.path.join(d, "init")
        mp.spawn(_ddp_worker, args=(2, init_file, d), nprocs=2, join=True)
        a, b = torch.load(os.path.join(d, "rank0.pt")), torch.load(os.path.join(d, "rank1.pt"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-identical weights and power-iteration vectors


# ------------------------------------------------------------------ against the official updater
class _OfficialDynamicSR:
    """The ImageNet repository's ``Updater.SR`` (max-liu-112/SRGANs, ``updater.py``), restated with numpy from
    its description in shared/reference/srgan.md §4: for every SN conv of D, in name order, take the raw weight W
    reshaped to (C_out, −1) and its thin SVD; on the first call record s/max(s) per layer and change nothing; on
    every later call set the record to max(record, s/σ₁) element-wise and write W ← U diag(σ₁·record) Vᵀ back."""

    def __init__(self):
        self.recorded = None

    def __call__(self, weights: dict) -> dict:
        import numpy as np

        out = {}
        first = self.recorded is None
        if first:
            self.recorded = {}
        for name in sorted(weights):
            w = weights[name]
            u, s, vt = np.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
            if first:
                self.recorded[name] = s / s.max()
                out[name] = w
                continue
            top = s.max()
            self.recorded[name] = np.maximum(s / top, self.recorded[name])
            out[name] = (u @ np.diag(top * self.recorded[name]) @ vt).reshape(w.shape)
        return out


def test_dynamic_compensation_equals_the_official_updater_over_many_rounds():
    """Reference: the official update restated in numpy (float64). Twelve rounds of "an optimizer moves the raw
    weights, then SR runs" on two SN convs: the zoo's rewrite of the raw weights equals the official one each
    round (the official code works on W, not W/σ₁; the running maximum and σ₁ are kept the same way)."""
    import numpy as np

    torch.manual_seed(3)
    net = nn.Sequential(spectral_norm(nn.Conv2d(3, 16, 3)), spectral_norm(nn.Conv2d(16, 8, 4, 2, 1))).double()
    sel = regularizable_layers(net, "conv")
    official = _OfficialDynamicSR()
    states: dict = {}
    g = torch.Generator().manual_seed(7)
    for round_ in range(12):
        with torch.no_grad():  # "the optimizer step": a random move of every raw weight
            for m in sel.values():
                w = m.parametrizations.weight.original
                w.add_(0.05 * w.abs().mean() * torch.randn(w.shape, generator=g, dtype=w.dtype))
        raw = {k: m.parametrizations.weight.original.detach().numpy().copy() for k, m in sel.items()}
        want = official(raw)
        spectral_regularize_(sel, "dynamic", states=states, sync=False)
        for k, m in sel.items():
            got = m.parametrizations.weight.original.detach().numpy()
            np.testing.assert_allclose(got, want[k], rtol=0, atol=1e-10, err_msg=f"round {round_} layer {k}")
    # not vacuous: the rewrite did lift the spectrum away from the moved weights'
    assert any(np.abs(official.recorded[k] - np.linalg.svd(raw[k].reshape(raw[k].shape[0], -1),
                                                           compute_uv=False) / np.linalg.svd(
        raw[k].reshape(raw[k].shape[0], -1), compute_uv=False).max()).max() > 1e-3 for k in raw)

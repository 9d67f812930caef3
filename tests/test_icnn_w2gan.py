"""ICNNW2GAN: envelope-theorem generator step, convexity during training, composite sampler, CLI, digits.

References: a hand-computed Gaussian case (∂/∂μ ½W2²(N(μ, I), N(m, I)) = μ − m), the ICNN convexity
checks, and the composite definition ∇ψ(G(z)) recomputed independently by autograd.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import ConfigError
from zoo.icnn_w2gan import ICNNW2GAN

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]



def _run_steps(model, real_fn, n_batches):
    opts = model.configure_optimizers()
    model.optimizers = lambda: opts
    model.manual_backward = lambda loss: loss.backward()
    logs = {}
    for _ in range(n_batches):
        logs = model.train_batch(real_fn())
    return logs


def test_registered_and_lazy_name():
    import zoo.icnn_w2gan  # noqa: F401  (registers)

    assert zoo.ICNNW2GAN is ICNNW2GAN
    assert zoo.resolve_model("icnn_w2") is ICNNW2GAN


def test_generator_gradient_is_envelope_gradient():
    """G(z) = μ + z, data N(m, I), ψ the exact Brenier potential ½|x|² + (m − μ)ᵀx: the generator loss
    ½E|G − sg(∇ψ(G))|² has gradient μ − m = ∂/∂μ ½W2²(N(μ, I), N(m, I)) (hand-computed)."""
    torch.manual_seed(0)
    model = ICNNW2GAN(latent_dim=2, hidden=[], icnn_hidden=[], pretrain_steps=0, strong_convexity=0.0,
                      data_shape=(2,))
    model.ensure_built()
    mu, m = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 1.0])
    with torch.no_grad():
        lin = model.generator[0]
        lin.weight.copy_(torch.eye(2))
        lin.bias.copy_(mu)
        model.psi.L.copy_(torch.eye(2))
        model.psi.linear_out.weight.copy_((m - mu)[None])
    model.data_scale.fill_(1.0)
    opt_g = torch.optim.SGD(model.generator.parameters(), lr=0.0)
    model.optimizers = lambda: [opt_g]
    model.manual_backward = lambda loss: loss.backward()
    model.generator_step(torch.zeros(4096, 2))
    assert torch.allclose(model.generator[0].bias.grad, mu - m, atol=1e-5)


@pytest.mark.parametrize("solver", ["w2gn", "minimax", "restricted"])
def test_training_keeps_potentials_convex_and_estimates_w2(solver):
    torch.manual_seed(0)
    model = ICNNW2GAN(latent_dim=2, hidden=[32, 32], icnn_hidden=[16, 16], solver=solver, n_dis=2,
                      pretrain_steps=50, data_shape=(2,), lr_d=1e-2)
    model.ensure_built()
    real_fn = lambda: torch.randn(128, 2) * 0.5 + torch.tensor([3.0, 0.0])
    logs = _run_steps(model, real_fn, 12)
    assert model.gen_step == 6
    assert torch.isfinite(logs["w2/estimate"]) and float(logs["w2/estimate"]) > 0
    for net in (model.psi, model.psi_bar):
        if net is None:
            continue
        assert net.is_convex_parametrisation()
        # second differences along random segments (float64)
        net.double()
        a, b = 3 * torch.randn(32, 2, dtype=torch.float64), 3 * torch.randn(32, 2, dtype=torch.float64)
        t = torch.linspace(0, 1, 21, dtype=torch.float64)
        with torch.no_grad():
            v = net((a[:, None] + t[None, :, None] * (b - a)[:, None]).reshape(-1, 2)).reshape(32, 21)
        assert float((v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]).min()) >= -1e-9
        net.float()
    # every trainable tensor of the module is trained (no frozen copy is left with requires_grad=True)
    assert all(p.requires_grad for p in model.parameters())


def test_composite_sample_is_grad_psi_of_generator():
    torch.manual_seed(0)
    model = ICNNW2GAN(latent_dim=2, hidden=[16], icnn_hidden=[16], pretrain_steps=0, data_shape=(2,))
    model.ensure_built()
    model.data_scale.fill_(2.0)
    torch.manual_seed(5)
    plain = model.sample(64, composite=False)
    torch.manual_seed(5)
    comp = model.sample(64, composite=True)
    x = plain.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.psi(x / 2.0).sum(), x)  # ∇_x ψ_c(x/s) = ∇ψ_c(x/s)/s
    assert torch.allclose(comp, 2.0 * 2.0 * g, atol=1e-5)
    assert not torch.allclose(comp, plain)


def test_flattened_digits_shapes():
    torch.manual_seed(0)
    model = ICNNW2GAN(latent_dim=8, hidden=[32], icnn_hidden=[32, 16], pretrain_steps=5, data_shape=(1, 8, 8),
                      n_dis=1)
    model.ensure_built()
    logs = _run_steps(model, lambda: torch.rand(16, 1, 8, 8) * 2 - 1, 2)
    assert torch.isfinite(logs["loss/g"])
    s = model.sample(10, composite=True)
    assert s.shape == (10, 1, 8, 8) and float(s.abs().max()) <= 1.0


def test_bad_config():
    with pytest.raises(ConfigError):
        ICNNW2GAN(solver="sinkhorn")
    with pytest.raises(ConfigError):
        ICNNW2GAN(n_dis=0)


def test_cli_fit_writes_results(tmp_path):
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "train.py", "fit", "--config", "configs/icnn_w2gan/ring8.yaml",
           "--model.max_gen_steps", "3", "--model.n_dis", "1", "--model.pretrain_steps", "5",
           "--model.composite_sample", "true", "--run_name", "t", "--trainer.default_root_dir", str(tmp_path),
           "--mode_coverage.n_samples", "200"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "t" / "results.json").read_text())
    assert "eval/modes" in json.dumps(res)

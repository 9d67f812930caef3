"""WGAN-GP (zoo.wgan_gp) against independent references: hand-computed penalties of linear critics, brute-force
assignments, the 1-D closed-form congested cost, the 2-D grid solver, and a short train.py run."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.wgan_gp import (WGANGP, critic_objective, gradient_penalty, interpolates,
                         ot_pairing, train_critic)

ROOT = Path(__file__).resolve().parents[1]


def _linear(w, b=0.0):
    lin = nn.Linear(len(w), 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w], dtype=torch.float32))
        lin.bias.fill_(b)
    return nn.Sequential(lin, nn.Flatten(0))


# ---------------------------------------------------------------------------- the loss pieces
@pytest.mark.parametrize("w, two, one", [((0.3, 0.4), 0.25, 0.0), ((3.0, 4.0), 16.0, 16.0)])
def test_penalty_of_linear_critic(w, two, one):
    # |grad f| = |w| = 0.5 or 5: (|w| - 1)^2 = 0.25 / 16, one-sided (|w| - 1)_+^2 = 0 / 16
    f = _linear(w)
    x = torch.randn(64, 2)
    p2, norm = gradient_penalty(f, x, one_sided=False)
    p1, _ = gradient_penalty(f, x, one_sided=True)
    assert torch.allclose(norm, torch.full((64,), math.hypot(*w)), atol=1e-6)
    assert p2.item() == pytest.approx(two, rel=1e-6)
    assert p1.item() == pytest.approx(one, abs=1e-7)


def test_penalty_is_differentiable_in_the_critic_weights():
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|, for w = (3, 4): 2 * 4 * (0.6, 0.8) = (4.8, 6.4)
    f = _linear((3.0, 4.0))
    pen, _ = gradient_penalty(f, torch.randn(16, 2))
    pen.backward()
    assert torch.allclose(f[0].weight.grad, torch.tensor([[4.8, 6.4]]), atol=1e-5)


def test_ot_pairing_is_an_optimal_assignment():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    perm = ot_pairing(real, fake)
    cost = ((real[perm] - fake) ** 2).sum().item()
    brute = min(((real[list(p)] - fake) ** 2).sum().item() for p in itertools.permutations(range(7)))
    assert sorted(perm.tolist()) == list(range(7))
    assert cost == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("pairing", ["independent", "ot"])
def test_interpolates_lie_on_the_paired_segments(pairing):
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(32, 2, generator=g), torch.randn(32, 2, generator=g) + 5
    x = interpolates(real, fake, pairing)
    partner = real[ot_pairing(real, fake)] if pairing == "ot" else real
    d, e = partner - fake, x - fake
    t = (e * d).sum(1) / (d * d).sum(1)
    assert torch.all((t >= 0) & (t <= 1))
    assert torch.allclose(e, t[:, None] * d, atol=1e-5)


@pytest.mark.parametrize("kw, msg", [({"critic_norm": "batch"}, "batch norm"), ({"penalty": "both"}, "penalty"),
                                     ({"pairing": "sinkhorn"}, "pairing"), ({"lam": 0.0}, "lam"),
                                     ({"n_critic": 0}, "n_critic")])
def test_bad_configs_fail_early(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        WGANGP(**kw)


def test_critic_step_matches_a_hand_written_step():
    # one discriminator_step of the module == Adam on E f(fake) - E f(real) + lam E (|grad f(x_hat)| - 1)^2
    torch.manual_seed(0)
    m = WGANGP(hidden=(16, 16), lam=10.0, n_critic=5, data_shape=(2,))
    m.ensure_built()
    ref = [p.detach().clone() for p in m.critic.parameters()]
    opt_g, opt_d = m.configure_optimizers()
    m.optimizers = lambda: (opt_g, opt_d)
    m.manual_backward = lambda loss: loss.backward()
    real = torch.randn(32, 2)
    torch.manual_seed(5)
    m.discriminator_step(real)
    # hand-written: same RNG stream (fake z, then eps)
    torch.manual_seed(5)
    with torch.no_grad():
        fake = m.generator(torch.randn(32, 2)).reshape(32, 2)
    eps = torch.rand(32, 1)
    xh = (eps * real + (1 - eps) * fake).requires_grad_(True)
    params = [p.clone().requires_grad_(True) for p in ref]

    def f(x):
        h = x
        lin = [params[i:i + 2] for i in range(0, len(params), 2)]
        for j, (w, b) in enumerate(lin):
            h = h @ w.T + b
            if j < len(lin) - 1:
                h = torch.relu(h)
        return h[:, 0]

    (gx,) = torch.autograd.grad(f(xh).sum(), xh, create_graph=True)
    loss = f(fake).mean() - f(real).mean() + 10.0 * ((gx.norm(dim=1) - 1) ** 2).mean()
    grads = torch.autograd.grad(loss, params)
    # first Adam step with beta1 = 0: p - lr * g / (|g| + eps) elementwise
    for p_new, p0, gr in zip(m.critic.parameters(), ref, grads):
        expect = p0 - 1e-4 * gr / (gr.abs() + 1e-8)
        assert torch.allclose(p_new.detach(), expect, atol=1e-7)


def test_congestion_report_of_a_linear_critic():
    # f(x) = w.x with |w| = 2: V/sigma = 2 lam (2 - 1) w/|w|, cost = lam E[(|w|^2 - 1)] = 3 lam on samples and on
    # the grid (sum h^2 (2 lam sigma + lam sigma) = 3 lam), objective = w.(E real - E fake) - lam (2 - 1)^2.
    torch.manual_seed(0)
    m = WGANGP(hidden=(8,), lam=0.5, data_shape=(2,))
    m.ensure_built()
    w = (1.2, 1.6)
    m.critic = _linear(w)
    real = torch.rand(5000, 2) + torch.tensor([3.0, 0.0])
    rep = m.congestion_report(n=5000, real=real, grid=32, n_w1=300)
    torch.manual_seed(0)  # the report draws its fake samples under seed 0
    fake = m.sample(5000)
    gap = float((torch.tensor(w) * (real.mean(0) - fake.mean(0))).sum())
    assert rep.cost_samples == pytest.approx(1.5, rel=1e-5)
    assert rep.cost == pytest.approx(1.5, rel=1e-5)
    assert rep.objective == pytest.approx(gap - 0.5, rel=1e-4)
    assert np.allclose(rep.point_velocity, np.array(w) / 2.0 * 2 * 0.5, atol=1e-5)
    assert rep.sigma.shape == (32, 32) and rep.flow.shape == (2, 32, 32)
    assert (rep.sigma.sum() * np.diff(rep.edges[0])[0] ** 2) == pytest.approx(1.0, rel=1e-6)


# ---------------------------------------------------------------------------- the congested-transport checks
def _mu_1d(n, g):
    return torch.rand(n, 1, generator=g)


def _nu_1d(n, g):
    return 2.0 + torch.rand(n, 1, generator=g)


def _closed_form_1d(lam):
    """mu = U[0,1], nu = U[2,3]: V = F_mu - F_nu; sigma from a histogram of 4M independent interpolates (numpy,
    not the zoo's code); cost = int V + V^2 / (4 lam sigma); slope = 1 + V / (2 lam sigma)."""
    rng = np.random.default_rng(0)
    n = 4_000_000
    t = rng.uniform(size=n)
    xi = t * (2 + rng.uniform(size=n)) + (1 - t) * rng.uniform(size=n)
    edges = np.linspace(0, 3, 61)
    sig = np.histogram(xi, edges)[0] / (n * 0.05)
    c = 0.5 * (edges[1:] + edges[:-1])
    v = np.clip(c, 0, 1) - np.clip(c - 2, 0, 1)
    return c, float(((v + v**2 / (4 * lam * sig)) * 0.05).sum()), 1 + v / (2 * lam * sig)


@pytest.mark.parametrize("lam, steps, tol_obj, tol_slope", [(10.0, 400, 0.01, 0.03), (0.1, 600, 0.03, 0.08)])
def test_1d_critic_computes_the_congested_cost(lam, steps, tol_obj, tol_slope):
    # reduced version of experiments/wgan_gp_congestion.py (3x64 ReLU, batch 256, lr 2e-3 -> 1e-4 cosine)
    torch.set_num_threads(1)
    f = train_critic(_mu_1d, _nu_1d, lam, steps, dim=1, hidden=(64, 64, 64), batch_size=256, lr=2e-3,
                     lr_decay_to=1e-4, seed=0)
    c, cost, slope = _closed_form_1d(lam)
    obj = critic_objective(f, _mu_1d, _nu_1d, lam, n=200_000, n_pen=100_000)["objective"]
    assert obj == pytest.approx(cost, rel=tol_obj)
    assert abs(obj - 2.0) > 0.04  # ... and not W1 = 2 (at lam = 10 the two differ by 5 %)
    x = torch.tensor(c, dtype=torch.float32)[:, None].requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    err = np.abs(g[:, 0].abs().numpy() - slope) / slope
    inner = (c > 0.2) & (c < 2.8)
    assert np.median(err[inner]) < tol_slope


def test_2d_critic_matches_the_grid_solver():
    # reduced 2-D check: mu = U([-.5,.5]^2), nu = two squares, lam = 0.1; solver on a 48x48 grid.
    from zoo.ot.congested import cell_density, node_masses, solve_congested

    torch.set_num_threads(1)

    def mu(n, g):
        return torch.rand(n, 2, generator=g) - 0.5

    def nu(n, g):
        x = torch.rand(n, 2, generator=g)
        up = (torch.rand(n, generator=g) < 0.5).float()
        return torch.stack([1.5 + x[:, 0], x[:, 1] + 0.5 - 2.0 * up], 1)

    f = train_critic(mu, nu, 0.1, 700, dim=2, hidden=(64, 64, 64), batch_size=256, lr=2e-3, lr_decay_to=1e-4)
    obj = critic_objective(f, mu, nu, 0.1, n=200_000, n_pen=100_000)["objective"]
    g = torch.Generator().manual_seed(3)
    m, n, lo, hi = 1_000_000, 48, -2.0, 3.0
    a, b = mu(m, g).double().numpy(), nu(m, g).double().numpy()
    t = torch.rand(m, 1, generator=g).double().numpy()
    xi = t * nu(m, g).double().numpy() + (1 - t) * mu(m, g).double().numpy()
    h = (hi - lo) / (n - 1)
    sig = cell_density(xi, lo, hi, n)
    value, flow = solve_congested(node_masses(a, lo, hi, n), node_masses(b, lo, hi, n), sig, 0.1, h)
    assert obj == pytest.approx(value, rel=0.08)
    cc = lo + h * (np.arange(n - 1) + 0.5)
    X, Y = np.meshgrid(cc, cc, indexing="ij")
    x = torch.tensor(np.stack([X.ravel(), Y.ravel()], 1), dtype=torch.float32).requires_grad_(True)
    (gr,) = torch.autograd.grad(f(x).sum(), x)
    gr = gr.double().numpy().T.reshape(2, n - 1, n - 1)
    fn = np.sqrt((flow**2).sum(0))
    keep = (sig > 0.1 * sig.max()) & (fn > 0)
    cos = (gr * flow).sum(0)[keep] / (np.sqrt((gr**2).sum(0))[keep] * fn[keep])
    assert np.median(cos) > 0.95


# ---------------------------------------------------------------------------- the module in train.py
def test_train_py_ring8_with_congestion_monitor(tmp_path):
    from zoo.cli import main

    torch.set_num_threads(1)
    main(["fit", "--model", "wgan_gp", "--data", "ring8", "--model.max_gen_steps", "6", "--model.hidden", "[32, 32]",
          "--model.pairing", "ot", "--model.penalty", "one_sided", "--data.n_samples", "4096",
          "--trainer.callbacks+=zoo.wgan_gp.CongestionMonitor", "--trainer.callbacks.every_n_gen_steps=3",
          "--trainer.callbacks.n_samples=1000", "--mode_coverage.n_samples", "500",
          "--trainer.default_root_dir", str(tmp_path), "--run_name", "t", "--trainer.enable_progress_bar", "false",
          "--seed_everything", "0", "--wandb", "false"])
    run = tmp_path / "t"
    res = json.loads((run / "results.json").read_text())
    assert res["status"] == "complete" and res["method"] == "wgan_gp"
    assert res["steps"]["gen_step"] == 6 and res["steps"]["global_step"] == 36  # 5 critic steps + 1 G step
    assert math.isfinite(res["metrics"]["congestion/cost"]) and res["metrics"]["congestion/w1"] > 0
    assert (run / "plots" / "congestion_gen0000003.png").stat().st_size > 1000
    assert (run / "plots" / "congestion_gen0000006.png").exists()


def test_images_use_a_conv_critic_without_batch_norm():
    m = WGANGP(data_shape=(1, 8, 8), latent_dim=16, base_channels=8, critic_norm="layer")
    m.ensure_built()
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.critic.modules())
    assert any(isinstance(x, nn.Conv2d) for x in m.critic.modules())
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    pen, norm = gradient_penalty(m.critic, x)
    assert norm.shape == (4,) and torch.isfinite(pen)

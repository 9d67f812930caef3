"""DualFlowGAN and the kernel / sliced best responses, against independent references.

References: brute-force energy distance / MMD² written here with autograd (first variations, particle
gradients), POT's sliced Wasserstein distance, hand-written gradient descent, and the implicit-Euler optimality
condition x = x_n − τ∇D_n(x).
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from zoo.dual_flow import DualFlowGAN, relaxed_prox_lr
from zoo.errors import ConfigError
from zoo.ot.kernels import (energy_distance, gaussian_mmd2, random_projections, sliced_potential_grad,
                            sliced_w2_squared, witness, witness_grad)

torch.set_num_threads(1)


def _clouds(n=7, m=5, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randn(m, d, generator=g, dtype=torch.float64) + 0.5)


def _ed_brute(x, y, a, b):
    """2ΣΣ a_i b_j |x_i − y_j| − ΣΣ a_i a_k |x_i − x_k| − ΣΣ b_j b_l |y_j − y_l| with explicit loops."""
    def mean_dist(p, wp, q, wq):
        return sum(wp[i] * wq[j] * torch.sqrt(((p[i] - q[j]) ** 2).sum() + 1e-300)
                   for i in range(len(p)) for j in range(len(q)))
    return 2 * mean_dist(x, a, y, b) - mean_dist(x, a, x, a) - mean_dist(y, b, y, b)


def test_energy_distance_matches_brute_force_and_scipy_1d():
    x, y = _clouds()
    a = torch.full((7,), 1 / 7, dtype=torch.float64)
    b = torch.full((5,), 1 / 5, dtype=torch.float64)
    assert torch.allclose(energy_distance(x, y), _ed_brute(x, y, a, b), atol=1e-10)
    from scipy.stats import energy_distance as sp_ed  # scipy: sqrt(2E|X−Y| − E|X−X'| − E|Y−Y'|) in 1-D
    assert abs(float(energy_distance(x[:, :1], y[:, :1])) - sp_ed(x[:, 0].numpy(), y[:, 0].numpy()) ** 2) < 1e-10


@pytest.mark.parametrize("kernel", ["energy", "gaussian"])
def test_witness_is_half_the_first_variation(kernel):
    """d/dε D((1−ε)μ + εδ_q, ν)|_0 = ∫ δD/δμ d(δ_q − μ) = 2 w(q) − 2 ∫ w dμ  (D = ED or MMD²)."""
    x, y = _clouds()
    sigma = 0.7
    q = torch.tensor([[0.3, -1.1], [2.0, 0.4], [-0.5, 0.2]], dtype=torch.float64)
    w_q = witness(q, x, y, kernel, sigma)
    w_mu = witness(x, x, y, kernel, sigma).mean()
    for k in range(len(q)):
        eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
        pts = torch.cat([x, q[k:k + 1]])
        wts = torch.cat([(1 - eps) * torch.full((7,), 1 / 7, dtype=torch.float64), eps.reshape(1)])
        b = torch.full((5,), 1 / 5, dtype=torch.float64)
        dist = _ed_brute(pts, y, wts, b) if kernel == "energy" else _mmd_brute(pts, y, wts, b, sigma)
        (dd,) = torch.autograd.grad(dist, eps)
        assert abs(float(dd) - 2 * float(w_q[k] - w_mu)) < 1e-8


def _mmd_brute(x, y, a, b, sigma):
    k = lambda p, q: torch.exp(-((p[:, None] - q[None]) ** 2).sum(-1) / (2 * sigma**2))  # noqa: E731
    return a @ k(x, x) @ a + b @ k(y, y) @ b - 2 * a @ k(x, y) @ b


@pytest.mark.parametrize("kernel", ["energy", "gaussian"])
def test_witness_gradient_is_the_particle_gradient(kernel):
    """For μ_N = (1/N)Σδ_{x_i}: ∇w(x_i) = (N/2) ∂D/∂x_i (D = ED or MMD², brute force + autograd)."""
    x, y = _clouds()
    sigma = 0.7
    xr = x.clone().requires_grad_(True)
    a = torch.full((7,), 1 / 7, dtype=torch.float64)
    b = torch.full((5,), 1 / 5, dtype=torch.float64)
    dist = _ed_brute(xr, y, a, b) if kernel == "energy" else _mmd_brute(xr, y, a, b, sigma)
    (g,) = torch.autograd.grad(dist, xr)
    assert torch.allclose(witness_grad(x, x, y, kernel, sigma), 7 / 2 * g, atol=1e-9)
    if kernel == "gaussian":
        assert abs(float(gaussian_mmd2(x, y, sigma)) - float(_mmd_brute(x, y, a, b, sigma))) < 1e-12


def test_sliced_best_response_matches_pot():
    """sliced_w2_squared = POT's SW₂² on the same directions; ∇D*(x_i) = (N/2) ∂SW²₂/∂x_i (POT + autograd)."""
    x, y = _clouds(n=9, m=9, seed=3)
    proj = random_projections(16, 2, torch.Generator().manual_seed(0), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    sw2 = ot.sliced_wasserstein_distance(xr, y, projections=proj, p=2) ** 2
    (g,) = torch.autograd.grad(sw2, xr)
    assert abs(float(sw2.detach()) - float(sliced_w2_squared(x, y, proj))) < 1e-10
    assert torch.allclose(sliced_potential_grad(x, x, y, proj), 9 / 2 * g, atol=1e-9)


def _model(**kw):
    torch.manual_seed(0)
    args = dict(data_shape=(2,), hidden=(16, 16), latent_dim=2)
    args.update(kw)
    m = DualFlowGAN(**args)
    m.ensure_built()
    return m


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_proximal_step_tau_infinity_is_the_unregularised_step():
    """τ → ∞: K prox steps = K plain gradient steps of size ι on E_z D(G_θ(z)) (hand-written GD)."""
    for metric in ("w2", "param"):
        m = _model(scheme="implicit", inner_steps=4, inner_lr=0.05, prox_metric=metric)
        z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
        ref = [p.detach().clone().requires_grad_(True) for p in m.generator.parameters()]
        # hand-written GD on the unregularised objective with a functional copy of the generator
        for _ in range(4):
            x = torch.func.functional_call(m.generator, dict(zip([n for n, _ in m.generator.named_parameters()], ref)), (z,))
            loss = m.discriminator(x).mean()
            grads = torch.autograd.grad(loss, ref)
            ref = [(p - 0.05 * g).detach().requires_grad_(True) for p, g in zip(ref, grads)]
        with torch.no_grad():
            fake_n = m.generate(z)
        m.proximal_generator_step(z, fake_n, tau=1e12)
        for p, r in zip(m.generator.parameters(), ref):
            assert torch.allclose(p, r, atol=1e-6), metric
        m2 = _model(scheme="implicit", inner_steps=4, inner_lr=0.05, prox_metric=metric)
        m2.proximal_generator_step(z, fake_n, tau=math.inf)
        for p, r in zip(m2.generator.parameters(), ref):
            assert torch.allclose(p, r, atol=1e-6), metric


def test_proximal_step_tau_zero_leaves_the_generator_unchanged():
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    for metric in ("w2", "param"):
        m = _model(scheme="implicit", inner_steps=5, inner_lr=0.05, prox_metric=metric)
        before = _params(m.generator)
        with torch.no_grad():
            fake_n = m.generate(z)
        m.proximal_generator_step(z, fake_n, tau=1e-9)
        assert max(float((p - q).abs().max()) for p, q in zip(m.generator.parameters(), before)) < 1e-7
        m.proximal_generator_step(z, fake_n, tau=1.0)  # and a finite step does move it
        assert max(float((p - q).abs().max()) for p, q in zip(m.generator.parameters(), before)) > 1e-4
    assert relaxed_prox_lr(0.1, 1e-12) == pytest.approx(1e-12) and relaxed_prox_lr(0.1, math.inf) == 0.1


def _direct_ed_flow(x0, y, tau, steps, lam=1.0):
    """Euler steps of the W2 gradient flow of ED/(2λ) for N particles: x ← x − τ (N/(2λ)) ∂ED/∂x (autograd)."""
    x = x0.clone()
    a = torch.full((len(x),), 1 / len(x), dtype=x.dtype)
    b = torch.full((len(y),), 1 / len(y), dtype=x.dtype)
    traj = [x.clone()]
    for _ in range(steps):
        xr = x.clone().requires_grad_(True)
        d = 2 * a @ torch.cdist(xr, y) @ b - a @ _pdist_safe(xr) @ a  # the |y − y'| term has no x-gradient
        (g,) = torch.autograd.grad(d, xr)
        x = x - tau * len(x) / (2 * lam) * g
        traj.append(x.clone())
    return traj


def _pdist_safe(x):
    return torch.sqrt(((x[:, None] - x[None]) ** 2).sum(-1) + 1e-30)


def test_c3_best_response_matches_direct_energy_flow_small():
    """C3 at small scale: particles + energy best response (r = ∞) = the direct ED particle flow, and a large
    finite r (implicit D step) approaches it, closer for larger r."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(24, 2, generator=g) * 0.3 + torch.tensor([1.0, 0.0])
    tau, steps = 0.05, 20

    def run(**kw):
        m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="particles", n_particles=16, tau=tau, **kw)
        torch.manual_seed(0)
        m.ensure_built()
        x0 = m.generator.points.detach().clone()
        traj = [x0]
        for _ in range(steps):
            m.flow_step(y)
            traj.append(m.generator.points.detach().clone())
        return x0, traj

    x0, traj = run(ratio_r=None)
    ref = _direct_ed_flow(x0.double(), y.double(), tau, steps)
    assert max(float((a.double() - b).abs().max()) for a, b in zip(traj, ref)) < 1e-4
    gaps = []
    for r in (2.0, 20.0, 2000.0):
        _, tr = run(ratio_r=r, scheme="implicit", inner_steps=40, memory=64)
        gaps.append(max(float((a.double() - b).abs().max()) for a, b in zip(tr, ref)))
    assert gaps[0] > gaps[1] > gaps[2]
    # the floor at r → ∞ is the Jacobi scheme's one-step lag of D (O(τ)), not zero
    assert gaps[2] < 0.25 * gaps[0]


def test_implicit_particle_step_solves_the_implicit_euler_equation():
    """Prox step of a particle generator against a fixed D_n: x = x_n − τ∇D_n(x) (optimality condition)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(24, 2, generator=g) + 1.0
    m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="particles", n_particles=16, tau=0.1,
                    ratio_r=None, scheme="implicit", inner_steps=80)
    torch.manual_seed(0)
    m.ensure_built()
    x_n = m.generator.points.detach().clone()
    m.flow_step(y)
    x = m.generator.points.detach()
    resid = x - (x_n - 0.1 * witness_grad(x, x_n, y, "energy"))
    assert float(resid.abs().max()) < 1e-5
    assert float((x - x_n).abs().max()) > 1e-2


def test_explicit_kernel_discriminator_diverges_where_implicit_is_stable():
    """D_{n+1} = (1−κ)D_n + κD*: |coefficients| grow like |1−κ|^n for κ > 2; the implicit step stays at ≤ 1."""
    y = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    coef = {}
    for scheme in ("explicit", "implicit"):
        m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="particles", n_particles=8, tau=0.1,
                        ratio_r=30.0, scheme=scheme, memory=100, inner_steps=1)  # κ = rλτ = 3
        m.ensure_built()
        for _ in range(6):
            logs = m.flow_step(y)
        coef[scheme] = float(logs["flow/d_coef_abs"])
    assert coef["explicit"] == pytest.approx(sum(3 * 2**k for k in range(6)), rel=1e-6)  # Σ κ|1−κ|^k
    assert coef["implicit"] <= 1.0 + 1e-9


def test_config_errors_and_no_snapshot_parameters():
    with pytest.raises(ConfigError):
        DualFlowGAN(discriminator="mlp", ratio_r=None)
    with pytest.raises(ConfigError):
        DualFlowGAN(scheme="implicit", optimizer="adam")
    with pytest.raises(ConfigError):
        DualFlowGAN(tau=0.1, horizon=1.0, max_gen_steps=3)
    assert DualFlowGAN(tau=0.1, horizon=1.0).max_gen_steps == 10
    m = _model(scheme="implicit", inner_steps=2, prox_metric="param")
    names = {n for n, _ in m.named_parameters()}
    m.flow_step(torch.randn(16, 2))
    assert {n for n, _ in m.named_parameters()} == names
    assert all(n.startswith(("generator.", "discriminator.")) for n in names)
    assert m.gen_step == 1


def test_lightning_fit_logs_flow_time(tmp_path):
    import pytorch_lightning as pl

    from datamodules.synthetic import Synthetic2D

    m = DualFlowGAN(discriminator="energy", ratio_r=4.0, scheme="implicit", inner_steps=2, tau=0.02,
                    hidden=(16, 16), max_gen_steps=6)
    dm = Synthetic2D("ring8", n_samples=2048, val_samples=256, batch_size=64)
    trainer = pl.Trainer(max_epochs=-1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                         default_root_dir=str(tmp_path))
    trainer.fit(m, dm)
    assert m.gen_step == 6
    assert float(trainer.callback_metrics["flow/time"]) == pytest.approx(6 * 0.02)
    assert np.isfinite(m.sample(32).numpy()).all()


def test_pushforward_curvature_is_the_top_eigenvalue_of_mean_jtj():
    """λ_max(E_z J_zᵀJ_z) by power iteration = brute force: full Jacobian + torch.linalg.eigvalsh."""
    m = _model(hidden=(6,), scheme="implicit")
    z = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    names = [n for n, _ in m.generator.named_parameters()]
    params = tuple(p.detach() for p in m.generator.parameters())
    f = lambda *ps: torch.func.functional_call(m.generator, dict(zip(names, ps)), (z,)).reshape(-1)  # noqa: E731
    jac = torch.autograd.functional.jacobian(f, params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], 1).double()  # (B·d, P)
    top = float(torch.linalg.eigvalsh(J.T @ J / z.shape[0])[-1])
    assert m.pushforward_curvature(z, iters=300) == pytest.approx(top, rel=1e-3)

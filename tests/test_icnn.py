"""ICNN: exact convexity after training steps, gradients, batched conjugate, identity pre-training.

References are independent of the code under test: closed-form quadratics, scipy's per-sample optimiser,
second differences along random segments and Hessian–vector products by autograd.
"""

import numpy as np
import pytest
import scipy.optimize
import torch

from zoo.errors import ConfigError
from zoo.ot import ICNN
from zoo.ot.icnn import conjugate_argmax, potential_grad, pretrain_identity

torch.set_num_threads(1)


def _second_differences(psi, d, n_seg=64, n_pts=33, seed=0):
    """min over random segments [a, b] of ψ(t−h) − 2ψ(t) + ψ(t+h) (≥ 0 for convex ψ), and the scale of ψ."""
    g = torch.Generator().manual_seed(seed)
    a = 3 * torch.randn(n_seg, d, generator=g, dtype=torch.float64)
    b = 3 * torch.randn(n_seg, d, generator=g, dtype=torch.float64)
    t = torch.linspace(0, 1, n_pts, dtype=torch.float64)
    pts = a[:, None] + t[None, :, None] * (b - a)[:, None]
    with torch.no_grad():
        v = psi.double()(pts.reshape(-1, d)).reshape(n_seg, n_pts)
    psi.float()
    dd = v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]
    return float(dd.min()), float(v.abs().max())


def _min_vHv(psi, d, n=256, seed=1):
    """min over random (x, v) of vᵀ∇²ψ(x)v / |v|² by double autograd (float64)."""
    g = torch.Generator().manual_seed(seed)
    psi = psi.double()
    x = (3 * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_(True)
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    (gr,) = torch.autograd.grad(psi(x).sum(), x, create_graph=True)
    (hv,) = torch.autograd.grad((gr * v).sum(), x)
    psi.float()
    return float(((hv * v).sum(-1) / v.pow(2).sum(-1)).min())


def _adversarial_training(psi, d, steps=200, seed=0):
    """Adam steps on a loss whose unconstrained optimum makes ψ concave (maximise curvature of −ψ)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(psi.parameters(), lr=5e-2)
    for _ in range(steps):
        x = 2 * torch.randn(256, d)
        # E ψ(x) − 2 E ψ(0.5 x + 0.5 x') pushes towards midpoint-concavity
        xp = 2 * torch.randn(256, d)
        loss = psi(x).mean() + psi(xp).mean() - 4 * psi(0.5 * (x + xp)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        psi.convexify()


@pytest.mark.parametrize("positivity", ["clamp", "softplus"])
@pytest.mark.parametrize("activation", ["celu", "softplus", "leaky_relu"])
def test_convex_after_adversarial_training(positivity, activation):
    d = 3
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[16, 16, 8], activation=activation, positivity=positivity, quadratic_head=False,
               strong_convexity=0.0)
    _adversarial_training(psi, d)
    assert psi.is_convex_parametrisation()
    dd_min, scale = _second_differences(psi, d)
    assert dd_min >= -1e-9 * max(scale, 1.0)
    assert _min_vHv(psi, d) >= -1e-9


def test_checks_detect_a_nonconvex_network():
    """Negative control: with a negative z-path weight, the same checks find concavity."""
    d = 3
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[16, 16], activation="softplus", quadratic_head=False, strong_convexity=0.0,
               positivity="clamp")
    with torch.no_grad():
        psi.w_out.fill_(-1.0)
    assert not psi.is_convex_parametrisation()
    dd_min, _ = _second_differences(psi, d)
    assert dd_min < -1e-6
    assert _min_vHv(psi, d) < -1e-6


def test_strong_convexity_lower_bound():
    d = 4
    alpha = 0.3
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[16, 8], strong_convexity=alpha, quadratic_head=False)
    _adversarial_training(psi, d, steps=50)
    assert _min_vHv(psi, d) >= alpha - 1e-8


def test_quadratic_only_icnn_gradient_and_conjugate_closed_form():
    """hidden=(): ψ(x) = ½|Lᵀx|² + ½α|x|² + aᵀx + c, ∇ψ = (LLᵀ + αI)x + a, x̂(y) = (LLᵀ + αI)⁻¹(y − a)."""
    d, alpha = 5, 0.1
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[], strong_convexity=alpha)
    with torch.no_grad():
        psi.L.copy_(torch.randn(d, d))
        psi.linear_out.weight.copy_(torch.randn(1, d))
    psi.double()
    M = (psi.L @ psi.L.T + alpha * torch.eye(d, dtype=torch.float64)).detach()
    a = psi.linear_out.weight.detach()[0]
    x = torch.randn(100, d, dtype=torch.float64)
    assert torch.allclose(potential_grad(psi, x), x @ M + a, atol=1e-10)
    y = torch.randn(100, d, dtype=torch.float64)
    xh = conjugate_argmax(psi, y, tol=1e-10, max_iter=200)
    assert torch.allclose(xh, torch.linalg.solve(M, (y - a).T).T, atol=1e-6)


def test_batched_conjugate_matches_per_sample_scipy():
    """The vectorised L-BFGS conjugate equals scipy's per-sample minimisation of ψ(x) − ⟨x, y⟩."""
    d = 3
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[16, 16], strong_convexity=0.5, quadratic_head=False).double()
    with torch.no_grad():
        psi.x_layers[0].weight.mul_(10)
    y = torch.randn(12, d, dtype=torch.float64)
    xh = conjugate_argmax(psi, y, tol=1e-9, max_iter=500)

    for i in range(y.shape[0]):
        yi = y[i]

        def f(z):
            zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
            val = psi(zt[None])[0] - zt @ yi
            (gz,) = torch.autograd.grad(val, zt)
            return float(val), gz.numpy()

        res = scipy.optimize.minimize(f, np.zeros(d), jac=True, method="BFGS", options={"gtol": 1e-10})
        assert np.allclose(xh[i].numpy(), res.x, atol=1e-5)
    # Fenchel–Young: ∇ψ(x̂(y)) = y
    assert torch.allclose(potential_grad(psi, xh), y, atol=1e-6)


def test_identity_pretraining():
    d = 4
    torch.manual_seed(0)
    psi = ICNN(d, hidden=[32, 32], quadratic_head=False, strong_convexity=0.0)
    x = 3 * torch.randn(2048, d)
    before = float((potential_grad(psi, x) - x).pow(2).sum(-1).mean() / x.pow(2).sum(-1).mean())
    rel = pretrain_identity(psi, std=3.0, steps=3000, lr=3e-3, tol=1e-2)
    after = float((potential_grad(psi, x) - x).pow(2).sum(-1).mean() / x.pow(2).sum(-1).mean())
    assert before > 0.5 and rel < 1e-2 and after < 2e-2
    assert psi.is_convex_parametrisation()


def test_bad_config():
    with pytest.raises(ConfigError):
        ICNN(2, activation="tanh")
    with pytest.raises(ConfigError):
        ICNN(2, positivity="penalty")

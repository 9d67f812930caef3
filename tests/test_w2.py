"""W2 numerics: Bures closed form and Gaussian map against POT, cost conventions, fit_w2 on Gaussians (d = 2).

Independent references: POT's ``ot.gaussian`` (Bures distance and mapping), 1-D / commuting closed forms,
POT's exact ``ot.emd2`` on samples, and the Gaussian pushforward identity A S1 A = S2.
"""

import numpy as np
import ot
import pytest
import torch

from zoo.errors import ConfigError
from zoo.ot import bures_w2, fit_w2, gaussian_map
from zoo.ot.icnn import QuadraticPotential
from zoo.ot.w2 import dual_w2, half_cost_to_w2, l2_uvp, w2_to_half_cost, cosine_similarity

torch.set_num_threads(1)


def _rand_gauss(d, rng):
    m = rng.normal(size=d)
    B = rng.normal(size=(d, d)) / np.sqrt(d)
    return m, B @ B.T + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_bures_matches_pot(d):
    rng = np.random.default_rng(d)
    m1, S1 = _rand_gauss(d, rng)
    m2, S2 = _rand_gauss(d, rng)
    ref = float(ot.gaussian.bures_wasserstein_distance(m1, m2, S1, S2)) ** 2
    assert bures_w2(m1, S1, m2, S2) == pytest.approx(ref, rel=1e-8)


def test_bures_closed_forms():
    # 1-D: (m1 − m2)² + (σ1 − σ2)²
    assert bures_w2([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-12)
    # commuting (diagonal) covariances: |m1 − m2|² + Σ (√a − √b)²
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    assert bures_w2(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == pytest.approx(
        3.0 + float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()), rel=1e-12)


def test_gaussian_map_matches_pot_and_pushes_forward():
    rng = np.random.default_rng(0)
    d = 6
    m1, S1 = _rand_gauss(d, rng)
    m2, S2 = _rand_gauss(d, rng)
    T = gaussian_map(m1, S1, m2, S2)
    A_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(m1, m2, S1, S2)
    assert np.allclose(T.A.numpy(), A_pot, atol=1e-8) and np.allclose(T.b.numpy(), b_pot, atol=1e-8)
    A = T.A.numpy()
    assert np.allclose(A, A.T) and np.linalg.eigvalsh(A).min() > 0  # gradient of a convex quadratic
    assert np.allclose(A @ S1 @ A, S2, atol=1e-8)  # T♯N(m1, S1) = N(m2, S2)
    assert np.allclose(A @ m1 + T.b.numpy(), m2)
    # its transport cost E|X − T X|² = |m1 − m2|² + tr((I − A) S1 (I − A)) equals W2²
    I = np.eye(d)
    cost = float(((m1 - m2) ** 2).sum() + np.trace((I - A) @ S1 @ (I - A)))
    assert cost == pytest.approx(bures_w2(m1, S1, m2, S2), rel=1e-8)
    y = torch.randn(10, d, dtype=torch.float64)
    assert torch.allclose(T(T.inverse(y)), y)


def test_cost_conventions_against_pot_emd():
    """W2² uses |x − y|²; the papers' value uses ½|x − y|². Check both against POT's exact OT on samples."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 1.5
    a = np.full(60, 1 / 60)
    w2 = ot.emd2(a, a, ot.dist(x, y, metric="sqeuclidean"))
    half = ot.emd2(a, a, 0.5 * ot.dist(x, y, metric="sqeuclidean"))
    assert half_cost_to_w2(half) == pytest.approx(w2, rel=1e-10)
    assert w2_to_half_cost(w2) == pytest.approx(half, rel=1e-10)


def test_dual_w2_with_exact_brenier_potential_is_bures():
    """dual_w2 (cost |x − y|², conjugate by L-BFGS) with ψ(x) = ½xᵀAx + bᵀx, the Gaussians' Brenier potential,
    returns the Bures value, not half of it; a wrong potential gives a smaller value (lower bound)."""
    rng = np.random.default_rng(2)
    d = 3
    m1, S1 = _rand_gauss(d, rng)
    m2, S2 = _rand_gauss(d, rng)
    T = gaussian_map(m1, S1, m2, S2)
    psi = QuadraticPotential(d, strong_convexity=0.0).double()
    with torch.no_grad():
        psi.L.copy_(torch.linalg.cholesky(T.A))
        psi.b.copy_(T.b)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    L1, L2 = torch.linalg.cholesky(torch.as_tensor(S1)), torch.linalg.cholesky(torch.as_tensor(S2))
    x = torch.as_tensor(m1) + torch.randn(n, d, generator=g, dtype=torch.float64) @ L1.T
    y = torch.as_tensor(m2) + torch.randn(n, d, generator=g, dtype=torch.float64) @ L2.T
    ref = bures_w2(m1, S1, m2, S2)
    assert dual_w2(psi, x, y) == pytest.approx(ref, rel=0.02)
    with torch.no_grad():
        psi.L.mul_(1.3)
    assert dual_w2(psi, x, y) < ref * 0.98


def test_metrics_hand_computed():
    x = torch.zeros(4, 2)
    T_star = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
    assert l2_uvp(T_star, T_star, 1.0) == 0.0
    assert l2_uvp(torch.zeros(4, 2), T_star, 1.0) == pytest.approx(100.0)  # constant map at the mean
    assert cosine_similarity(x, 2 * T_star, T_star) == pytest.approx(1.0)
    assert cosine_similarity(x, -T_star, T_star) == pytest.approx(-1.0)


def _gauss_pair(d, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        m = torch.randn(d, generator=g, dtype=torch.float64)
        B = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        out.append((m, B @ B.T + 0.1 * torch.eye(d, dtype=torch.float64)))
    return out


def _sampler(m, S):
    L = torch.linalg.cholesky(S).float()
    return lambda n: m.float() + torch.randn(n, len(m)) @ L.T


@pytest.mark.parametrize("method,kw", [
    ("w2gn", dict(steps=400)),
    ("minimax", dict(steps=200, inner_steps=5)),
    ("restricted", dict(steps=200)),
    ("restricted", dict(steps=300, potential="quadratic")),
])
def test_fit_w2_gaussian_d2(method, kw):
    """W2² within 2 % of Bures and L2-UVP ≤ 1 % against the closed-form map (d = 2)."""
    d = 2
    (m1, S1), (m2, S2) = _gauss_pair(d, seed=3)
    fit = fit_w2(_sampler(m1, S1), _sampler(m2, S2), method=method, batch_size=256, hidden=[32, 32],
                 n_eval=65536, seed=0, **kw)
    ref = bures_w2(m1, S1, m2, S2)
    assert fit.w2_squared == pytest.approx(ref, rel=0.02)
    assert fit.w2_squared_half == pytest.approx(ref / 2, rel=0.02)
    T = gaussian_map(m1, S1, m2, S2)
    torch.manual_seed(123)
    x = _sampler(m1, S1)(8192)
    assert l2_uvp(fit.forward(x), T(x), float(torch.trace(S2))) <= 1.0
    y = _sampler(m2, S2)(4096)
    assert l2_uvp(fit.inverse(y), T.inverse(y.double()).float(), float(torch.trace(S1))) <= 2.0


def test_fit_w2_rejects_bad_config():
    s = lambda n: torch.randn(n, 2)
    with pytest.raises(ConfigError):
        fit_w2(s, s, method="sinkhorn")
    with pytest.raises(ConfigError):
        fit_w2(s, s, method="w2gn", potential="quadratic")

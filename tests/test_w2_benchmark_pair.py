"""The W2B-style constructed pair of experiments/w2_benchmark.py (``W2BPair``), checked independently.

ψ*(x) = a(ψ₁(x) + ψ₂(x)) + ⟨b, x⟩ with ψᵢ ICNNs of strong convexity α = 10⁻², T* = ∇ψ*, Q = T*♯P. Checks:
(i) 2aα-strong convexity of ψ* along random segments (three-point inequality, float64);
(ii) T* against central finite differences of ψ*;
(iii) the standardisation's closed form: mean 0 and E|Y|² = d exactly on the standardisation sample, a > 0;
(iv) Brenier / cyclical monotonicity: POT's exact discrete OT (cost |x − y|²) between {xᵢ} and {T*(xᵢ)} costs
     exactly (1/n)Σ|xᵢ − T*(xᵢ)|², while a non-monotone control map is beaten by a re-pairing;
(v) bit-identical rebuild from the seed.
A tiny construction (d = 3, small ICNNs, 20 fitting steps) keeps this to a few seconds; the fit's accuracy is
irrelevant to every property checked.
"""

import sys
from pathlib import Path

import numpy as np
import ot
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from w2_benchmark import W2BPair  # noqa: E402

torch.set_num_threads(1)
D = 3
KW = dict(mix10_spread=10.0, fit_steps=20, hidden=[16, 16, 8], n_std=20_000, cache_dir=None)


@pytest.fixture(scope="module")
def pair():
    return W2BPair(D, seed=0, **KW)


def test_psi_strongly_convex_along_segments(pair):
    P = pair.double()
    assert P.a > 0
    assert all(p.inner.is_convex_parametrisation() if hasattr(p, "inner") else p.is_convex_parametrisation()
               for p in P.psis)
    g = torch.Generator().manual_seed(1)
    x = P.source(256, g).double()
    y = x + 3.0 * torch.randn(256, D, generator=g, dtype=torch.float64)
    mu = 2 * P.a * 1e-2  # strong-convexity modulus of ψ*
    for lam in (0.1, 0.3, 0.5, 0.8):
        z = lam * x + (1 - lam) * y
        gap = lam * P.psi(x) + (1 - lam) * P.psi(y) - P.psi(z)
        bound = 0.5 * mu * lam * (1 - lam) * (x - y).pow(2).sum(-1)
        assert bool((gap >= bound * (1 - 1e-6) - 1e-9).all()), float((gap - bound).min())
    # monotonicity of the map: ⟨T(x) − T(y), x − y⟩ ≥ μ|x − y|²
    inner = ((P.T(x) - P.T(y)) * (x - y)).sum(-1)
    assert bool((inner >= mu * (x - y).pow(2).sum(-1) * (1 - 1e-6)).all())


def test_map_is_gradient_of_psi(pair):
    P = pair.double()
    g = torch.Generator().manual_seed(2)
    x = P.source(64, g).double()
    h = 1e-5
    fd = torch.stack([(P.psi(x + h * e) - P.psi(x - h * e)) / (2 * h)
                      for e in torch.eye(D, dtype=torch.float64)], dim=-1)
    T = P.T(x)
    assert torch.allclose(T, fd, rtol=1e-6, atol=1e-6 * float(T.abs().max())), float((T - fd).abs().max())


def test_standardisation_closed_form(pair):
    P = pair.double()
    x = P.source(P.n_std, torch.Generator().manual_seed(P.std_seed)).double()
    y = P.T(x)
    # exactly on the standardisation sample (up to the float32 ICNN gradients): mean 0, E|Y|² = d
    assert float(y.mean(0).abs().max()) < 1e-4
    assert float(y.pow(2).sum(-1).mean()) == pytest.approx(D, rel=1e-4)
    # a, b as stated: a = √(d / E|g − m|²), b = −a m with g = ∇ψ₁ + ∇ψ₂
    graw = P.raw_map(x)
    m = graw.mean(0)
    assert P.a == pytest.approx(float(np.sqrt(D / float((graw - m).pow(2).sum(-1).mean()))), rel=1e-6)
    assert torch.allclose(P.b.to(m), -P.a * m, atol=1e-6)
    # fresh samples: the moments hold up to Monte-Carlo error
    yf = P.target(20_000, torch.Generator().manual_seed(5)).double()
    assert float(yf.mean(0).abs().max()) < 0.05
    assert float(yf.pow(2).sum(-1).mean()) == pytest.approx(D, rel=0.05)


def test_identity_pairing_is_discrete_ot(pair):
    """Brenier: (X, ∇ψ*(X)) is an optimal coupling, so on samples the identity pairing solves the discrete OT."""
    P = pair.double()
    g = torch.Generator().manual_seed(3)
    x = P.source(150, g).double()
    n = x.shape[0]
    w = np.full(n, 1.0 / n)

    def ot_cost(y):
        return float(ot.emd2(w, w, torch.cdist(x, y).pow(2).numpy())), float((x - y).pow(2).sum(-1).mean())

    best, paired = ot_cost(P.T(x))
    assert best == pytest.approx(paired, rel=1e-9)
    # control: a non-monotone map (T* followed by a 120° rotation in the first two coordinates) is not optimal
    c, s = np.cos(2.1), np.sin(2.1)
    R = torch.eye(D, dtype=torch.float64)
    R[:2, :2] = torch.tensor([[c, -s], [s, c]])
    best_c, paired_c = ot_cost(P.T(x) @ R.T)
    assert best_c < 0.9 * paired_c


def test_rebuild_is_deterministic(pair):
    x = pair.source(32, torch.Generator().manual_seed(4)).double()
    again = W2BPair(D, seed=0, **KW).double()
    assert torch.equal(again.T(x), pair.double().T(x))
    assert again.a == pair.a and torch.equal(again.b, pair.b)

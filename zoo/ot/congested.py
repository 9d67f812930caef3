"""Congested transport on a 2-D grid: the problem a WGAN-GP critic solves (Milne & Nachman, COLT 2022).

Problem (primal, Beckmann form with congestion; Carlier, Jimenez & Santambrogio 2008)::

    min_V ∫ H(x, V(x)) dx   s.t.  div V = μ − ν,     H(x, v) = |v| + |v|² / (4 λ σ(x)),

with μ the *fake* (source) law, ν the *real* (target) law and σ the density of the gradient-penalty
interpolates. Its dual is the one-sided WGAN-GP critic objective::

    max_u  Σ u (ν − μ) − λ ∫ σ (|∇u| − 1)_+² dx,

because the convex conjugate of v ↦ |v| + |v|²/(4c) is p ↦ c (|p| − 1)_+² (c = λσ). At the optimum the flow is
``V = 2 λ σ (|∇u| − 1)_+ ∇u/|∇u|`` and it points from μ (fake) towards ν (real).

Discretisation (:func:`solve_congested`):

* ``u`` lives on the n×n grid nodes ``(x_i, y_j) = (x0 + i h, y0 + j h)``; arrays are indexed ``[i, j]``
  (first index along x, ``numpy.meshgrid(..., indexing="ij")``).
* ``μ``, ``ν`` are node *masses* (each sums to 1); ``σ`` is a *density* (per unit area) on the (n−1)×(n−1)
  cells, cell ``[i, j]`` being the square with lower-left node ``[i, j]``.
* Edge-difference stencil: on each cell the two x-edges and the two y-edges give four difference quotients
  ``d_e``; the cell norm is ``N = sqrt(mean(d_x²) + mean(d_y²))`` (averaging the two parallel edges of each
  direction) and the cell direction is ``(mean d_x, mean d_y)`` normalised. A cell-averaged central gradient
  would have a checkerboard null space that makes the discrete dual unbounded.
* The dual ``D(u) = Σ_nodes u (ν − μ) − λ Σ_cells σ h² (N − 1)_+²`` is maximised in float64 by a damped
  semi-smooth Newton method (sparse generalised Hessian; L-BFGS, as in the reference notes, needs ~3·10⁴
  iterations and minutes at 96×96 because σ spans four decades). At a stationary point the discrete primal
  ``Σ_cells h² (|V| + |V|²/(4λσ))`` equals the dual exactly, so the duality gap measures convergence.

Pitfalls (see docs/results/wgan_gp): supports must be compact and strictly inside the grid (mass on the
boundary ring is rejected); σ gets a tiny floor (default ``1e-3 / width²``) so that cells without
interpolates are expensive but not forbidden, which keeps the dual bounded and well conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

__all__ = ["solve_congested", "congested_primal", "grid_gradient", "node_masses", "cell_density",
           "two_squares_case", "CongestedSolution"]


@dataclass
class CongestedSolution:
    """Everything :func:`solve_congested` computed (``return_info=True``)."""

    value: float  #: optimal dual value Σ u(ν−μ) − λ Σ σh²(N−1)_+²
    primal: float  #: Σ h² (|V| + |V|²/(4λσ)) for the recovered flow
    u: np.ndarray  #: (n, n) dual potential on the nodes (defined up to a constant)
    flow: np.ndarray  #: (2, n−1, n−1) flow V on the cells (V_x, V_y)
    grad: np.ndarray  #: (2, n−1, n−1) cell gradient of u (edge averages)
    norm: np.ndarray  #: (n−1, n−1) edge-difference cell norm N
    iterations: int
    converged: bool


def grid_gradient(u: np.ndarray, h: float) -> Tuple[np.ndarray, np.ndarray, Tuple[np.ndarray, ...]]:
    """Cell gradient of a node field with the edge-difference stencil.

    Returns ``(g, N, (dxa, dxb, dya, dyb))`` with ``g = (mean(dxa, dxb), mean(dya, dyb))`` of shape
    (2, n−1, n−1), ``N = sqrt((dxa² + dxb² + dya² + dyb²) / 2)`` and the four edge difference quotients
    (``dxa = (u[i+1, j] − u[i, j]) / h``, ``dxb`` the same on row ``j+1``, likewise for y).
    """
    dxa = (u[1:, :-1] - u[:-1, :-1]) / h
    dxb = (u[1:, 1:] - u[:-1, 1:]) / h
    dya = (u[:-1, 1:] - u[:-1, :-1]) / h
    dyb = (u[1:, 1:] - u[1:, :-1]) / h
    norm = np.sqrt(0.5 * (dxa**2 + dxb**2 + dya**2 + dyb**2))
    g = np.stack([0.5 * (dxa + dxb), 0.5 * (dya + dyb)])
    return g, norm, (dxa, dxb, dya, dyb)


def _neg_dual_and_grad(uflat: np.ndarray, rhs: np.ndarray, c: np.ndarray, h: float, n: int):
    """−D(u) and its gradient, with ``rhs = ν − μ`` (flattened) and ``c = λ σ h²`` per cell."""
    u = uflat.reshape(n, n)
    _, norm, (dxa, dxb, dya, dyb) = grid_gradient(u, h)
    r = np.maximum(norm - 1.0, 0.0)
    val = -float(rhs @ uflat) + float((c * r * r).sum())
    # d(r²)/d(d_e) = r d_e / N ; d(d_e)/du = ±1/h
    k = np.where(r > 0, c * r / np.maximum(norm, 1e-300), 0.0) / h
    gu = np.zeros((n, n))
    for d, hi, lo in ((dxa, (slice(1, None), slice(None, -1)), (slice(None, -1), slice(None, -1))),
                      (dxb, (slice(1, None), slice(1, None)), (slice(None, -1), slice(1, None))),
                      (dya, (slice(None, -1), slice(1, None)), (slice(None, -1), slice(None, -1))),
                      (dyb, (slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1)))):
        t = k * d
        gu[hi] += t
        gu[lo] -= t
    return val, gu.ravel() - rhs


def congested_primal(flow: np.ndarray, sigma: np.ndarray, lam: float, h: float) -> float:
    """Discrete primal cost ``Σ_cells h² (|V| + |V|²/(4 λ σ))`` of a cell flow ``V`` (shape (2, n−1, n−1))."""
    speed = np.sqrt((np.asarray(flow) ** 2).sum(0))
    return float((h * h * (speed + speed**2 / (4.0 * lam * np.asarray(sigma)))).sum())


def solve_congested(
    mu: np.ndarray,
    nu: np.ndarray,
    sigma: np.ndarray,
    lam: float,
    h: float,
    sigma_floor: Optional[float] = None,
    tol: float = 1e-9,
    max_iter: int = 200,
    return_info: bool = False,
):
    """Optimal congested transport cost from ``mu`` to ``nu`` with interpolate density ``sigma``.

    Solves ``max_u Σ u (ν − μ) − λ Σ_cells σ h² (|∇u|_cell − 1)_+²`` (edge-difference stencil, see the
    module docstring) and returns ``(value, flow)``: ``value`` the optimal dual value (= the optimal primal
    ``min ∫ |V| + |V|²/(4λσ)`` s.t. ``div V = μ − ν``; cost |x − y|, *not* squared), ``flow`` the (2, n−1, n−1)
    field ``V = 2 λ σ (N − 1)_+ g/|g|`` on the cells (``flow[0]`` = V_x, ``flow[1]`` = V_y), pointing from μ to ν.

    The dual is concave and piecewise quadratic in the edge differences; it is maximised in float64 by a
    damped semi-smooth Newton method: the generalised Hessian ``Bᵀ W B`` (``B`` the sparse edge-difference
    operator, ``W`` the 4×4 per-cell Hessians of ``c (N − 1)_+²``) plus a Levenberg–Marquardt term ``τ Bᵀ C B``
    (a σ-weighted Laplacian that fills the null space of the inactive cells), sparse direct solves and an Armijo
    line search. It stops when the relative duality gap ``|primal − dual| / max(1, |dual|)`` is below ``tol``
    (typically 5–8 Newton steps; 96×96 in ≈ 2 s on one core). Near the Beckmann limit (λσ ≳ 10², the cost
    ≈ W1) the final decrease of the gap is slow: the value is accurate to ~1e-6 after ~40 steps, but the gap
    may stay above ``tol`` until ``max_iter`` (``return_info=True`` reports ``converged`` and the primal).

    Args:
        mu, nu: (n, n) node masses, each summing to 1, zero on the boundary ring of nodes (supports strictly
            inside the grid). ``mu`` is the source (fake) law, ``nu`` the target (real) law.
        sigma: (n−1, n−1) interpolate density on the cells (per unit area; integrates to ≈ 1).
        lam: gradient-penalty weight λ > 0.
        h: grid spacing.
        sigma_floor: lower bound applied to ``sigma`` (default ``1e-3 / ((n − 1) h)²``).
        tol: relative duality-gap tolerance; ``max_iter``: Newton iterations at most.
        return_info: return a :class:`CongestedSolution` instead of ``(value, flow)``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] != mu.shape[1] or nu.shape != mu.shape:
        raise ValueError(f"mu and nu must be (n, n) node masses of the same shape, got {mu.shape} and {nu.shape}")
    n = mu.shape[0]
    if n < 3:
        raise ValueError(f"the grid needs at least 3×3 nodes, got {n}×{n}")
    if sigma.shape != (n - 1, n - 1):
        raise ValueError(f"sigma must be the ({n - 1}, {n - 1}) cell density, got {sigma.shape}")
    if lam <= 0 or h <= 0:
        raise ValueError(f"lam and h must be positive, got lam={lam}, h={h}")
    if (mu < 0).any() or (nu < 0).any() or (sigma < 0).any():
        raise ValueError("mu, nu and sigma must be non-negative")
    for name, m in (("mu", mu), ("nu", nu)):
        if abs(m.sum() - 1.0) > 1e-6:
            raise ValueError(f"{name} must sum to 1 (node masses), got {m.sum():.8g}")
        ring = m.sum() - m[1:-1, 1:-1].sum()
        if ring > 1e-12:
            raise ValueError(f"{name} puts mass {ring:.3g} on the grid boundary: enlarge the grid so that the "
                             "supports lie strictly inside it (otherwise the dual is unbounded)")
    floor = 1e-3 / ((n - 1) * h) ** 2 if sigma_floor is None else float(sigma_floor)
    sig = np.maximum(sigma, floor)
    rhs = (nu / nu.sum() - mu / mu.sum()).ravel()
    c = lam * sig * h * h
    cf = c.ravel()

    D = _edge_operators(n, h)
    B = sp.vstack(D).tocsr()
    reg = (B.T @ sp.diags(np.tile(cf, 4)) @ B).tocsc()
    eye = sp.identity(n * n, format="csc")
    u = np.zeros(n * n)
    f, g = _neg_dual_and_grad(u, rhs, c, h, n)
    tau, it, converged = 1.0, 0, False
    flow, grad, norm = _flow(u.reshape(n, n), sig, lam, h)
    primal = congested_primal(flow, sig, lam, h)
    for it in range(1, int(max_iter) + 1):
        d = np.stack([Dk @ u for Dk in D])
        N = np.sqrt(0.5 * (d**2).sum(0))
        act = N > 1.0
        Ns = np.where(act, N, 1.0)
        w = [[sp.diags(cf * act * ((1.0 - 1.0 / Ns) * (k == l) + d[k] * d[l] / (2.0 * Ns**3))) for l in range(4)]
             for k in range(4)]
        H = (B.T @ sp.bmat(w) @ B).tocsc()
        shift = 1e-12 * float(H.diagonal().mean() + reg.diagonal().mean())
        for _ in range(20):  # raise the damping until the Armijo line search succeeds
            step = -spsolve((H + tau * reg + shift * eye).tocsc(), g)
            t, ok = 1.0, False
            for _ in range(30):
                fn, gn = _neg_dual_and_grad(u + t * step, rhs, c, h, n)
                if fn <= f + 1e-4 * t * float(g @ step):
                    ok = True
                    break
                t *= 0.5
            if ok:
                break
            tau *= 10.0
        if not ok:
            break
        u, f, g = u + t * step, fn, gn
        tau = max(tau * (0.3 if t == 1.0 else 2.0), 1e-10)
        flow, grad, norm = _flow(u.reshape(n, n), sig, lam, h)
        primal = congested_primal(flow, sig, lam, h)
        if abs(primal + f) <= tol * max(1.0, abs(f)):
            converged = True
            break
    value = -float(f)
    u = u - u.mean()
    if return_info:
        return CongestedSolution(value, primal, u.reshape(n, n), flow, grad, norm, it, converged)
    return value, flow


def _edge_operators(n: int, h: float):
    """The four sparse edge-difference operators (dxa, dxb, dya, dyb) of :func:`grid_gradient`, (n−1)² × n²."""
    idx = np.arange(n * n).reshape(n, n)
    m = (n - 1) ** 2
    rows = np.r_[np.arange(m), np.arange(m)]
    vals = np.r_[np.full(m, 1.0 / h), np.full(m, -1.0 / h)]
    pairs = [(idx[1:, :-1], idx[:-1, :-1]), (idx[1:, 1:], idx[:-1, 1:]),
             (idx[:-1, 1:], idx[:-1, :-1]), (idx[1:, 1:], idx[1:, :-1])]
    return [sp.csr_matrix((vals, (rows, np.r_[a.ravel(), b.ravel()])), shape=(m, n * n)) for a, b in pairs]


def _flow(u: np.ndarray, sig: np.ndarray, lam: float, h: float):
    g, norm, _ = grid_gradient(u, h)
    gn = np.sqrt((g**2).sum(0))
    speed = 2.0 * lam * sig * np.maximum(norm - 1.0, 0.0)
    flow = np.where(gn > 0, speed / np.maximum(gn, 1e-300), 0.0) * g
    return flow, g, norm


# ---------------------------------------------------------------------------- grid histograms
def node_masses(x: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """(n, n) node masses of samples ``x`` (N, 2): node-centred histogram on the grid ``lo + i h``,
    ``h = (hi − lo)/(n − 1)``, normalised to sum 1 (each sample goes to its nearest node)."""
    x = np.asarray(x, dtype=np.float64)
    h = (hi - lo) / (n - 1)
    edges = lo - 0.5 * h + h * np.arange(n + 1)
    m, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    return m / m.sum()


def cell_density(x: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """(n−1, n−1) density (per unit area) of samples ``x`` (N, 2) on the cells between the grid nodes;
    samples outside [lo, hi]² count in the normalisation (so the density integrates to the inside fraction)."""
    x = np.asarray(x, dtype=np.float64)
    h = (hi - lo) / (n - 1)
    edges = lo + h * np.arange(n)
    m, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    return m / (x.shape[0] * h * h)


def two_squares_case(n: int = 96, samples: int = 1_000_000, seed: int = 0, lo: float = -2.0,
                     hi: float = 3.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The reference case of the docs (``tests/test_congested.py``, ``benchmarks/bench_ot_numerics.py``):
    ``(μ, ν, σ, h)`` on the n×n grid over [lo, hi]², h = (hi − lo)/(n − 1), from ``samples`` points each.

    μ = U([−½, ½]²) (node masses), ν = the two unit squares [1.5, 2.5] × [0.5, 1.5] and [1.5, 2.5] × [−1.5, −0.5]
    (half the samples each), σ = cell density of the interpolates t·y + (1 − t)·x, t ~ U(0, 1), with y a random
    permutation of the ν samples paired to the μ samples (independent pairing), all drawn from
    ``numpy.random.default_rng(seed)``. With λ = 0.1 and n = 96 an independent L-BFGS solver measured the dual
    value 14.0058 (reference notes)."""
    rng = np.random.default_rng(seed)
    h = (hi - lo) / (n - 1)
    a = rng.uniform(-0.5, 0.5, (samples, 2))
    b = np.concatenate([rng.uniform([1.5, 0.5], [2.5, 1.5], (samples // 2, 2)),
                        rng.uniform([1.5, -1.5], [2.5, -0.5], (samples // 2, 2))])
    t = rng.uniform(size=(samples, 1))
    xi = t * b[rng.permutation(samples)] + (1 - t) * a
    return node_masses(a, lo, hi, n), node_masses(b, lo, hi, n), cell_density(xi, lo, hi, n), h

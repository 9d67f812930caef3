"""Exact power diagrams clipped to the source cube, in d = 1 and d = 2 (the semi-discrete OT oracle).

Conventions (those of :mod:`zoo.ot.semidiscrete`): source μ = uniform on the cube **[−0.5, 0.5]^d** (volume 1,
so Lebesgue measure = μ), targets y_i with heights h_i, power cells

    W_i(h) = {x ∈ [−0.5, 0.5]^d : ⟨x, y_i⟩ + h_i ≥ ⟨x, y_j⟩ + h_j  ∀ j},

i.e. the cells of the upper envelope u_h(x) = max_i ⟨x, y_i⟩ + h_i. For d ≤ 2 everything the semi-discrete OT
needs is computed exactly (in float64, no sampling):

* the cell masses w_i(h) = μ(W_i(h)) (lengths in 1-D, polygon areas in 2-D);
* the facets: for each pair of adjacent cells the (d−1)-measure ℓ_ij of W_i ∩ W_j (a point counts 1 in 1-D, an
  edge its length in 2-D), which give the Hessian of the energy E(h) = ∫ u_h dμ − Σ ν_i h_i
  (Kitagawa, Mérigot & Thibert, JEMS 2019, Thm. 1.3):

      ∂w_i/∂h_j = −ℓ_ij / |y_i − y_j|   (j ≠ i),        ∂w_i/∂h_i = Σ_{j≠i} ℓ_ij / |y_i − y_j|.

Method (2-D). The cells that can be non-empty and their neighbours come from the lower convex hull of the lifted
points (y_i, −h_i) ∈ R³ (the regular triangulation dual to the power diagram; scipy's Qhull): a lifted point off
that hull has an empty cell, and two cells share an edge only if their lifted points share a hull edge. Each cell
is then the square clipped by its neighbours' half-planes (Sutherland–Hodgman), its area the shoelace formula.
When Qhull cannot build the hull (fewer than 4 targets, all lifted points coplanar — e.g. h = 0), every pair is
a candidate neighbour (O(N²), exact as well).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["PowerDiagram", "power_diagram", "cell_masses_exact"]

HALF = 0.5  # the source cube is [−HALF, HALF]^d


@dataclass
class PowerDiagram:
    """Cells of u_h on the cube [−0.5, 0.5]^d (d = 1 or 2).

    Attributes:
        cell_mass: (N,) w_i = μ(W_i), exact (float64); they sum to 1 up to rounding.
        cell_moment: (N, d) first moments ∫_{W_i} x dx (centroid × mass).
        facet_i, facet_j, facet_measure: adjacent pairs i < j with the (d−1)-measure ℓ_ij of W_i ∩ W_j inside the
            cube (1 for a shared point in 1-D, the shared edge's length in 2-D).
        polygons: 2-D only, the vertices of each cell ((k, 2) arrays; empty cells have k = 0).
    """

    cell_mass: np.ndarray
    cell_moment: np.ndarray
    facet_i: np.ndarray
    facet_j: np.ndarray
    facet_measure: np.ndarray
    polygons: Optional[List[np.ndarray]] = None

    def hessian(self, targets: np.ndarray):
        """The sparse (N, N) Hessian ∂w_i/∂h_j of E (a weighted graph Laplacian, PSD, rows summing to 0):
        off-diagonal −ℓ_ij/|y_i − y_j|, diagonal Σ_j ℓ_ij/|y_i − y_j| (scipy.sparse CSR, float64)."""
        import scipy.sparse as sp

        n = self.cell_mass.shape[0]
        y = np.asarray(targets, dtype=np.float64)
        dist = np.linalg.norm(y[self.facet_i] - y[self.facet_j], axis=1)
        wgt = self.facet_measure / np.maximum(dist, 1e-300)
        rows = np.concatenate([self.facet_i, self.facet_j, self.facet_i, self.facet_j])
        cols = np.concatenate([self.facet_j, self.facet_i, self.facet_i, self.facet_j])
        vals = np.concatenate([-wgt, -wgt, wgt, wgt])
        return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def power_diagram(targets, h) -> PowerDiagram:
    """The exact power diagram of targets (N, d), d ∈ {1, 2}, with heights h (N,) on the cube [−0.5, 0.5]^d
    (cell i = {x : ⟨x, y_i⟩ + h_i maximal}); see the module docstring. Accepts numpy arrays or torch tensors."""
    y = _as_f64(targets)
    hh = _as_f64(h).reshape(-1)
    if y.ndim != 2 or y.shape[0] != hh.shape[0] or y.shape[1] not in (1, 2):
        raise ValueError(f"power_diagram needs targets (N, 1) or (N, 2) and h (N,), got {y.shape} and {hh.shape}")
    if not (np.isfinite(y).all() and np.isfinite(hh).all()):
        raise ValueError("power_diagram: targets and h must be finite")
    return _diagram_1d(y[:, 0], hh) if y.shape[1] == 1 else _diagram_2d(y, hh)


def cell_masses_exact(targets, h) -> np.ndarray:
    """w_i(h) = μ(W_i(h)) for μ uniform on [−0.5, 0.5]^d, d ∈ {1, 2}, exactly (float64, shape (N,))."""
    return power_diagram(targets, h).cell_mass


def _as_f64(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- 1-D
def _diagram_1d(y: np.ndarray, h: np.ndarray) -> PowerDiagram:
    """Upper envelope of the lines x ↦ y_i x + h_i on [−0.5, 0.5]: walk from x = −0.5 to 0.5, at each point jump to
    the line that overtakes the current one first (ties: the larger slope, then the lower index)."""
    n = y.shape[0]
    mass = np.zeros(n)
    moment = np.zeros((n, 1))
    fi: List[int] = []
    fj: List[int] = []
    x = -HALF
    val = y * x + h
    cur = int(np.lexsort((np.arange(n), -y, -val))[0])  # max value, then max slope, then lowest index
    while True:
        dy = y - y[cur]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(dy > 0, (h[cur] - h) / dy, np.inf)  # where line j overtakes the current one
        cross[cur] = np.inf
        cross = np.where(cross > x, cross, np.where(dy > 0, x, np.inf))  # already level or above: overtakes now
        nxt_x = float(cross.min()) if n > 1 else np.inf
        if nxt_x >= HALF:
            mass[cur] += HALF - x
            moment[cur, 0] += (HALF * HALF - x * x) / 2
            break
        cands = np.flatnonzero(cross == nxt_x)
        nxt = int(cands[np.lexsort((cands, -y[cands]))[0]])  # steepest of the lines crossing there
        mass[cur] += nxt_x - x
        moment[cur, 0] += (nxt_x * nxt_x - x * x) / 2
        if nxt_x > -HALF or mass[cur] > 0:
            fi.append(min(cur, nxt))
            fj.append(max(cur, nxt))
        x, cur = nxt_x, nxt
    ii, jj = np.asarray(fi, dtype=np.int64), np.asarray(fj, dtype=np.int64)
    return PowerDiagram(mass, moment, ii, jj, np.ones(ii.shape[0]))


# ---------------------------------------------------------------------------------------------- 2-D
def _candidate_neighbours(y: np.ndarray, h: np.ndarray) -> Optional[Tuple[np.ndarray, List[np.ndarray]]]:
    """(on_hull, neighbours) from the lower hull of (y_i, −h_i), or None where Qhull cannot build it."""
    from scipy.spatial import ConvexHull, QhullError

    n = y.shape[0]
    if n < 4:
        return None
    pts = np.column_stack([y, -h])
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        return None
    lower = hull.equations[:, 2] < 0  # outward normal pointing down: the facets of u_h's graph (dual)
    simp = hull.simplices[lower]
    if simp.shape[0] == 0:
        return None
    on_hull = np.zeros(n, dtype=bool)
    on_hull[simp.reshape(-1)] = True
    a = np.concatenate([simp[:, 0], simp[:, 1], simp[:, 2]])
    b = np.concatenate([simp[:, 1], simp[:, 2], simp[:, 0]])
    pairs = np.unique(np.sort(np.column_stack([a, b]), axis=1), axis=0)
    nbrs: List[List[int]] = [[] for _ in range(n)]
    for i, j in pairs.tolist():
        nbrs[i].append(j)
        nbrs[j].append(i)
    return on_hull, [np.asarray(v, dtype=np.int64) for v in nbrs]


def _clip(poly: List[Tuple[float, float, int]], ax: float, ay: float, b: float, label: int):
    """Sutherland–Hodgman: keep the part of a convex polygon (vertices with the label of the edge leaving them)
    where ax·x + ay·y ≤ b; the new edge along the line carries ``label``."""
    out: List[Tuple[float, float, int]] = []
    k = len(poly)
    for idx in range(k):
        px, py, pl = poly[idx]
        qx, qy, _ = poly[(idx + 1) % k]
        sp, sq = ax * px + ay * py - b, ax * qx + ay * qy - b
        if sp <= 0:
            if sq <= 0:
                out.append((px, py, pl))
            else:  # leaving: the edge from the crossing point onwards runs along the clipping line
                t = sp / (sp - sq)
                out.append((px, py, pl))
                out.append((px + t * (qx - px), py + t * (qy - py), label))
        elif sq <= 0:  # entering
            t = sp / (sp - sq)
            out.append((px + t * (qx - px), py + t * (qy - py), pl))
    return out


_SQUARE = [(-HALF, -HALF, -1), (HALF, -HALF, -1), (HALF, HALF, -1), (-HALF, HALF, -1)]  # label −1: the boundary


def _diagram_2d(y: np.ndarray, h: np.ndarray) -> PowerDiagram:
    n = y.shape[0]
    cand = _candidate_neighbours(y, h)
    masses = np.zeros(n)
    moments = np.zeros((n, 2))
    polys: List[np.ndarray] = []
    edges: Dict[Tuple[int, int], List[float]] = {}
    yl, hl = y.tolist(), h.tolist()
    for i in range(n):
        if cand is not None and not cand[0][i]:
            polys.append(np.zeros((0, 2)))
            continue
        nb = cand[1][i] if cand is not None else np.delete(np.arange(n), i)
        if cand is None:  # all pairs: clip by the most restrictive half-planes first (fewer vertices to carry)
            margin = (h[i] - h[nb]) - HALF * np.abs(y[nb] - y[i]).sum(1)
            nb = nb[np.argsort(margin)]
        poly = list(_SQUARE)
        yi0, yi1, hi = yl[i][0], yl[i][1], hl[i]
        for j in nb.tolist():
            # ⟨x, y_i⟩ + h_i ≥ ⟨x, y_j⟩ + h_j  ⇔  ⟨x, y_j − y_i⟩ ≤ h_i − h_j
            poly = _clip(poly, yl[j][0] - yi0, yl[j][1] - yi1, hi - hl[j], j)
            if len(poly) < 3:
                poly = []
                break
        if not poly:
            polys.append(np.zeros((0, 2)))
            continue
        arr = np.asarray(poly, dtype=np.float64)
        xs, ys, lab = arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64)
        xn, yn = np.roll(xs, -1), np.roll(ys, -1)
        cross = xs * yn - xn * ys
        masses[i] = max(0.0, 0.5 * float(cross.sum()))
        moments[i] = [float(((xs + xn) * cross).sum()) / 6, float(((ys + yn) * cross).sum()) / 6]
        lengths = np.hypot(xn - xs, yn - ys)
        for j, ln in zip(lab.tolist(), lengths.tolist()):
            if j >= 0 and ln > 0:
                edges.setdefault((min(i, j), max(i, j)), []).append(ln)
        polys.append(arr[:, :2])
    keys = sorted(edges)
    fi = np.asarray([k[0] for k in keys], dtype=np.int64)
    fj = np.asarray([k[1] for k in keys], dtype=np.int64)
    # each shared edge is seen from both sides: average the two (equal up to rounding)
    meas = np.asarray([float(np.mean(edges[k])) for k in keys], dtype=np.float64)
    return PowerDiagram(masses, moments, fi, fj, meas, polys)

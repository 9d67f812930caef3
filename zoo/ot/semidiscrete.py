"""Semi-discrete optimal transport for AE-OT (An, Guo, Lei, Luo, Yau, Gu, ICLR 2020; Gu, Luo, Sun, Yau 2016).

Problem. Source μ: uniform on the cube **[−0.5, 0.5]^d** (option: standard Gaussian N(0, I)). Target
ν = Σ_i ν_i δ_{y_i} (ν uniform unless ``weights`` are given). Cost |x − y|² (equivalently −⟨x, y⟩ up to
terms that do not depend on the pairing).

Brenier potential and power cells::

    u_h(x) = max_i ⟨x, y_i⟩ + h_i,         W_i(h) = {x : ⟨x, y_i⟩ + h_i ≥ ⟨x, y_j⟩ + h_j  ∀ j},
    T(x) = y_{argmax_i ⟨x, y_i⟩ + h_i}.

Convex energy and gradient (Gu et al. 2016, Thm. 1.2)::

    E(h) = ∫ u_h dμ − Σ_i ν_i h_i,          ∂E/∂h_i = w_i(h) − ν_i,   w_i(h) = μ(W_i(h)).

h is defined up to an additive constant; we keep it **mean-centred** (Σ_i h_i = 0).

Solvers (``method``):

* ``newton`` (d ≤ 2, uniform source; the ``auto`` choice there): the damped Newton method of Kitagawa, Mérigot &
  Thibert (JEMS 2019) on the exact cell masses and Hessian of the clipped power diagram
  (:mod:`zoo.ot.power_diagram`): solve H δ = −(w − ν) on the cell-adjacency Laplacian H, then halve the step α
  until every cell keeps at least ε₀ = ½ min(min_i w_i, min_i ν_i) and ‖w − ν‖₂ has dropped by the factor
  (1 − α/2). Quadratic convergence; no sampling at all.
* ``sampled_newton`` (any d and source; the ``auto`` choice for d ≥ 3 or the Gaussian source): the same Newton
  method on a *sample-average approximation* of E — the energy of a fixed cloud of M scrambled-Sobol source points,
  E_M(h) = (1/M) Σ_k u_h(x_k) − Σ_i ν_i h_i — with the Kitagawa–Mérigot–Thibert Hessian estimated from the cloud:
  a point x whose two highest scores belong to cells i ≠ j lies at distance (s_i − s_j)/|y_i − y_j| from their
  facet, so the facet term |facet_ij|/|y_i − y_j| is estimated by the number of cloud points within a distance τ of
  it divided by 2τM|y_i − y_j| (τ: the ``hessian_quantile`` of those distances). The step solves
  (H + λ D) δ = −(w − ν) (D = diag H, Levenberg–Marquardt λ: divided by 4 after an accepted step, multiplied by 4
  until the step decreases E_M by Armijo's rule), all in float64 (E_M's decrease is below float32's resolution near
  the optimum). The cloud grows ×4 per level, from 64·N points to the certificate's size M_c (so the cloud's own
  sampling error is that of the certificate), each level warm-started from the last; the certificate is tried
  when the final cloud's cell masses are within tol_rel/8 of ν. The cloud is never stored: chunk k of level ℓ is
  regenerated from its seed, so memory stays that of one chunk.
* ``adam`` (any d and source): Adam (bias-corrected) on h with the Monte-Carlo gradient ŵ − ν, ŵ the histogram
  of M fresh source points per iteration (scrambled Sobol or ``torch.rand``). When the best batch TV has not
  improved for ``patience`` iterations, M doubles (up to ``max_samples``) and the learning rate is multiplied by
  ``lr_decay`` (growing samples, annealed steps). Kept for comparison: it fails the hard sets of
  docs/results/aeot/certificate.md.

**The certificate.** ``converged`` is a promise, so it is only set by an independent check of the current h
(:meth:`SemiDiscreteOT.certify`):

* exact (d ≤ 2, uniform source): the cell masses of the clipped power diagram;
* Monte-Carlo (otherwise): M_c = ⌈(3z / tol_rel)² / min_i ν_i⌉ fresh i.i.d. source points from a seed stream the
  optimiser never uses, so that each relative cell mass ŵ_i/ν_i has standard error se_i ≤ tol_rel/(3z). It passes
  when every cell satisfies |ŵ_i/ν_i − 1| + z·se_i/ν_i ≤ tol_rel, TV = ½‖ŵ − ν‖₁ ≤ tol_tv and no cell is empty,
  with se_i = sqrt(p_i(1 − p_i)/M_c), p_i = max(ŵ_i, ν_i). z = ``cert_z``; by default the Bonferroni quantile
  z = Φ⁻¹(1 − α/(2N)) (α = ``cert_alpha`` = 0.05), so that *all N cells at once* lie within their bounds with
  probability ≥ 1 − α: "converged" then means every cell's true mass is within tol_rel of ν_i at that confidence.
  (A per-cell bound, z = 1, cannot pass for large N even at the exact solution: the largest of N standard errors
  is ≈ Φ⁻¹(1 − 1/(2N)) of them, 3.4 at N = 1437.)

The result of the last check is ``certificate`` (``kind``, ``passed``, ``max_rel``, ``max_rel_upper``, ``tv``,
``empty``, ``samples``, ``seed``); ``message`` says in one line what was certified or what error the budget
reached. Errors are always scale-free (``tv = ½ Σ|w_i − ν_i|``, ``max_rel = max_i |w_i/ν_i − 1|``), never the
absolute ‖ŵ − ν‖₂ of the official code, which stops meaning anything at large N.

Memory: scores ⟨x, y_i⟩ + h_i are computed in blocks of ``chunk_samples × chunk_targets`` floats with a
running (max, argmax) — or a running top-k — so memory never exceeds that block; there is no Python loop
over samples, only over chunks. Works on CPU and GPU (the device of ``targets``).

Conversion to POT's ``ot.semidiscrete.solve_semidiscrete`` (cell argmin_j |x − y_j|² − g_j):
h = (g − |y|²)/2 + const.

The *extended* map used for generation (top-k cells, facet-normal angle test, interpolation) lives in
:mod:`zoo.ot.extended_map`.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from zoo.errors import ConfigError

__all__ = [
    "SemiDiscreteOT",
    "semi_discrete_ot",
    "power_argmax",
    "power_topk",
    "row_max",
    "sample_source",
]

SOURCES = ("uniform", "gaussian")


# ---------------------------------------------------------------------------------------------- source
def sample_source(n: int, d: int, source: str = "uniform", sampler: str = "sobol", seed: int = 0,
                  device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` points of the source law μ in R^d.

    * ``source="uniform"``: uniform on the cube [−0.5, 0.5]^d;
      ``source="gaussian"``: N(0, I) (inverse normal CDF of the uniform points).
    * ``sampler="sobol"``: Owen-scrambled Sobol points (``torch.quasirandom.SobolEngine(scramble=True,
      seed=seed)``, randomised QMC: unbiased, lower variance than i.i.d.); ``sampler="random"``: i.i.d.
      ``torch.rand`` with ``torch.Generator().manual_seed(seed)``.
    """
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}: use uniform or gaussian")
    if sampler == "sobol" and d <= 21201:
        u = torch.quasirandom.SobolEngine(d, scramble=True, seed=int(seed) % (2**63)).draw(int(n), dtype=torch.float32)
    elif sampler in ("random", "sobol"):
        u = torch.rand(int(n), d, generator=torch.Generator().manual_seed(int(seed)))
    else:
        raise ConfigError(f"unknown sampler {sampler!r}: use sobol or random")
    if source == "uniform":
        x = u - 0.5
    else:
        x = math.sqrt(2.0) * torch.erfinv(u.clamp(1e-7, 1 - 1e-7) * 2 - 1)
    return x.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------- scores
def _lift(x: Tensor) -> Tensor:
    """(x, 1): with lifted targets (y_i, h_i) one matrix product gives the scores ⟨x, y_i⟩ + h_i."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)


def row_max(scores: Tensor, block: int = 8) -> Tuple[Tensor, Tensor]:
    """``(max_j S_ij, argmax_j S_ij)`` per row of a score block ``S`` (m, c); ties broken arbitrarily.

    Same result as ``S.max(1)``, about twice as fast on CPU: PyTorch's value+index reduction runs at a
    fraction of the speed of ``amax``, so the columns are viewed as ``(block, c/block)``, the vectorised
    ``amax`` over the ``block`` slices (an elementwise max of ``block`` rows) finds the best residue
    r = j mod (c/block), and the index reductions only run on the ``block``-times smaller (m, c/block) array and
    the (m, block) column of the winning residue.
    """
    m, c = scores.shape
    c0 = c - c % block
    if c0 < 8 * block:
        return scores.max(1)
    r_len = c0 // block
    view = scores[:, :c0].reshape(m, block, r_len)
    best_v, r = view.amax(1).max(1)  # one level: deeper recursion costs more in small ops than it saves
    column = view.gather(2, r.view(m, 1, 1).expand(m, block, 1)).squeeze(2)
    b = (column == best_v[:, None]).to(torch.uint8).argmax(1)
    best_i = b * r_len + r
    if c0 < c:
        rv, ri = scores[:, c0:].max(1)
        upd = rv > best_v
        best_v = torch.where(upd, rv, best_v)
        best_i = torch.where(upd, ri + c0, best_i)
    return best_v, best_i


def power_argmax(x: Tensor, targets: Tensor, h: Tensor, chunk_targets: int = 2048,
                 chunk_samples: int = 1024) -> Tuple[Tensor, Tensor]:
    """``(u_h(x), argmax_i ⟨x, y_i⟩ + h_i)`` for each row of ``x`` (n, d); ``targets`` (N, d), ``h`` (N,).

    Blocks of ``chunk_samples × chunk_targets`` scores (one ``addmm`` each) with a running max/argmax:
    memory O(chunk_samples · chunk_targets) (default 1024 × 2048 floats = 8 MiB, the fastest block measured on a
    2-core CPU: docs/results/aeot/bench_semidiscrete.md), compute 2·n·N·d FLOP. Exact ties (probability zero
    for a continuous source) may go to any of the tied cells.
    """
    n, big_n = x.shape[0], targets.shape[0]
    ct, cs = max(1, int(chunk_targets)), max(1, int(chunk_samples))
    x = x.to(targets.dtype)
    best_v = torch.empty(n, dtype=targets.dtype, device=targets.device)
    best_i = torch.empty(n, dtype=torch.long, device=targets.device)
    lifted = torch.cat([targets, h.to(targets.dtype)[:, None]], 1)  # (y_i, h_i): one GEMM gives ⟨x, y_i⟩ + h_i
    for s in range(0, n, cs):
        xs = _lift(x[s:s + cs])
        bv, bi = None, None
        for t in range(0, big_n, ct):
            v, i = row_max(xs @ lifted[t:t + ct].T)
            if bv is None:
                bv, bi = v, i
            else:
                upd = v > bv
                bv = torch.where(upd, v, bv)
                bi = torch.where(upd, i + t, bi)
        best_v[s:s + cs] = bv
        best_i[s:s + cs] = bi
    return best_v, best_i


def power_topk(x: Tensor, targets: Tensor, h: Tensor, k: int, chunk_targets: int = 2048,
               chunk_samples: int = 1024) -> Tuple[Tensor, Tensor]:
    """The ``k`` largest scores ⟨x, y_i⟩ + h_i per row of ``x`` and their indices, sorted decreasingly.

    Column 0 is the power cell containing x (:func:`power_argmax`); columns 1..k−1 are the cells whose
    affine pieces are next highest at x — the stand-in for power-diagram neighbours used by AE-OT.
    Chunked like :func:`power_argmax` with a running top-k.
    """
    n, big_n = x.shape[0], targets.shape[0]
    k = int(k)
    if not 1 <= k <= big_n:
        raise ConfigError(f"top-k needs 1 <= k <= number of targets ({big_n}), got k={k}")
    ct, cs = max(k, int(chunk_targets)), max(1, int(chunk_samples))
    x = x.to(targets.dtype)
    out_v = torch.empty(n, k, dtype=targets.dtype, device=targets.device)
    out_i = torch.empty(n, k, dtype=torch.long, device=targets.device)
    lifted = torch.cat([targets, h.to(targets.dtype)[:, None]], 1)
    for s in range(0, n, cs):
        xs = _lift(x[s:s + cs])
        bv, bi = None, None
        for t in range(0, big_n, ct):
            scores = xs @ lifted[t:t + ct].T
            v, i = scores.topk(min(k, scores.shape[1]), dim=1)
            i = i + t
            if bv is not None:
                v, j = torch.cat([bv, v], 1).topk(k, dim=1)
                i = torch.cat([bi, i], 1).gather(1, j)
            bv, bi = v, i
        out_v[s:s + cs] = bv
        out_i[s:s + cs] = bi
    return out_v, out_i


# ---------------------------------------------------------------------------------------------- solver
METHODS = ("auto", "newton", "sampled_newton", "adam")
CLOUD_CHUNK = 2**16  # points per regenerated chunk of the sampled-Newton cloud


class SemiDiscreteOT:
    """Semi-discrete OT from μ (cube [−0.5, 0.5]^d or N(0, I)) to ν = Σ ν_i δ_{y_i}; see the module doc.

    Use :func:`semi_discrete_ot` for a one-call solve; the module (``zoo.AEOT``) calls :meth:`step` in its
    own loop and saves :meth:`state_dict` in the checkpoint (h, Adam moments, sample size, lr, certificate, history).

    Args:
        targets: (N, d) target points y_i, pairwise distinct (their dtype and device are used throughout).
        weights: (N,) target masses ν_i (normalised to sum 1); ``None``: uniform 1/N.
        source: ``uniform`` (cube [−0.5, 0.5]^d) or ``gaussian``.
        sampler: ``sobol`` (fresh scrambled Sobol batch per iteration), ``random`` (fresh ``torch.rand``) or
            ``fixed`` (the same scrambled Sobol points every iteration: the discrete OT from that cloud, which is
            what the official code effectively solves; for deterministic tests). Used by ``adam``.
        method: ``auto`` (``newton`` for d ≤ 2 with the uniform source, else ``sampled_newton``), ``newton``,
            ``sampled_newton`` or ``adam``.
        lr: initial Adam learning rate on h (in the units of ⟨x, y⟩).
        betas, eps: Adam constants (bias-corrected).
        n_samples: initial Monte-Carlo size M per iteration (default 16·N, at least 4096).
        max_samples: cap of the doubling (default 2**20).
        patience: iterations without a new best TV before M doubles.
        lr_decay: learning-rate factor applied at each doubling.
        tol_tv, tol_rel: what ``converged`` certifies: TV ≤ tol_tv and max_i |w_i/ν_i − 1| ≤ tol_rel, no empty cell.
        certificate: ``auto`` (exact where d ≤ 2 with the uniform source, else Monte-Carlo), ``exact`` or
            ``monte_carlo``.
        cert_alpha: the Monte-Carlo certificate's error probability over all cells at once (see the module doc).
        cert_z: its margin in standard errors; ``None``: the Bonferroni quantile Φ⁻¹(1 − cert_alpha/(2N)).
        hessian_quantile: ``sampled_newton``: fraction of cloud points (nearest their facet) that estimate H.
        cert_max_samples: cap on the Monte-Carlo certificate's sample size; a certificate that would need more
            cannot pass (raise the cap or tol_rel).
        chunk_targets, chunk_samples: score block size (memory budget = their product × 4 bytes).
        seed: seed of the sample stream (iteration t uses seed + 7919·t, so a resumed solve continues it; the
            certificate draws from a separate stream).
    """

    def __init__(self, targets: Tensor, weights: Optional[Tensor] = None, source: str = "uniform",
                 sampler: str = "sobol", method: str = "auto", lr: float = 1e-2,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, n_samples: Optional[int] = None,
                 max_samples: int = 2**20, patience: int = 30, lr_decay: float = 0.7, tol_tv: float = 1e-2,
                 tol_rel: float = 0.05, certificate: str = "auto", cert_z: Optional[float] = None,
                 cert_alpha: float = 0.05, cert_max_samples: int = 2**25, hessian_quantile: float = 0.1,
                 chunk_targets: int = 2048, chunk_samples: int = 1024, seed: int = 0):
        if targets.ndim != 2 or targets.shape[0] < 1:
            raise ConfigError(f"targets must be an (N, d) tensor with N >= 1, got shape {tuple(targets.shape)}")
        if source not in SOURCES:
            raise ConfigError(f"unknown source {source!r}: use uniform or gaussian")
        if sampler not in ("sobol", "random", "fixed"):
            raise ConfigError(f"unknown sampler {sampler!r}: use sobol, random or fixed")
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}: use auto, newton, sampled_newton or adam")
        if lr <= 0 or not 0 < lr_decay <= 1:
            raise ConfigError(f"need lr > 0 and 0 < lr_decay <= 1, got lr={lr}, lr_decay={lr_decay}")
        if tol_rel is None or not (tol_rel > 0 and tol_tv >= 0 and (cert_z is None or cert_z >= 0)
                                   and 0 < cert_alpha < 1 and 0 < hessian_quantile <= 1):
            raise ConfigError(f"need tol_rel > 0, tol_tv >= 0, cert_z >= 0, 0 < cert_alpha < 1 and "
                              f"0 < hessian_quantile <= 1, got tol_rel={tol_rel}, tol_tv={tol_tv}, cert_z={cert_z}, "
                              f"cert_alpha={cert_alpha}, hessian_quantile={hessian_quantile}")
        if not bool(torch.isfinite(targets).all()):
            raise ConfigError("targets contain NaN or Inf values: check the codes passed to the OT solver")
        self.targets = targets.float() if not targets.is_floating_point() else targets
        big_n, self.d = self.targets.shape
        self.source, self.sampler = source, sampler
        if big_n > 1 and torch.unique(self.targets, dim=0).shape[0] < big_n:
            raise ConfigError("targets contain exact duplicates, whose cells cannot share mass: pass the distinct "
                              "points with their multiplicities as weights (torch.unique(..., return_counts=True))")
        if method == "newton" and not self.exact:
            raise ConfigError(f"method='newton' needs d <= 2 and the uniform source (got d={self.d}, "
                              f"source={source!r}): use method='sampled_newton'")
        self.method = ("newton" if self.exact else "sampled_newton") if method == "auto" else method
        if certificate not in ("auto", "exact", "monte_carlo") or (certificate == "exact" and not self.exact):
            raise ConfigError(f"certificate={certificate!r}: use auto, monte_carlo, or exact (d <= 2, uniform source)")
        self.certificate_kind = ("exact" if self.exact else "monte_carlo") if certificate == "auto" else certificate
        dev, dt = self.targets.device, self.targets.dtype
        if weights is None:
            self.nu = torch.full((big_n,), 1.0 / big_n, device=dev, dtype=dt)
        else:
            w = torch.as_tensor(weights, device=dev, dtype=dt).reshape(-1)
            if w.shape[0] != big_n or not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
                raise ConfigError("weights must be N positive numbers, one per target")
            self.nu = w / w.sum()
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.max_samples = int(max_samples)
        self.patience, self.lr_decay = int(patience), float(lr_decay)
        self.tol_tv, self.tol_rel, self.cert_alpha = float(tol_tv), float(tol_rel), float(cert_alpha)
        # Bonferroni: P(some cell outside z·se) ≤ N · 2(1 − Φ(z)) = cert_alpha
        self.cert_z = (float(cert_z) if cert_z is not None else
                       float(torch.special.ndtri(torch.tensor(1 - cert_alpha / (2 * big_n), dtype=torch.float64))))
        self.hessian_quantile = float(hessian_quantile)
        self.cert_max_samples = int(cert_max_samples)
        self.chunk_targets, self.chunk_samples = int(chunk_targets), int(chunk_samples)
        self.seed = int(seed)
        # optimisation state (everything needed to resume)
        self.h = torch.zeros(big_n, device=dev, dtype=dt)
        self.adam_m = torch.zeros_like(self.h)
        self.adam_v = torch.zeros_like(self.h)
        self.t = 0
        self.lr = float(lr)
        self.n_samples = int(n_samples) if n_samples else max(4096, 16 * big_n)
        self.best_tv = math.inf
        self.since_best = 0
        self.converged = False
        self.stalled = False  # Newton: no step improves any more (the precision of h's dtype is reached)
        self.certificate: Dict[str, object] = {}
        self.cert_attempts = 0
        self.cert_wait = 0  # Adam: iterations before the next certificate may be tried
        self.history: List[Dict[str, float]] = []
        self._diagram = None  # Newton: the exact diagram of the current h (recomputed when h changes)
        self.level = 0  # sampled Newton: cloud level (size min(M0·4^level, M_F)), Levenberg–Marquardt λ, iterations
        self.lm = 1.0
        self.level_iters = 0
        self.cloud_boost = 0  # sampled Newton: the final cloud doubled this many times after a failed certificate

    # ------------------------------------------------------------------ queries
    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[0])

    @property
    def exact(self) -> bool:
        """Whether cell masses are computed exactly (d ≤ 2, uniform source)."""
        return self.d <= 2 and self.source == "uniform"

    def sample_source(self, n: int, seed: int) -> Tensor:
        """``n`` source points (see :func:`sample_source`) on the targets' device."""
        sampler = "sobol" if self.sampler == "fixed" else self.sampler
        return sample_source(n, self.d, self.source, sampler, seed, self.targets.device, self.targets.dtype)

    def assign(self, x: Tensor) -> Tensor:
        """Index of the power cell of each row of ``x``: argmax_i ⟨x, y_i⟩ + h_i (the OT map is y[assign])."""
        return power_argmax(x.to(self.targets.device), self.targets, self.h, self.chunk_targets,
                            self.chunk_samples)[1]

    def transport(self, x: Tensor) -> Tensor:
        """The semi-discrete OT map T(x) = y_{assign(x)} (= ∇u_h(x))."""
        return self.targets[self.assign(x)]

    def potential(self, x: Tensor) -> Tensor:
        """The Brenier potential u_h(x) = max_i ⟨x, y_i⟩ + h_i."""
        return power_argmax(x.to(self.targets.device), self.targets, self.h, self.chunk_targets,
                            self.chunk_samples)[0]

    def cell_mass(self, n: int = 2**20, seed: int = 12345, sampler: str = "random") -> Tensor:
        """Monte-Carlo estimate of w_i = μ(W_i(h)) from ``n`` fresh source points (i.i.d. by default), drawn and
        assigned in chunks of 2^20 (memory independent of n)."""
        counts = torch.zeros(self.num_targets, dtype=torch.long, device=self.targets.device)
        chunk = 2**20
        for k, s in enumerate(range(0, int(n), chunk)):
            x = sample_source(min(chunk, int(n) - s), self.d, self.source, sampler, seed + 104729 * k,
                              self.targets.device, self.targets.dtype)
            counts += torch.bincount(self.assign(x), minlength=self.num_targets)
        return counts.to(self.targets.dtype) / float(n)

    def exact_cell_mass(self) -> Tensor:
        """w_i(h) exactly (d ≤ 2, uniform source; :mod:`zoo.ot.power_diagram`), as a float64 tensor."""
        if not self.exact:
            raise ConfigError("exact cell masses need d <= 2 and the uniform source: use cell_mass(n)")
        return torch.from_numpy(self._exact_diagram().cell_mass)

    def errors(self, w: Tensor) -> Dict[str, float]:
        """Scale-free marginal errors of cell masses ``w``: tv = ½‖w − ν‖₁, max_rel = max_i |w_i/ν_i − 1|,
        empty = #{i : w_i = 0}, l2 = ‖w − ν‖₂ (the official criterion, for reference)."""
        nu = self.nu.to(device=w.device, dtype=w.dtype)
        diff = w - nu
        return {"tv": 0.5 * float(diff.abs().sum()), "max_rel": float((diff.abs() / nu).max()),
                "empty": int((w <= 0).sum()), "l2": float(diff.norm())}

    # ------------------------------------------------------------------ the certificate
    def certificate_samples(self) -> int:
        """M_c = ⌈(3z/tol_rel)² / min_i ν_i⌉: each relative cell mass then has standard error ≤ tol_rel/(3z)."""
        return int(math.ceil((3.0 * max(self.cert_z, 1.0) / self.tol_rel) ** 2 / float(self.nu.min())))

    @torch.no_grad()
    def certify(self) -> Dict[str, object]:
        """Check the current h independently of the optimiser and set ``converged`` from the check alone.

        Exact (d ≤ 2, uniform source): the clipped power diagram's cell masses. Otherwise Monte-Carlo on
        :meth:`certificate_samples` fresh i.i.d. points (a seed stream the optimiser never draws from); it passes
        when max_i (|ŵ_i/ν_i − 1| + z·se_i/ν_i) ≤ tol_rel with se_i = sqrt(p_i(1 − p_i)/M_c), p_i = max(ŵ_i, ν_i),
        z the Bonferroni quantile over the N cells (module doc), TV ≤ tol_tv and no cell is empty. Returns (and stores as ``certificate``) kind, passed, max_rel, max_rel_upper, tv, empty, samples,
        seed, iteration.
        """
        self.cert_attempts += 1
        if self.certificate_kind == "exact":
            errs = self.errors(self.exact_cell_mass())
            cert = {"kind": "exact", **errs, "max_rel_upper": errs["max_rel"], "samples": 0, "seed": None}
            cert["passed"] = bool(errs["max_rel"] <= self.tol_rel and errs["tv"] <= self.tol_tv
                                  and errs["empty"] == 0)
        else:
            m = self.certificate_samples()
            capped = m > self.cert_max_samples
            m = min(m, self.cert_max_samples)
            seed = (self.seed * 1_000_003 + 0x5EED + 7 * self.cert_attempts) % (2**62)
            w = self.cell_mass(m, seed=seed, sampler="random").double()
            nu = self.nu.double().to(w.device)
            errs = self.errors(w)
            p = torch.maximum(w, nu)
            se = torch.sqrt(p * (1 - p) / m)
            upper = float(((w - nu).abs() + self.cert_z * se).div(nu).max())
            cert = {"kind": "monte_carlo", **errs, "max_rel_upper": upper, "samples": m, "seed": seed,
                    "se_rel": float((se / nu).max()), "z": self.cert_z, "alpha": self.cert_alpha, "capped": capped}
            cert["passed"] = bool(not capped and upper <= self.tol_rel and errs["tv"] <= self.tol_tv
                                  and errs["empty"] == 0)
        cert["iteration"] = self.t
        self.certificate = cert
        self.converged = bool(cert["passed"])
        return cert

    @property
    def message(self) -> str:
        """One line: what was certified, or the error the solve reached."""
        c = self.certificate
        if not c:
            return f"not certified: {self.t} iterations run, no certificate computed yet"
        how = "exact cell masses" if c["kind"] == "exact" else f"{c['samples']:,} fresh source samples"
        errs = (f"max relative cell-mass error {c['max_rel']:.3g} (upper bound {c['max_rel_upper']:.3g}), "
                f"TV {c['tv']:.3g}, {c['empty']} empty cells; {how}")
        if c["passed"]:
            return f"converged: {errs} (tol_rel {self.tol_rel:g}, tol_tv {self.tol_tv:g})"
        extra = " — the certificate needs more samples than cert_max_samples" if c.get("capped") else ""
        if self.stalled and self.method == "sampled_newton":
            extra += " — solved on clouds up to 4× the certificate's size without passing it (raise tol_rel)"
        elif self.stalled:
            extra += f" — no Newton step improves it in {str(self.h.dtype).replace('torch.', '')} (pass float64 targets)"
        return (f"not converged after {self.t} iterations: {errs}; asked for tol_rel {self.tol_rel:g}, "
                f"tol_tv {self.tol_tv:g}{extra}")

    # ------------------------------------------------------------------ optimisation
    def step(self) -> Dict[str, float]:
        """One iteration of ``method`` (then the certificate where it may pass); returns the history record."""
        rec = {"newton": self._newton_step, "sampled_newton": self._sampled_newton_step,
               "adam": self._adam_step}[self.method]()
        self.history.append(rec)
        return rec

    def _exact_diagram(self):
        from zoo.ot.power_diagram import power_diagram

        if self._diagram is None or not torch.equal(self._diagram[0], self.h.detach().cpu().double()):
            hh = self.h.detach().cpu().double()
            self._diagram = (hh, power_diagram(self.targets, hh))
        return self._diagram[1]

    def _newton_init(self) -> None:
        """h_i = −|y_i − c|²/(2s): the cells become the Voronoi cells of z_i = (y_i − c)/s, which lie inside the
        square (c the targets' bounding-box centre, s scaling them into [−0.45, 0.45]^d), so no cell is empty."""
        y = self.targets.detach().cpu().double()
        c = (y.amax(0) + y.amin(0)) / 2
        s = max(float((y - c).abs().max()) / 0.45, 1e-12)
        h = -((y - c) ** 2).sum(1) / (2 * s)
        self.h.copy_((h - h.mean()).to(self.h))

    @torch.no_grad()
    def _newton_step(self) -> Dict[str, float]:
        """One damped Newton step (Kitagawa–Mérigot–Thibert) on the exact masses and Hessian, then the exact
        certificate."""
        import numpy as np
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        from zoo.ot.power_diagram import power_diagram

        if self.t == 0 and not bool(self.h.any()):
            self._newton_init()
        y = self.targets.detach().cpu().double().numpy()
        nu = self.nu.detach().cpu().double().numpy()
        pd = self._exact_diagram()
        h0 = self.h.detach().cpu().double().numpy()
        g = pd.cell_mass - nu
        gnorm = float(np.linalg.norm(g))
        alpha = 0.0
        if pd.cell_mass.min() > 0 and not self.converged:
            hess = pd.hessian(y).tocsc()
            keep = np.arange(1, len(nu))  # fix δ_0 = 0: H is a Laplacian, singular along the constants
            delta = np.zeros(len(nu))
            if len(nu) > 1:
                ridge = 1e-14 * max(1.0, float(hess.diagonal().max()))
                sub = hess[keep][:, keep] + ridge * sp.identity(len(keep), format="csc")
                delta[keep] = spla.spsolve(sub, -g[keep])
            eps0 = 0.5 * min(float(pd.cell_mass.min()), float(nu.min()))
            alpha = 1.0
            while alpha >= 2.0 ** -30:
                cand = h0 + alpha * delta
                cand -= cand.mean()
                # evaluate the h that will be stored (rounded to the targets' dtype): that is the map users get
                cand = torch.from_numpy(cand).to(self.h.dtype).double().numpy()
                new = power_diagram(y, cand)
                if new.cell_mass.min() >= eps0 and np.linalg.norm(new.cell_mass - nu) <= (1 - alpha / 2) * gnorm:
                    self.h.copy_(torch.from_numpy(cand).to(self.h))
                    self._diagram = (torch.from_numpy(cand), new)
                    break
                alpha /= 2
            else:
                alpha = 0.0  # no acceptable step: the rounding level of h's dtype is reached, h stays
                self.stalled = True
        elif pd.cell_mass.min() <= 0:
            # an empty cell (user-given h): restart from the Voronoi initialisation, which has none
            self._newton_init()
        self.t += 1
        cert = self.certify()
        energy = self._exact_energy()
        return {"iter": self.t, "tv": cert["tv"], "max_rel": cert["max_rel"], "empty": cert["empty"],
                "l2": cert["l2"], "energy": energy, "alpha": alpha, "n_samples": 0, "lr": 0.0}

    # ------------------------------------------------------------------ sampled Newton (d ≥ 3)
    def cloud_size(self, level: Optional[int] = None) -> int:
        """Points of the sampled-Newton cloud at ``level``: min(M0·4^level, M_F), M0 = max(4096, 64·N) and
        M_F = min(M_c, cert_max_samples) · 2^cloud_boost (the certificate's size, doubled after a failed check)."""
        level = self.level if level is None else int(level)
        final = min(self.certificate_samples(), self.cert_max_samples) * 2 ** self.cloud_boost
        m0 = max(4096, 64 * self.num_targets)
        return int(min(m0 * 4 ** level, max(final, m0)))

    def _cloud_chunks(self):
        """The current level's cloud, chunk by chunk (each chunk an independently scrambled Sobol set, regenerated
        from (seed, level, boost, chunk index): the same points at every pass, never stored whole)."""
        m = self.cloud_size()
        for k, s in enumerate(range(0, m, CLOUD_CHUNK)):
            seed = (self.seed * 1_000_003 + 7_368_787 * (self.level + 1) + 104_729 * k + 15_485_863 * self.cloud_boost)
            yield sample_source(min(CLOUD_CHUNK, m - s), self.d, self.source, "sobol", seed % (2**62),
                                self.targets.device, torch.float64)

    def _cloud_pass(self, h: Tensor, hessian: bool):
        """One pass over the cloud at heights h (float64): cell masses w_i, energy E_M(h) and, with ``hessian``,
        the pairs (i, j, distance to their facet) of every point's two highest scores."""
        y = self.targets.double()
        counts = torch.zeros(self.num_targets, dtype=torch.float64, device=y.device)
        usum, pairs, m = 0.0, [], 0
        for x in self._cloud_chunks():
            m += x.shape[0]
            if hessian and self.num_targets > 1:
                v, i = power_topk(x, y, h, 2, self.chunk_targets, self.chunk_samples)
                u, top = v[:, 0], i[:, 0]
                dy = (y[i[:, 0]] - y[i[:, 1]]).norm(dim=1).clamp_min(1e-300)
                pairs.append((i[:, 0], i[:, 1], (v[:, 0] - v[:, 1]) / dy, dy))
            else:
                u, top = power_argmax(x, y, h, self.chunk_targets, self.chunk_samples)
            counts += torch.bincount(top, minlength=self.num_targets).double()
            usum += float(u.sum())
        w = counts / m
        return w, usum / m - float((self.nu.double() * h).sum()), pairs, m

    def _cloud_hessian(self, pairs, m: int):
        """H_ij ≈ −#{cloud points with top-2 cells {i, j} within distance τ of their facet} / (2τ·M·|y_i − y_j|),
        H_ii = −Σ_{j≠i} H_ij (the KMT Hessian |facet_ij|/|y_i − y_j|, estimated on the cloud), as scipy CSR."""
        import numpy as np
        import scipy.sparse as sp

        dist = torch.cat([p[2] for p in pairs])
        probe = dist[:: max(1, dist.numel() // 200_000)]
        tau = max(float(torch.quantile(probe, self.hessian_quantile)), 1e-300)
        rows, cols, vals = [], [], []
        for a, b, dd, dy in pairs:
            sel = dd <= tau
            rows.append(a[sel]), cols.append(b[sel]), vals.append(1.0 / (2 * tau * m * dy[sel]))
        n = self.num_targets
        c = sp.coo_matrix((torch.cat(vals).cpu().numpy(), (torch.cat(rows).cpu().numpy(),
                                                           torch.cat(cols).cpu().numpy())), shape=(n, n)).tocsr()
        c = c + c.T
        diag = np.asarray(c.sum(1)).ravel()
        return sp.diags(diag) - c, diag

    @torch.no_grad()
    def _sampled_newton_step(self) -> Dict[str, float]:
        """One Levenberg–Marquardt-damped Newton step on the cloud's energy E_M (module doc); moves to the next
        cloud level when this one is solved to its own resolution, and tries the certificate on the final one."""
        import numpy as np
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        if self.t == 0 and self.level == 0 and not bool(self.h.any()):
            self._newton_init()
        h = self.h.detach().double()
        w, energy, pairs, m = self._cloud_pass(h, hessian=True)
        nu = self.nu.double().to(w.device)
        errs = self.errors(w)
        final = m >= self.cloud_size(level=self.level + 1)
        # a level is solved when its masses are within its own resolution (a few points per cell), the final one
        # when they are within tol_rel/8 (its sampling error is then that of the certificate: module doc)
        target = self.tol_rel / 8 if final else max(self.tol_rel / 8, 4.0 / math.sqrt(float(nu.min()) * m))
        self.t += 1
        self.level_iters += 1
        rec = {"iter": self.t, **errs, "energy": energy, "n_samples": m, "lr": 0.0, "lm": self.lm}
        if errs["max_rel"] <= target and errs["empty"] == 0 or self.level_iters > 50:
            if final:
                self.certify()
                if not self.converged and self.cloud_boost < 2:
                    self.cloud_boost += 1  # the cloud's own sampling error was too large: a bigger final cloud
                    self.level_iters = 0
                elif not self.converged:
                    self.stalled = True
            else:
                self.level += 1
                self.level_iters = 0
            return rec
        g = (w - nu).cpu().numpy()
        hess, diag = self._cloud_hessian(pairs, m) if pairs else (sp.csr_matrix((1, 1)), np.ones(1))
        pos = diag > 0
        floor = float(np.median(diag[pos])) if pos.any() else 1.0
        damp = np.where(pos, np.maximum(diag, 1e-3 * floor), floor)
        while self.lm <= 1e10:
            a = (hess + sp.diags(self.lm * damp)).tocsc()
            delta = spla.spsolve(a, -g) if self.num_targets <= 5000 else spla.cg(
                a, -g, rtol=1e-8, maxiter=1000, M=sp.diags(1.0 / a.diagonal()))[0]
            delta = torch.from_numpy(delta - delta.mean()).to(h)
            slope = float((w - nu) @ delta)
            _, e_new, _, _ = self._cloud_pass(h + delta, hessian=False)
            if slope < 0 and e_new <= energy + 1e-4 * slope:  # Armijo on the convex E_M
                self.h.copy_((h + delta).to(self.h))
                self.lm = max(self.lm / 4, 1e-8)
                break
            self.lm *= 4
        else:
            # no step decreases E_M in float64: this cloud is solved as far as it can be
            self.lm = 1.0
            self.level_iters = 10**9
        return rec

    def _exact_energy(self) -> float:
        """E(h) = Σ_i ∫_{W_i} (⟨x, y_i⟩ + h_i) dx − Σ_i ν_i h_i from the cells' masses and first moments."""
        pd = self._exact_diagram()
        y = self.targets.detach().cpu().double().numpy()
        h = self._diagram[0].numpy()
        nu = self.nu.detach().cpu().double().numpy()
        return float((pd.cell_moment * y).sum() + (pd.cell_mass * h).sum() - (nu * h).sum())

    @torch.no_grad()
    def _adam_step(self) -> Dict[str, float]:
        """One Adam step on h with the gradient ŵ − ν from ``n_samples`` fresh source points.

        Adam (bias-corrected): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
        h ← h − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε), then h ← h − mean(h).
        The record holds the batch estimates of tv, max_rel, empty, the energy E(h) ≈ mean_x u_h(x) − Σ ν_i h_i,
        n_samples and lr. A certificate is tried when the batch estimate is within its own noise of the
        tolerances (at most once per ``patience`` iterations).
        """
        x = self.sample_source(self.n_samples, self.seed if self.sampler == "fixed" else self.seed + 7919 * self.t)
        u, idx = power_argmax(x, self.targets, self.h, self.chunk_targets, self.chunk_samples)
        w = torch.bincount(idx, minlength=self.num_targets).to(self.h.dtype) / float(self.n_samples)
        g = w - self.nu
        errs = self.errors(w)
        energy = float(u.mean() - (self.nu * self.h).sum())
        # is the batch within its own noise of the tolerances? (checked before the step: it is this h's estimate)
        noise = 3.0 / math.sqrt(self.n_samples * float(self.nu.min()))
        floor_tv = 0.5 * math.sqrt(2 * self.num_targets / (math.pi * self.n_samples))
        candidate = (errs["empty"] == 0 and errs["max_rel"] <= self.tol_rel + noise
                     and errs["tv"] <= self.tol_tv + floor_tv)
        if candidate and self.cert_wait <= 0:
            self.certify()
            self.cert_wait = self.patience
            if self.converged:  # h passed: keep it, no step
                return {"iter": self.t, **errs, "energy": energy, "n_samples": self.n_samples, "lr": self.lr}
        self.cert_wait -= 1
        b1, b2 = self.betas
        self.t += 1
        self.adam_m.mul_(b1).add_(g, alpha=1 - b1)
        self.adam_v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = self.adam_m / (1 - b1 ** self.t)
        v_hat = self.adam_v / (1 - b2 ** self.t)
        self.h.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
        self.h.sub_(self.h.mean())
        self.converged = False
        # adaptive sample size: double M (and decay lr) on a TV plateau
        if errs["tv"] < self.best_tv:
            self.best_tv, self.since_best = errs["tv"], 0
        else:
            self.since_best += 1
            if self.since_best > self.patience:
                if self.n_samples < self.max_samples:
                    self.n_samples = min(2 * self.n_samples, self.max_samples)
                self.lr *= self.lr_decay
                self.best_tv, self.since_best = math.inf, 0
        return {"iter": self.t, **errs, "energy": energy, "n_samples": self.n_samples, "lr": self.lr}

    def fit(self, max_iters: int = 1000, time_limit: Optional[float] = None,
            callback: Optional[Callable[[Dict[str, float]], None]] = None) -> "SemiDiscreteOT":
        """Run :meth:`step` until the certificate passes, Newton stalls, ``max_iters`` more iterations or
        ``time_limit`` seconds;
        a budget that runs out first ends with a final certificate, so ``converged``/``message`` state the error
        reached."""
        t0 = time.perf_counter()
        for _ in range(int(max_iters)):
            if self.converged or self.stalled:  # e.g. resumed from a finished solve
                break
            rec = self.step()
            if callback is not None:
                callback(rec)
            if self.converged or self.stalled or (time_limit is not None and time.perf_counter() - t0 >= time_limit):
                break
        self.final_certificate()
        return self

    def final_certificate(self) -> Dict[str, object]:
        """The certificate of the current h: the last one if it was computed at this iteration, else a new one
        (a solve stopped by its budget then states the error it reached)."""
        if self.certificate.get("iteration") != self.t:
            self.certify()
        return self.certificate

    # ------------------------------------------------------------------ checkpointing
    _STATE_SCALARS = ("t", "lr", "n_samples", "best_tv", "since_best", "converged", "stalled", "cert_attempts",
                      "cert_wait", "certificate", "level", "lm", "level_iters", "cloud_boost")

    def state_dict(self) -> Dict[str, object]:
        """h, the Adam moments, the schedule state and the certificate (resume with :meth:`load_state_dict`)."""
        return {"h": self.h.clone(), "adam_m": self.adam_m.clone(), "adam_v": self.adam_v.clone(),
                **{k: getattr(self, k) for k in self._STATE_SCALARS}, "history": list(self.history)}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        for k in ("h", "adam_m", "adam_v"):
            getattr(self, k).copy_(torch.as_tensor(state[k]))
        for k in self._STATE_SCALARS:
            if k in state:
                setattr(self, k, type(getattr(self, k))(state[k]))
        self.history = list(state.get("history", []))
        self._diagram = None


def semi_discrete_ot(targets: Tensor, weights: Optional[Tensor] = None, max_iters: int = 1000,
                     time_limit: Optional[float] = None, **kwargs) -> SemiDiscreteOT:
    """Solve semi-discrete OT from μ (uniform on [−0.5, 0.5]^d, or ``source="gaussian"``) to
    ν = Σ ν_i δ_{y_i} by minimising E(h) = ∫ max_i(⟨x, y_i⟩ + h_i) dμ − Σ ν_i h_i (gradient w(h) − ν).

    Returns the :class:`SemiDiscreteOT` result: ``.h`` (mean-centred heights), ``.assign(x)``,
    ``.converged`` (only ever set by the independent certificate), ``.certificate`` (what was checked: kind,
    max_rel, max_rel_upper, tv, empty, samples, seed), ``.message`` (one line), ``.cell_mass(n)`` and
    ``.history``. Keyword arguments go to :class:`SemiDiscreteOT` (method, tol_rel, tol_tv, lr, sampler,
    n_samples, patience, lr_decay, cert_z, cert_max_samples, chunk_targets, chunk_samples, seed…).
    """
    return SemiDiscreteOT(targets, weights, **kwargs).fit(max_iters, time_limit)

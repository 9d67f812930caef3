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

Solver: Adam (with bias correction) on h with the Monte-Carlo gradient ŵ − ν, where ŵ is the histogram of
the cells of M source points: a fresh randomly scrambled Sobol batch (randomised quasi-Monte-Carlo) or
fresh ``torch.rand`` points every iteration. When the best total variation has not improved for
``patience`` iterations, M doubles (up to ``max_samples``) and the learning rate is multiplied by
``lr_decay``. Convergence is judged on scale-free criteria (``tv = ½ Σ|ŵ_i − ν_i|``,
``max_rel = max_i |ŵ_i/ν_i − 1|``, number of empty cells), never on the absolute ‖ŵ − ν‖₂ of the
official code, which stops meaning anything at large N. Everything is logged in ``history``.

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
class SemiDiscreteOT:
    """Semi-discrete OT from μ (cube [−0.5, 0.5]^d or N(0, I)) to ν = Σ ν_i δ_{y_i}; see the module doc.

    Use :func:`semi_discrete_ot` for a one-call solve; the module (``zoo.AEOT``) calls :meth:`step` in its
    own loop and saves :meth:`state_dict` in the checkpoint (h, Adam moments, sample size, lr, history).

    Args:
        targets: (N, d) target points y_i (their dtype and device are used throughout).
        weights: (N,) target masses ν_i (normalised to sum 1); ``None``: uniform 1/N.
        source: ``uniform`` (cube [−0.5, 0.5]^d) or ``gaussian``.
        sampler: ``sobol`` (fresh scrambled Sobol batch per iteration), ``random`` (fresh ``torch.rand``) or
            ``fixed`` (the same scrambled Sobol points every iteration: the discrete OT from that cloud, which is
            what the official code effectively solves; for deterministic tests).
        lr: initial Adam learning rate on h (in the units of ⟨x, y⟩).
        betas, eps: Adam constants (bias-corrected).
        n_samples: initial Monte-Carlo size M per iteration (default 16·N, at least 4096).
        max_samples: cap of the doubling (default 2**20).
        patience: iterations without a new best TV before M doubles.
        lr_decay: learning-rate factor applied at each doubling.
        tol_tv, tol_rel: convergence when the batch estimates satisfy tv ≤ tol_tv, max_rel ≤ tol_rel
            (``None``: not used) and no cell is empty.
        chunk_targets, chunk_samples: score block size (memory budget = their product × 4 bytes).
        seed: seed of the sample stream (iteration t uses seed + t, so a resumed solve continues it).
    """

    def __init__(self, targets: Tensor, weights: Optional[Tensor] = None, source: str = "uniform",
                 sampler: str = "sobol", lr: float = 1e-2, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, n_samples: Optional[int] = None, max_samples: int = 2**20,
                 patience: int = 30, lr_decay: float = 0.7, tol_tv: float = 1e-2, tol_rel: Optional[float] = None,
                 chunk_targets: int = 2048, chunk_samples: int = 1024, seed: int = 0):
        if targets.ndim != 2 or targets.shape[0] < 1:
            raise ConfigError(f"targets must be an (N, d) tensor with N >= 1, got shape {tuple(targets.shape)}")
        if source not in SOURCES:
            raise ConfigError(f"unknown source {source!r}: use uniform or gaussian")
        if sampler not in ("sobol", "random", "fixed"):
            raise ConfigError(f"unknown sampler {sampler!r}: use sobol, random or fixed")
        if lr <= 0 or not 0 < lr_decay <= 1:
            raise ConfigError(f"need lr > 0 and 0 < lr_decay <= 1, got lr={lr}, lr_decay={lr_decay}")
        self.targets = targets.float() if not targets.is_floating_point() else targets
        big_n, self.d = self.targets.shape
        dev, dt = self.targets.device, self.targets.dtype
        if weights is None:
            self.nu = torch.full((big_n,), 1.0 / big_n, device=dev, dtype=dt)
        else:
            w = torch.as_tensor(weights, device=dev, dtype=dt).reshape(-1)
            if w.shape[0] != big_n or bool((w <= 0).any()):
                raise ConfigError("weights must be N positive numbers, one per target")
            self.nu = w / w.sum()
        self.source, self.sampler = source, sampler
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.max_samples = int(max_samples)
        self.patience, self.lr_decay = int(patience), float(lr_decay)
        self.tol_tv, self.tol_rel = float(tol_tv), (None if tol_rel is None else float(tol_rel))
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
        self.history: List[Dict[str, float]] = []

    # ------------------------------------------------------------------ queries
    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[0])

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
        """Monte-Carlo estimate of w_i = μ(W_i(h)) from ``n`` fresh source points (i.i.d. by default)."""
        x = sample_source(n, self.d, self.source, sampler, seed, self.targets.device, self.targets.dtype)
        counts = torch.bincount(self.assign(x), minlength=self.num_targets)
        return counts.to(self.targets.dtype) / float(n)

    def errors(self, w: Tensor) -> Dict[str, float]:
        """Scale-free marginal errors of cell masses ``w``: tv = ½‖w − ν‖₁, max_rel = max_i |w_i/ν_i − 1|,
        empty = #{i : w_i = 0}, l2 = ‖w − ν‖₂ (the official criterion, for reference)."""
        diff = w - self.nu
        return {"tv": 0.5 * float(diff.abs().sum()), "max_rel": float((diff.abs() / self.nu).max()),
                "empty": int((w == 0).sum()), "l2": float(diff.norm())}

    # ------------------------------------------------------------------ optimisation
    def step(self) -> Dict[str, float]:
        """One Adam step on h with the gradient ŵ − ν from ``n_samples`` fresh source points.

        Adam (bias-corrected): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
        h ← h − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε), then h ← h − mean(h).
        Returns (and appends to ``history``) the batch estimates of tv, max_rel, empty, the energy
        E(h) ≈ mean_x u_h(x) − Σ ν_i h_i, n_samples and lr.
        """
        x = self.sample_source(self.n_samples, self.seed if self.sampler == "fixed" else self.seed + 7919 * self.t)
        u, idx = power_argmax(x, self.targets, self.h, self.chunk_targets, self.chunk_samples)
        w = torch.bincount(idx, minlength=self.num_targets).to(self.h.dtype) / float(self.n_samples)
        g = w - self.nu
        errs = self.errors(w)
        energy = float(u.mean() - (self.nu * self.h).sum())
        b1, b2 = self.betas
        self.t += 1
        self.adam_m.mul_(b1).add_(g, alpha=1 - b1)
        self.adam_v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = self.adam_m / (1 - b1 ** self.t)
        v_hat = self.adam_v / (1 - b2 ** self.t)
        self.h.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
        self.h.sub_(self.h.mean())
        rec = {"iter": self.t, **errs, "energy": energy, "n_samples": self.n_samples, "lr": self.lr}
        self.history.append(rec)
        # convergence on the batch estimates (they include MC noise, so they are conservative)
        self.converged = (errs["tv"] <= self.tol_tv and errs["empty"] == 0
                          and (self.tol_rel is None or errs["max_rel"] <= self.tol_rel))
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
        return rec

    def fit(self, max_iters: int = 1000, time_limit: Optional[float] = None,
            callback: Optional[Callable[[Dict[str, float]], None]] = None) -> "SemiDiscreteOT":
        """Run :meth:`step` until convergence, ``max_iters`` more iterations or ``time_limit`` seconds."""
        t0 = time.perf_counter()
        for _ in range(int(max_iters)):
            rec = self.step()
            if callback is not None:
                callback(rec)
            if self.converged or (time_limit is not None and time.perf_counter() - t0 >= time_limit):
                break
        return self

    # ------------------------------------------------------------------ checkpointing
    _STATE_SCALARS = ("t", "lr", "n_samples", "best_tv", "since_best", "converged")

    def state_dict(self) -> Dict[str, object]:
        """h, the Adam moments and the schedule state (resume with :meth:`load_state_dict`)."""
        return {"h": self.h.clone(), "adam_m": self.adam_m.clone(), "adam_v": self.adam_v.clone(),
                **{k: getattr(self, k) for k in self._STATE_SCALARS}, "history": list(self.history)}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        for k in ("h", "adam_m", "adam_v"):
            getattr(self, k).copy_(torch.as_tensor(state[k]))
        for k in self._STATE_SCALARS:
            if k in state:
                setattr(self, k, type(getattr(self, k))(state[k]))
        self.history = list(state.get("history", []))


def semi_discrete_ot(targets: Tensor, weights: Optional[Tensor] = None, max_iters: int = 1000,
                     time_limit: Optional[float] = None, **kwargs) -> SemiDiscreteOT:
    """Solve semi-discrete OT from μ (uniform on [−0.5, 0.5]^d, or ``source="gaussian"``) to
    ν = Σ ν_i δ_{y_i} by minimising E(h) = ∫ max_i(⟨x, y_i⟩ + h_i) dμ − Σ ν_i h_i (gradient w(h) − ν).

    Returns the :class:`SemiDiscreteOT` result: ``.h`` (mean-centred heights), ``.assign(x)``,
    ``.cell_mass(n)``, ``.history`` (tv, max_rel, empty, energy, n_samples, lr per iteration),
    ``.converged``. Keyword arguments go to :class:`SemiDiscreteOT` (lr, sampler, n_samples, patience,
    lr_decay, tol_tv, tol_rel, chunk_targets, chunk_samples, seed…).
    """
    return SemiDiscreteOT(targets, weights, **kwargs).fit(max_iters, time_limit)

"""Kernel and sliced discrepancies and their best-response discriminators (witness functions).

Conventions (all functions take point clouds ``x`` (N, d), ``y`` (M, d), optionally with weights that sum to 1;
uniform weights when omitted; V-statistics, i.e. self pairs included):

* **Energy distance** (Székely; the Radon–Sobolev distance of Turinici): with the conditionally negative
  definite kernel k(x, y) = −|x − y| (Euclidean norm, *not* squared),

      ED(μ, ν) = 2 E|X − Y| − E|X − X'| − E|Y − Y'|  =  MMD²_k(μ, ν) = ∬ k d(μ − ν)⊗(μ − ν).

* **Gaussian MMD²** with k(x, y) = exp(−|x − y|² / (2σ²)):  E k(X, X') + E k(Y, Y') − 2 E k(X, Y).

* **Witness function** of a kernel k for the signed measure μ − ν (X ~ μ the *generated* law, Y ~ ν the data):

      w(x) = ∫ k(x, ·) d(μ − ν) = E k(x, X) − E k(x, Y),

  so that the first variation of MMD²_k in μ is δMMD²/δμ = 2 w (up to an additive constant). For the energy
  kernel w(x) = E|x − Y| − E|x − X|.  In the regularised game L(μ, D) = ∫ D d(μ − ν) − (λ/2)‖D‖²_H the
  discriminator's best response is D* = w / λ and L(μ, D*) = MMD²_k(μ, ν) / (2λ); particles moving along
  −∇D* follow the Wasserstein-2 gradient flow of MMD²_k / (2λ).

* **Sliced Wasserstein** with cost |s − t|² on each 1-D projection θ ∈ S^{d−1}:

      SW²₂(μ, ν) = mean_θ W²₂(θ#μ, θ#ν),

  estimated on a fixed set of L directions. Its best response (first variation, halved) is
  D*(x) = (1/2) mean_θ φ_θ(θ·x), where φ_θ is the 1-D Kantorovich potential of cost |s − t|², whose
  derivative is φ'_θ(s) = 2 (s − T_θ(s)) with the monotone map T_θ = F_{θ#ν}^{-1} ∘ F_{θ#μ}. Hence
  ∇D*(x) = mean_θ (θ·x − T_θ(θ·x)) θ, which is what :func:`sliced_potential_grad` returns. For N = M equally
  weighted points and x = x_i, this equals (N/2) ∂SW²₂/∂x_i.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "energy_distance",
    "gaussian_mmd2",
    "witness",
    "witness_grad",
    "random_projections",
    "sliced_w2_squared",
    "sliced_potential_grad",
    "KERNELS",
]

#: kernel families with a closed-form witness
KERNELS = ("energy", "gaussian")


def _weights(n: int, w: Optional[Tensor], ref: Tensor) -> Tensor:
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=ref.dtype, device=ref.device)
    return w.to(dtype=ref.dtype, device=ref.device)


def _kernel_matrix(a: Tensor, b: Tensor, kernel: str, sigma: float) -> Tensor:
    if kernel == "energy":
        return -torch.cdist(a, b)
    if kernel == "gaussian":
        return torch.exp(-torch.cdist(a, b).pow(2) / (2.0 * sigma**2))
    raise ValueError(f"unknown kernel {kernel!r}: use one of {KERNELS}")


def energy_distance(x: Tensor, y: Tensor, wx: Optional[Tensor] = None, wy: Optional[Tensor] = None) -> Tensor:
    """ED(μ, ν) = 2 E|X − Y| − E|X − X'| − E|Y − Y'| for μ = Σ wx_i δ_{x_i}, ν = Σ wy_j δ_{y_j} (V-statistic).

    Euclidean (unsquared) distances; ED ≥ 0, = 0 iff the two weighted clouds are equal as measures.
    """
    a, b = _weights(len(x), wx, x), _weights(len(y), wy, y)
    return 2 * a @ torch.cdist(x, y) @ b - a @ torch.cdist(x, x) @ a - b @ torch.cdist(y, y) @ b


def gaussian_mmd2(x: Tensor, y: Tensor, sigma: float, wx: Optional[Tensor] = None,
                  wy: Optional[Tensor] = None) -> Tensor:
    """MMD²(μ, ν) = E k(X, X') + E k(Y, Y') − 2 E k(X, Y), k(x, y) = exp(−|x − y|²/(2σ²)) (V-statistic)."""
    a, b = _weights(len(x), wx, x), _weights(len(y), wy, y)
    k = lambda p, q: _kernel_matrix(p, q, "gaussian", sigma)  # noqa: E731
    return a @ k(x, x) @ a + b @ k(y, y) @ b - 2 * a @ k(x, y) @ b


def witness(q: Tensor, x: Tensor, y: Tensor, kernel: str = "energy", sigma: float = 1.0,
            wx: Optional[Tensor] = None, wy: Optional[Tensor] = None) -> Tensor:
    """w(q) = Σ_i wx_i k(q, x_i) − Σ_j wy_j k(q, y_j) at query points ``q`` (Q, d) → (Q,).

    ``x`` are samples of the generated law μ, ``y`` of the data ν; energy: k = −|q − ·|, gaussian:
    k = exp(−|q − ·|²/(2σ²)). δMMD²_k/δμ = 2w.
    """
    a, b = _weights(len(x), wx, x), _weights(len(y), wy, y)
    return _kernel_matrix(q, x, kernel, sigma) @ a - _kernel_matrix(q, y, kernel, sigma) @ b


def _kernel_grad(q: Tensor, p: Tensor, w: Tensor, kernel: str, sigma: float) -> Tensor:
    """Σ_j w_j ∇_q k(q, p_j), (Q, d), by matrix products; the energy kernel's gradient at q = p_j is taken as 0.

    Energy: ∇_q(−|q − p|) = −(q − p)/|q − p|; Gaussian: ∇_q k(q, p) = −k(q, p)(q − p)/σ².
    With A_qj = w_j a(|q − p_j|) this is −(q Σ_j A_qj − A p) · c, for a = 1/|·| (c = 1) or a = k (c = 1/σ²).
    """
    dist = torch.cdist(q, p)
    if kernel == "energy":
        a = torch.where(dist > 0, w[None, :] / dist.clamp_min(1e-30), torch.zeros_like(dist))
        c = 1.0
    elif kernel == "gaussian":
        a = w[None, :] * torch.exp(-dist.pow(2) / (2.0 * sigma**2))
        c = 1.0 / sigma**2
    else:
        raise ValueError(f"unknown kernel {kernel!r}: use one of {KERNELS}")
    return -(q * a.sum(1, keepdim=True) - a @ p) * c


def witness_grad(q: Tensor, x: Tensor, y: Tensor, kernel: str = "energy", sigma: float = 1.0,
                 wx: Optional[Tensor] = None, wy: Optional[Tensor] = None) -> Tensor:
    """∇w(q) for the witness of :func:`witness`, in closed form, (Q, d).

    Energy: ∇w(q) = Σ_j wy_j (q − y_j)/|q − y_j| − Σ_i wx_i (q − x_i)/|q − x_i| (a zero distance contributes 0).
    Gaussian: ∇w(q) = −Σ_i wx_i k(q, x_i)(q − x_i)/σ² + Σ_j wy_j k(q, y_j)(q − y_j)/σ².
    """
    a, b = _weights(len(x), wx, x), _weights(len(y), wy, y)
    return _kernel_grad(q, x, a, kernel, sigma) - _kernel_grad(q, y, b, kernel, sigma)


def random_projections(n: int, d: int, generator: Optional[torch.Generator] = None,
                       dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` directions uniform on the unit sphere S^{d−1}, as a (d, n) matrix (POT's ``projections`` layout)."""
    p = torch.randn(d, n, generator=generator, dtype=dtype)
    return p / p.norm(dim=0, keepdim=True)


def _quantile_match(s: Tensor, src_sorted: Tensor, tgt_sorted: Tensor) -> Tensor:
    """T(s) = F_tgt^{-1}(F_src(s)) for empirical, equally weighted 1-D laws (sorted columns), per column.

    The rank k of s among the source points gives the level u = (k + ½)/N, and T(s) is the target's point of
    index ⌊u·M⌋; for N = M and s a source point this is the monotone (optimal) matching.
    """
    n, m = src_sorted.shape[0], tgt_sorted.shape[0]
    k = torch.searchsorted(src_sorted.T.contiguous(), s.T.contiguous()).T  # (Q, L) ranks in [0, N]
    k = k.clamp(max=n - 1)
    j = ((k.to(s.dtype) + 0.5) * (m / n)).floor().long().clamp(0, m - 1)
    return torch.gather(tgt_sorted, 0, j)


def sliced_w2_squared(x: Tensor, y: Tensor, projections: Tensor) -> Tensor:
    """SW²₂(μ, ν) = mean_θ W²₂(θ#μ, θ#ν), cost |s − t|², equally weighted clouds of equal size N = M.

    ``projections`` is a (d, L) matrix of unit directions (POT convention).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError("sliced_w2_squared needs equally many points in x and y")
    px, _ = torch.sort(x @ projections, dim=0)
    py, _ = torch.sort(y @ projections, dim=0)
    return (px - py).pow(2).mean()


def sliced_potential_grad(q: Tensor, x: Tensor, y: Tensor, projections: Tensor) -> Tensor:
    """∇D*(q) = mean_θ (θ·q − T_θ(θ·q)) θ, the gradient of the sliced-W2 best response (module doc), (Q, d).

    ``x`` samples the generated law μ, ``y`` the data ν, ``projections`` is (d, L); T_θ is the empirical
    monotone map from θ#μ to θ#ν (:func:`_quantile_match`). For N = M and q = x_i this is (N/2)∂SW²₂/∂x_i.
    """
    px, _ = torch.sort(x @ projections, dim=0)
    py, _ = torch.sort(y @ projections, dim=0)
    s = q @ projections  # (Q, L)
    t = _quantile_match(s, px, py)
    return (s - t) @ projections.T / projections.shape[1]

"""Input-convex neural networks (Amos, Xu & Kolter 2017) as Brenier potentials.

An :class:`ICNN` computes a scalar ψ(x) that is **convex in x for every parameter value** it can take:

    z₁     = σ(A₀x + b₀ + Σ_k (q₀ₖᵀx)²)                       (first layer: any affine + convex quadratic skip)
    z_{l+1} = σ(W_l⁺ z_l + A_l x + b_l + Σ_k (q_lₖᵀx)²)        (hidden layers, W_l⁺ ≥ 0 elementwise)
    ψ(x)   = w⁺ᵀ z_L + aᵀx + ½|Lᵀx|² + ½α|x|²                  (output: w⁺ ≥ 0, free linear term,
                                                                 PSD quadratic head, strong convexity α ≥ 0)

σ is convex and non-decreasing (CELU, softplus, leaky-ReLU, ReLU), so each z_{l+1} is a convex, non-decreasing
function of convex functions, hence convex; adding the convex quadratic skips and heads keeps ψ convex, and
α > 0 makes ψ α-strongly convex, so ∇ψ is strongly monotone and ψ* is (1/α)-smooth.

Non-negativity of the z-path weights W⁺, w⁺ is enforced **exactly**, by one of

* ``positivity="clamp"`` (Korotin et al.'s DenseICNN): W is a free tensor and :meth:`ICNN.convexify` sets
  W ← max(W, 0) — call it after every optimizer step (the zoo's solvers and the GAN do);
* ``positivity="softplus"`` (Amos / OTT): W⁺ = softplus(θ)/fan_in, non-negative for every θ, no hook needed.

The quadratic head ½|Lᵀx|² (full rank by default) makes the affine Brenier maps x ↦ Ax + b, A ≻ 0 — the OT maps
between Gaussians — exactly representable, and lets the network start at the identity map (L = I).

The cost convention is irrelevant here: ψ is a potential; its gradient ∇ψ is the candidate map.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ConfigError

__all__ = ["ICNN", "QuadraticPotential", "pretrain_identity", "conjugate_argmax", "potential_grad"]

_ACTS = {
    "celu": F.celu,
    "softplus": F.softplus,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "relu": F.relu,
    "elu": F.elu,
}


class _ConvexQuadratic(nn.Module):
    """x ↦ Σ_k (q_kᵀx)² per output unit (rank ``rank``), a convex quadratic skip (DenseICNN)."""

    def __init__(self, in_dim: int, out_dim: int, rank: int):
        super().__init__()
        self.rank = int(rank)
        self.q = nn.Parameter(torch.randn(in_dim, out_dim * self.rank) * 0.1 / math.sqrt(in_dim))

    def forward(self, x: Tensor) -> Tensor:
        p = (x @ self.q) ** 2
        return p.reshape(x.shape[0], -1, self.rank).sum(-1)


class ICNN(nn.Module):
    """Input-convex network ψ: R^d → R (see the module docstring for the equations).

    Args:
        dim: input dimension d.
        hidden: widths of the convex layers (Korotin et al.'s benchmark uses [max(2d,64), max(2d,64), max(d,32)]).
        activation: convex non-decreasing σ: ``celu`` (default), ``softplus``, ``leaky_relu``, ``relu``, ``elu``.
        rank: rank of the quadratic input skip into each layer (0: no skip).
        quadratic_head: add ½|Lᵀx|² with a full d×d matrix L, initialised to ``init_scale``·I (so ∇ψ ≈
            ``init_scale``·x at initialisation); with ``False`` the head is absent.
        strong_convexity: α ≥ 0 of the fixed ½α|x|² term.
        positivity: ``clamp`` (call :meth:`convexify` after each step) or ``softplus`` (reparameterised).
        init_std: std of the free weights' normal initialisation (z-path weights are drawn from |N(0, init_std²)|).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 32),
        activation: str = "celu",
        rank: int = 1,
        quadratic_head: bool = True,
        strong_convexity: float = 1e-4,
        positivity: str = "clamp",
        init_std: float = 0.1,
        init_scale: float = 1.0,
    ):
        super().__init__()
        if activation not in _ACTS:
            raise ConfigError(f"ICNN activation {activation!r} is not convex non-decreasing here: "
                              f"use one of {', '.join(_ACTS)}")
        if positivity not in ("clamp", "softplus"):
            raise ConfigError(f"ICNN positivity must be 'clamp' or 'softplus', got {positivity!r}")
        if strong_convexity < 0:
            raise ConfigError(f"strong_convexity must be >= 0, got {strong_convexity}")
        self.dim = int(dim)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.positivity = positivity
        self.strong_convexity = float(strong_convexity)
        self._act = _ACTS[activation]
        # x-paths (free affine maps) and convex quadratic skips, one per layer
        self.x_layers = nn.ModuleList(nn.Linear(self.dim, h) for h in self.hidden)
        self.quad = nn.ModuleList(_ConvexQuadratic(self.dim, h, rank) for h in self.hidden) if rank > 0 else None
        # z-paths: non-negative weights between consecutive hidden layers, and the output weights
        self.z_weights = nn.ParameterList(
            nn.Parameter(torch.empty(h_out, h_in)) for h_in, h_out in zip(self.hidden[:-1], self.hidden[1:])
        )
        self.w_out = nn.Parameter(torch.empty(1, self.hidden[-1])) if self.hidden else None
        self.linear_out = nn.Linear(self.dim, 1)
        self.L = nn.Parameter(init_scale * torch.eye(self.dim)) if quadratic_head else None
        for lin in self.x_layers:
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.linear_out.weight)
        nn.init.zeros_(self.linear_out.bias)
        for w in list(self.z_weights) + ([self.w_out] if self.w_out is not None else []):
            with torch.no_grad():
                if positivity == "clamp":
                    w.copy_(torch.randn_like(w).abs() * init_std)
                else:  # softplus(θ)/fan_in with softplus(θ) ≈ init_std·fan_in
                    target = max(init_std * w.shape[1], 1e-3)
                    w.fill_(math.log(math.expm1(target)))

    # ------------------------------------------------------------------ convexity
    def positive(self, w: Tensor) -> Tensor:
        """The non-negative weight actually used: W (clamped by :meth:`convexify`) or softplus(θ)/fan_in."""
        if self.positivity == "softplus":
            return F.softplus(w) / w.shape[1]
        return w

    @torch.no_grad()
    def convexify(self) -> None:
        """Project the z-path weights onto W ≥ 0 (``clamp`` mode; a no-op with ``softplus``)."""
        if self.positivity != "clamp":
            return
        for w in self.z_weights:
            w.clamp_(min=0)
        if self.w_out is not None:
            self.w_out.clamp_(min=0)

    def is_convex_parametrisation(self) -> bool:
        """True when every z-path weight in use is ≥ 0 (always true for ``softplus``)."""
        ws = list(self.z_weights) + ([self.w_out] if self.w_out is not None else [])
        return all(bool((self.positive(w) >= 0).all()) for w in ws)

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: Tensor) -> Tensor:
        """ψ(x) for a batch ``(n, d)``, shape ``(n,)``."""
        out = self.linear_out(x).squeeze(-1)
        if self.hidden:
            z = None
            for i, lin in enumerate(self.x_layers):
                pre = lin(x)
                if self.quad is not None:
                    pre = pre + self.quad[i](x)
                if z is not None:
                    pre = pre + F.linear(z, self.positive(self.z_weights[i - 1]))
                z = self._act(pre)
            out = out + F.linear(z, self.positive(self.w_out)).squeeze(-1)
        if self.L is not None:
            out = out + 0.5 * (x @ self.L).pow(2).sum(-1)
        if self.strong_convexity > 0:
            out = out + 0.5 * self.strong_convexity * x.pow(2).sum(-1)
        return out

    def grad(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """∇ψ(x), shape ``(n, d)`` (the candidate transport map). Works under ``torch.no_grad()`` too."""
        return potential_grad(self, x, create_graph)

    def conjugate(self, y: Tensor, x0: Optional[Tensor] = None, **solver) -> tuple:
        """(ψ*(y), argmax x̂(y)) with ψ*(y) = sup_x ⟨x, y⟩ − ψ(x), by :func:`conjugate_argmax` (batched)."""
        x = conjugate_argmax(self, y, x0=x0, **solver)
        with torch.no_grad():
            return (x * y).sum(-1) - self(x), x


class QuadraticPotential(nn.Module):
    """The restricted class F = {ψ(x) = ½xᵀLLᵀx + bᵀx} (+ ½α|x|²): the Brenier potentials of affine maps.

    Over F, the Brenier semi-dual gives the Bures–Wasserstein distance of the moment-matched Gaussians
    (Taghvaei & Jalali's restricted class). ψ* is known in closed form, ∇ψ*(y) = (LLᵀ + αI)⁻¹(y − b), and
    :meth:`conjugate_map` uses it (exact; no inner loop).
    """

    def __init__(self, dim: int, strong_convexity: float = 1e-4, init_scale: float = 1.0):
        super().__init__()
        self.dim = int(dim)
        self.strong_convexity = float(strong_convexity)
        self.L = nn.Parameter(init_scale * torch.eye(self.dim))
        self.b = nn.Parameter(torch.zeros(self.dim))

    def matrix(self) -> Tensor:
        return self.L @ self.L.T + self.strong_convexity * torch.eye(self.dim, dtype=self.L.dtype,
                                                                     device=self.L.device)

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * (x @ self.L).pow(2).sum(-1) + 0.5 * self.strong_convexity * x.pow(2).sum(-1) + x @ self.b

    def grad(self, x: Tensor, create_graph: bool = False) -> Tensor:
        return x @ self.matrix() + self.b

    def conjugate_map(self, y: Tensor) -> Tensor:
        """∇ψ*(y) = (LLᵀ + αI)⁻¹(y − b), exact."""
        return torch.linalg.solve(self.matrix(), (y - self.b).T).T

    def convexify(self) -> None:  # always convex
        return None


def potential_grad(psi: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False) -> Tensor:
    """∇ψ(x) by autograd, batched: ∇_x Σ_i ψ(x_i) (rows are independent). Enables grad even under no_grad."""
    if isinstance(psi, QuadraticPotential):
        return psi.grad(x, create_graph)
    with torch.enable_grad():
        x_ = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(psi(x_).sum(), x_, create_graph=create_graph)
    return g if create_graph else g.detach()


def conjugate_argmax(
    psi: Callable[[Tensor], Tensor],
    y: Tensor,
    x0: Optional[Tensor] = None,
    max_iter: int = 50,
    tol: float = 1e-4,
    lr: float = 1.0,
    history_size: int = 10,
) -> Tensor:
    """x̂(y) = argmax_x ⟨x, y⟩ − ψ(x) for every row of ``y`` at once (vectorised over the batch).

    The rows decouple, so maximising Σ_i ⟨x_i, y_i⟩ − ψ(x_i) jointly is the same as solving each row; one
    L-BFGS run (strong-Wolfe line search) on the summed objective does all rows together — no Python loop
    over samples. Stops when max_i |y_i − ∇ψ(x_i)|_∞ ≤ ``tol`` (first-order optimality of every row) or after
    ``max_iter`` iterations. ``x0`` is a warm start (default: y itself, right for ψ near ½|x|²). Returns a
    detached tensor; the parameters of ψ receive no gradient.
    """
    if isinstance(psi, QuadraticPotential):
        with torch.no_grad():
            return psi.conjugate_map(y)
    y = y.detach()
    x = (y if x0 is None else x0).detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=lr, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=history_size, line_search_fn="strong_wolfe")

    def closure():
        with torch.enable_grad():
            loss = (psi(x) - (x * y).sum(-1)).sum()
            (g,) = torch.autograd.grad(loss, x)  # gradient w.r.t. x only: ψ's parameters are untouched
        x.grad = g
        return loss.detach()

    opt.step(closure)
    return x.detach()


def pretrain_identity(
    psi: nn.Module,
    std: float = 3.0,
    steps: int = 5000,
    lr: float = 1e-3,
    batch_size: int = 1024,
    tol: float = 1e-3,
    mean: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> float:
    """Fit ∇ψ(x) ≈ x on x ~ N(mean, std²I) (Korotin et al.'s ``train_identity_map``: "blow" = 3).

    Adam(lr) on E|∇ψ(x) − x|², convexifying after every step, until the relative error
    E|∇ψ(x) − x|² / (d·std²) is below ``tol`` or after ``steps`` steps. Returns the last relative error.
    With the ICNN's quadratic head at L = I the initial error is already small and this takes few steps.
    """
    d = psi.dim
    opt = torch.optim.Adam(psi.parameters(), lr=lr)
    loss_v = float("inf")
    dev = next(psi.parameters()).device
    for _ in range(int(steps)):
        x = torch.randn(batch_size, d, generator=generator).to(dev) * std
        if mean is not None:
            x = x + mean.to(dev)
        loss = (potential_grad(psi, x, create_graph=True) - x).pow(2).sum(-1).mean()
        loss_v = float(loss.detach()) / (d * std**2)
        if loss_v < tol:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hasattr(psi, "convexify"):
            psi.convexify()
    return loss_v

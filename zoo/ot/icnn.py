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
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ConfigError

__all__ = ["ICNN", "QuadraticPotential", "pretrain_identity", "conjugate_argmax", "potential_grad",
           "potential_grad_autograd"]

_ACTS = {
    "celu": F.celu,
    "softplus": F.softplus,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "relu": F.relu,
    "elu": F.elu,
}


class _ConvexQuadratic(nn.Module):
    """The matrix Q = [q_1 … q_h·r] of x ↦ Σ_k (q_kᵀx)² per output unit (rank ``rank``), a convex quadratic skip
    (DenseICNN); :meth:`ICNN._layers` evaluates it together with the layer's affine x-path."""

    def __init__(self, in_dim: int, out_dim: int, rank: int):
        super().__init__()
        self.rank = int(rank)
        self.q = nn.Parameter(torch.randn(in_dim, out_dim * self.rank) * 0.1 / math.sqrt(in_dim))


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
        return self._pass(x, with_grad=False)[0]

    def value_and_grad(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(ψ(x), ∇ψ(x)) for a batch ``(n, d)`` from one forward and one hand-written backward pass.

        With pre-activations a_l (so z_l = σ(a_l)), x-path matrices A_l, quadratic skips p_lk = Q_lkᵀx and the
        non-negative z-path weights W_l⁺, w⁺, the chain rule through the layers is

            δ_L = w⁺ ⊙ σ'(a_L),      δ_l = (δ_{l+1} W_l⁺) ⊙ σ'(a_l)                        (row vectors, per sample)
            ∇ψ(x) = Σ_l [ A_lᵀ δ_l + 2 Σ_k Q_lk (δ_l ⊙ p_lk) ] + a + LLᵀx + αx.

        Every term is an ordinary differentiable tensor expression (σ' included: CELU/ELU σ'(a) = 1 + min(z, 0),
        softplus σ' = sigmoid, (leaky) ReLU a step), so a loss of ∇ψ is differentiated by *one* first-order
        backward pass — no ``create_graph`` double backward. Equal to :func:`potential_grad_autograd` up to
        round-off (tests: 1e-6 in float64). The forward part is :meth:`forward`'s own pass.
        """
        return self._pass(x, with_grad=True)

    def _pass(self, x: Tensor, with_grad: bool) -> Tuple[Tensor, Optional[Tensor]]:
        """ψ(x), and ∇ψ(x) when ``with_grad`` (else ``None``): the forward of the module docstring's equations, the
        x-paths and quadratic skips of all layers as one matmul (their matrices side by side), then the backward
        of :meth:`value_and_grad`."""
        n = x.shape[0]
        value = self.linear_out(x).squeeze(-1)
        grad = self.linear_out.weight.expand(n, self.dim) if with_grad else None
        if self.hidden:
            h_tot = sum(self.hidden)
            # every layer's x-path Aₗᵀ and quadratic skip Qₗ side by side: C = [A₀ᵀ … A_Lᵀ | Q₀ … Q_L], (d, Σh(1 + r))
            cols = [lin.weight.t() for lin in self.x_layers] + ([q.q for q in self.quad] if self.quad is not None else [])
            C = torch.cat(cols, dim=1)
            bias = torch.cat([lin.bias for lin in self.x_layers])
            xc = x @ C
            xa = (xc[:, :h_tot] + bias).split(self.hidden, dim=1)
            if self.quad is not None:
                p = xc[:, h_tot:].reshape(n, h_tot, -1)  # p_lk = Q_lkᵀx, (n, Σh, r)
                quad = p.pow(2).sum(-1).split(self.hidden, dim=1)
            pres, zs, z = [], [], None
            for i in range(len(self.hidden)):
                pre = xa[i] if self.quad is None else xa[i] + quad[i]
                if z is not None:
                    pre = pre + z @ self.positive(self.z_weights[i - 1]).t()
                z = self._act(pre)
                pres.append(pre)
                zs.append(z)
            w_out = self.positive(self.w_out)
            value = value + (z @ w_out.t()).squeeze(-1)
            if with_grad:
                # backward through the layers: δ_L = w⁺ ⊙ σ'(a_L), δ_l = (δ_{l+1} W_l⁺) ⊙ σ'(a_l)
                delta = w_out * self._dact(pres[-1], zs[-1])
                deltas = [delta]
                for i in range(len(self.hidden) - 1, 0, -1):
                    delta = (delta @ self.positive(self.z_weights[i - 1])) * self._dact(pres[i - 1], zs[i - 1])
                    deltas.append(delta)
                deltas = deltas[::-1]  # layer order
                if self.quad is not None:
                    d_all = torch.cat(deltas, dim=1)
                    deltas = [d_all, (2.0 * d_all.unsqueeze(-1) * p).reshape(n, -1)]
                # Σ_l Aₗᵀδ_l + 2 Σ_lk Q_lk(δ_l ⊙ p_lk) as one product Δ Cᵀ, C kept (d, ·) row-major: with d small this
                # is the layout MKL multiplies fast (a row-major (·, d) right operand is ~5× slower), and the result
                # is a contiguous (n, d) that the next pass (∇ψ̄(∇ψ(x))) takes as its input
                grad = grad + torch.cat(deltas, dim=1) @ C.t()
        if self.L is not None:
            xl = x @ self.L
            value = value + 0.5 * xl.pow(2).sum(-1)
            if with_grad:
                grad = grad + xl @ self.L.t()
        if self.strong_convexity > 0:
            value = value + 0.5 * self.strong_convexity * x.pow(2).sum(-1)
            if with_grad:
                grad = grad + self.strong_convexity * x
        return value, grad

    def _dact(self, pre: Tensor, z: Tensor) -> Tensor:
        """σ'(a) as a differentiable expression of the pre-activation a and z = σ(a)."""
        if self.activation in ("celu", "elu"):  # σ(a) = a (a > 0), eᵃ − 1 (a ≤ 0): σ'(a) = 1 + min(z, 0)
            return 1.0 + z.clamp(max=0)
        if self.activation == "softplus":  # F.softplus is linear above its threshold 20: σ' = 1 there
            return torch.where(pre > 20, torch.ones_like(pre), torch.sigmoid(pre))
        if self.activation == "leaky_relu":  # slope 0.2 below 0 (as _ACTS)
            return (pre > 0).to(pre.dtype) * 0.8 + 0.2
        return (pre > 0).to(pre.dtype)  # relu

    def grad(self, x: Tensor, create_graph: bool = False) -> Tensor:
        """∇ψ(x), shape ``(n, d)`` (the candidate transport map), by :meth:`value_and_grad`.

        ``create_graph=False`` returns a detached tensor (computed without a graph); ``True`` keeps the graph to
        ψ's parameters and to ``x``. Works under ``torch.no_grad()`` too.
        """
        if not create_graph:
            with torch.no_grad():
                return self.value_and_grad(x.detach())[1]
        with torch.enable_grad():
            return self.value_and_grad(x)[1]

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
    """∇ψ(x), batched: ψ's own closed-form gradient where it has one (:class:`ICNN`, :class:`QuadraticPotential`),
    else autograd (:func:`potential_grad_autograd`). Works under ``torch.no_grad()`` too."""
    if isinstance(psi, (ICNN, QuadraticPotential)):
        return psi.grad(x, create_graph)
    return potential_grad_autograd(psi, x, create_graph)


def potential_grad_autograd(psi: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False) -> Tensor:
    """∇ψ(x) by autograd, batched: ∇_x Σ_i ψ(x_i) (rows are independent); ``create_graph`` keeps the graph for a
    double backward. The reference the closed form :meth:`ICNN.value_and_grad` is tested against."""
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
        if isinstance(psi, ICNN):  # ψ and ∇ψ in one pass, no graph (the closed form of ICNN.value_and_grad)
            with torch.no_grad():
                v, g = psi.value_and_grad(x)
                loss = (v - (x * y).sum(-1)).sum()
            x.grad = (g - y).contiguous()  # L-BFGS flattens with view()
            return loss
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

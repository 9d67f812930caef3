"""DualFlowGAN — GAN training as coupled ("dual") flows in metric spaces, after Turinici (arXiv 2012.10410).

Only the paper's abstract is confirmed (see ``docs/results/dual_flow/README.md``); the discretisation below is
the project's reading of it, built on standard metric gradient-flow theory (minimizing movements / JKO).

**The game.** G_θ pushes z ~ γ to the generated law μ_θ = (G_θ)#γ; ν is the data law. The payoff

    L(μ, D) = ∫ D dμ − ∫ D dν − R(D)

is minimised by the generator and maximised by the discriminator (R: gradient penalty or RKHS norm).

**The continuous dual flow** (time t, time-scale ratio r):

* μ_t follows the Wasserstein-2 gradient flow of L(·, D_t): particles move with velocity −∇D_t(x);
  for a parametric generator this becomes θ' = −∇_θ E_z D_t(G_θ(z));
* D_t ascends L(μ_t, ·) in its own metric, r times faster: φ' = r ∇_φ L (neural D) or, for the
  kernel / sliced families, D' = rλ (D*(μ_t) − D) — the RKHS gradient ascent of L, which relaxes D towards the
  best response D*(μ_t) (closed form in :mod:`zoo.ot.kernels`). With ``ratio_r: null`` (r = ∞) D = D*(μ_t)
  and the generator follows the gradient flow of the distance itself (energy distance / MMD² / SW²₂, over 2λ).

**Schemes** (step τ, n → n+1, ``flow/time`` = n·τ):

1. ``explicit`` — the simultaneous (Jacobi) Euler step, both players evaluated at (θ_n, D_n), plain SGD:
   θ_{n+1} = θ_n − τ ∇_θ E_z D_n(G_θn(z)),  φ_{n+1} = φ_n + rτ ∇_φ L(μ_n, D_φn)
   (kernel families: D_{n+1} = (1 − κ) D_n + κ D*(μ_n), κ = rλτ; stable only for κ < 2).
   ``optimizer: adam`` is available but discretises a different (preconditioned, momentum) flow.
2. ``implicit`` — the minimizing-movement (proximal) step from the frozen snapshots (θ_n, D_n):
   θ_{n+1} = argmin_θ E_z D_n(G_θ(z)) + E_z|G_θ(z) − G_θn(z)|² / (2τ)    (``prox_metric: w2``; the penalty is
   the W2² of the coupling (G_θ, G_θn)#γ, an upper bound of W2²(μ_θ, μ_θn)), or + |θ − θ_n|²/(2τ)
   (``prox_metric: param``); φ_{n+1} = argmax_φ L(μ_n, D_φ) − |φ − φ_n|²/(2rτ) (neural D), or, exactly,
   D_{n+1} = (D_n + κ D*(μ_n)) / (1 + κ) (kernel families, unconditionally stable).
   Each argmin is solved by K = ``inner_steps`` relaxed gradient steps of size η = ι τ/(ι + τ) on the prox
   objective (ι = ``inner_lr``, default τ), capped for the w2 penalty at η ≤ 0.8 τ / λ_max(E_z J_zᵀJ_z) (power
   iteration, :meth:`DualFlowGAN.pushforward_curvature`) so the penalty part stays a contraction: as τ → ∞
   this is K plain steps of size ι on the unregularised objective; as τ → 0 the step leaves θ_n unchanged.
   The snapshot of θ_n is a list of detached tensors in a plain attribute (never a registered parameter, so
   DDP does not see it); G_θn(z) enters only through its detached outputs on the step's latent batch.

**Generators.** ``mlp`` (z ~ N(0, I)), or ``particles``: a table of N points (z is an index), with its
learning rates multiplied by N so that the parameter metric is the W2 metric (1/N)Σ|dx_i|² — then the explicit
step is exactly the Euler step x_i ← x_i − τ∇D_n(x_i) of the particle flow (used by experiment C3).

Algorithm of one ``flow_step`` (one real batch, one generator update):

    z ← latents; x_n ← G_θn(z) (detached)                 # μ_n
    generator update against D_n                          # explicit SGD step or K prox steps
    discriminator update against μ_n (x_n) and ν (real)   # explicit / implicit step: D_n → D_{n+1}
    (r = ∞: D_n = D*(μ_n) is set first, then the generator moves against it)
    gen_step += 1; log flow/time = gen_step·τ

**DDP** (W processes, batch B each ≙ one process with batch WB; ``tests/test_ddp_parity.py``). Losses that are
means over the batch need nothing beyond DDP's gradient all-reduce. The rest is computed over the global batch:
the kernel / sliced best response D*(μ_n) is built from the all-gathered fake and real batches (so D_n, kept in
the plain-attribute memory, is the same on every rank), the sliced projections are rank 0's, the gradient
penalty pairs real and fake rows of the global batch (rank 0's permutation), and the curvature estimate that caps
the implicit step averages the ranks' Jacobian products (so every rank uses the same step size).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from zoo import nets
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.ot.kernels import energy_distance, gaussian_mmd2, random_projections, sliced_potential_grad
from zoo.ot.kernels import sliced_w2_squared, witness, witness_grad
from zoo.registry import register_model

__all__ = ["DualFlowGAN", "ParticleGenerator", "relaxed_prox_lr"]

_DISCRIMINATORS = ("mlp", "energy", "gaussian", "sliced")
_SCHEMES = ("explicit", "implicit")
_PROX = ("w2", "param")
_OPTIMIZERS = ("sgd", "adam")
_GENERATORS = ("mlp", "particles")


def relaxed_prox_lr(inner_lr: float, tau: float) -> float:
    """η = ι τ / (ι + τ): the inner step for min f(θ) + P(θ)/(2τ), with P the prox penalty (P = 0 at θ_n).

    One gradient step of size η on f + |θ − θ_n|²/(2τ) is θ ← θ − η∇f(θ) − (η/τ)(θ − θ_n), with η/τ < 1,
    so the penalty part is a convex combination with θ_n: τ → ∞ gives plain steps of size ι, τ → 0 gives θ_n.
    """
    if math.isinf(tau):
        return float(inner_lr)
    return float(inner_lr) * float(tau) / (float(inner_lr) + float(tau))


class ParticleGenerator(nn.Module):
    """A non-parametric generator: N learnable points; the latent code is an index in [0, N)."""

    def __init__(self, n: int, dim: int, init_std: float = 1.0):
        super().__init__()
        self.points = nn.Parameter(init_std * torch.randn(n, dim))

    def forward(self, idx: Tensor) -> Tensor:
        return self.points[idx.long()]


@register_model("dual_flow")
class DualFlowGAN(GANModule):
    """Dual-metric-flow GAN (see the module docstring for the equations).

    Args:
        discriminator: ``mlp`` (neural, WGAN-type payoff with gradient penalty), or a best-response family:
            ``energy`` (Radon–Sobolev / energy kernel −|x − y|), ``gaussian`` (σ = ``sigma``), ``sliced``
            (sliced W2 with ``n_projections`` directions redrawn every step).
        scheme: ``explicit`` (simultaneous Jacobi step) or ``implicit`` (proximal / minimizing movement).
        tau: flow time step τ (the generator's SGD learning rate in the explicit scheme).
        ratio_r: discriminator / generator time-scale ratio r; ``null`` = ∞ (D at its best response every
            step; kernel and sliced families only).
        inner_steps: K, inner gradient steps per implicit step.
        inner_lr: ι, inner step scale of the implicit scheme (default τ); the discriminator's is r·ι.
        prox_metric: ``w2`` (E|G_θ(z) − G_θn(z)|²) or ``param`` (|θ − θ_n|²) for the generator's prox term.
        lambda_reg: λ, RKHS / best-response weight: D* = w/λ (kernels) and ∇D* = sliced gradient/λ.
        gp_weight: gradient-penalty weight of the ``mlp`` discriminator: R(D) = gp·E(|∇D(x̂)| − 1)².
        gp_random: draw the interpolation points x̂ afresh each call (WGAN-GP); ``false`` fixes the pairing
            and the mixing weights (seed 0), so the discriminator's vector field is deterministic given the
            batches — for studies of the small-step limit.
        sigma: Gaussian kernel bandwidth.
        n_projections: directions of the sliced family.
        memory: at most this many past best responses D*(μ_j) are kept to represent D_n for finite r (kernel
            and sliced families); the oldest term's weight is folded into the next-oldest one (total weight
            kept; an approximation once (1 − κ)^memory or (1 + κ)^−memory is not small).
        optimizer: ``sgd`` (plain, no momentum: the default, it discretises the flow) or ``adam`` (explicit
            scheme only).
        betas: Adam betas.
        horizon: flow horizon T; sets ``max_gen_steps = ceil(T/τ)``.
        generator: ``mlp`` or ``particles`` (N = ``n_particles`` points, full batch every step).
        n_particles: number of particles of the particle generator.
        latent_dim, hidden, d_hidden: MLP generator latent size and widths; discriminator widths (default
            ``hidden``).
    """

    def __init__(
        self,
        discriminator: str = "mlp",
        scheme: str = "explicit",
        tau: float = 0.01,
        ratio_r: Optional[float] = 1.0,
        inner_steps: int = 10,
        inner_lr: Optional[float] = None,
        prox_metric: str = "w2",
        lambda_reg: float = 1.0,
        gp_weight: float = 1.0,
        gp_random: bool = True,
        sigma: float = 0.5,
        n_projections: int = 64,
        memory: int = 8,
        optimizer: str = "sgd",
        betas: Tuple[float, float] = (0.5, 0.999),
        horizon: Optional[float] = None,
        generator: str = "mlp",
        n_particles: int = 512,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        d_hidden: Optional[Sequence[int]] = None,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        _check(discriminator in _DISCRIMINATORS,
               f"discriminator must be one of {_DISCRIMINATORS}, got {discriminator!r}")
        _check(scheme in _SCHEMES, f"scheme must be one of {_SCHEMES}, got {scheme!r}")
        _check(prox_metric in _PROX, f"prox_metric must be one of {_PROX}, got {prox_metric!r}")
        _check(optimizer in _OPTIMIZERS, f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
        _check(generator in _GENERATORS, f"generator must be one of {_GENERATORS}, got {generator!r}")
        _check(tau > 0 and math.isfinite(tau), f"tau must be a positive finite time step, got {tau}")
        _check(ratio_r is None or ratio_r > 0, f"ratio_r must be positive (or null for r = ∞), got {ratio_r}")
        _check(not (ratio_r is None and discriminator == "mlp"),
               "ratio_r: null (best response) needs a closed-form discriminator: use discriminator energy, "
               "gaussian or sliced, or give a finite ratio_r")
        _check(inner_steps >= 1, f"inner_steps must be >= 1, got {inner_steps}")
        _check(inner_lr is None or inner_lr > 0, f"inner_lr must be positive, got {inner_lr}")
        _check(lambda_reg > 0 and sigma > 0, "lambda_reg and sigma must be positive")
        _check(gp_weight >= 0, f"gp_weight must be >= 0, got {gp_weight}")
        _check(n_projections >= 1 and memory >= 1 and n_particles >= 2,
               "n_projections, memory must be >= 1 and n_particles >= 2")
        _check(not (scheme == "implicit" and optimizer == "adam"),
               "the implicit scheme's inner solver is plain gradient descent: use optimizer: sgd")
        if horizon is not None:
            _check(horizon > 0, f"horizon must be positive, got {horizon}")
            steps = int(math.ceil(horizon / tau - 1e-9))
            _check(max_gen_steps is None or max_gen_steps == steps,
                   f"horizon {horizon} / tau {tau} gives {steps} steps but max_gen_steps is {max_gen_steps}: "
                   "set only one of them")
            max_gen_steps = steps
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        self.save_hyperparameters()
        self.tau = float(tau)
        self.r = math.inf if ratio_r is None else float(ratio_r)
        # D_n for the closed-form families: D_n = Σ_j c_j D*[x_j, y_j] (plain attribute, not a parameter).
        self._memory: List[Tuple[Tensor, Tensor, Tensor, float]] = []
        self._snapshot: List[Tensor] = []  # θ_n / φ_n for the param prox (detached, requires_grad=False)
        self._standalone_opts: Optional[list] = None
        self._power_vec: Optional[Tuple[Tensor, ...]] = None  # power-iteration state (plain attribute)

    # ------------------------------------------------------------------ networks
    def check_data_shape(self, data_shape: Tuple[int, ...]) -> None:
        if self.hparams.generator == "particles" and len(data_shape) != 1:
            raise ConfigError(f"generator: particles needs vector data, got shape {data_shape}: use generator: mlp")
        if self.hparams.discriminator == "sliced" and len(data_shape) != 1:
            raise ConfigError("discriminator: sliced is implemented for vector data: use energy, gaussian or mlp")

    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        if hp.generator == "particles":
            self.generator = ParticleGenerator(hp.n_particles, int(math.prod(data_shape)))
        else:
            self.generator = nets.make_generator(hp.latent_dim, data_shape, hp.hidden)
        if hp.discriminator == "mlp":
            self.discriminator = nets.make_discriminator(data_shape, hp.d_hidden or hp.hidden, act="leaky_relu")

    @property
    def _g_scale(self) -> float:
        """Learning-rate factor of the generator: N for particles (W2 metric), 1 for an MLP."""
        return float(self.hparams.n_particles) if self.hparams.generator == "particles" else 1.0

    def configure_optimizers(self):
        hp = self.hparams
        g_lr = self.tau * self._g_scale
        d_lr = self.r * self.tau
        if hp.optimizer == "adam":
            mk = lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=tuple(hp.betas))  # noqa: E731
        else:
            mk = lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.0)  # noqa: E731
        opts = [mk(self.generator.parameters(), g_lr)]
        if hp.discriminator == "mlp":
            opts.append(mk(self.discriminator.parameters(), d_lr))
        return opts

    def _opts(self) -> list:
        """The optimizers (Lightning's when a Trainer is attached, else private ones for direct use)."""
        if self._trainer is not None:
            opts = self.optimizers()
            return list(opts) if isinstance(opts, (list, tuple)) else [opts]
        if self._standalone_opts is None:
            self.ensure_built()
            self._standalone_opts = self.configure_optimizers()
        return self._standalone_opts

    def _backward(self, loss: Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    # ------------------------------------------------------------------ latents
    def sample_latent(self, n: int) -> Tensor:
        if self.hparams.generator == "particles":
            return torch.randint(self.hparams.n_particles, (n,), device=self.device)
        return super().sample_latent(n)

    def flow_latents(self, batch_size: int) -> Tensor:
        """Latents of one flow step: every particle (particle generator) or ``batch_size`` draws of N(0, I)."""
        if self.hparams.generator == "particles":
            return torch.arange(self.hparams.n_particles, device=self.device)
        return self.sample_latent(batch_size)

    # ------------------------------------------------------------------ the discriminator D_n
    def best_response_grad(self, q: Tensor, fake: Tensor, real: Tensor, projections: Optional[Tensor] = None) -> Tensor:
        """∇D*(q) of the closed-form family for μ = fake, ν = real: ∇w/λ (kernels) or the sliced gradient/λ."""
        hp = self.hparams
        if hp.discriminator == "sliced":
            return sliced_potential_grad(q, fake, real, projections) / hp.lambda_reg
        return witness_grad(q, fake, real, hp.discriminator, hp.sigma) / hp.lambda_reg

    def d_grad(self, q: Tensor) -> Tensor:
        """∇D_n(q) for the closed-form families: Σ_j c_j ∇D*[x_j, y_j](q) over the memory (0 if empty).

        Kernels are linear in the measure, so the memory is summed as one weighted cloud: D_n is the witness
        of the signed measure Σ_j c_j (μ_j − ν_j), divided by λ.
        """
        if not self._memory:
            return torch.zeros_like(q)
        hp = self.hparams
        if hp.discriminator == "sliced":
            out = torch.zeros_like(q)
            for fake, real, proj, c in self._memory:
                out = out + c * self.best_response_grad(q, fake, real, proj)
            return out
        x, y, wx, wy = self._memory_cloud()
        return witness_grad(q, x, y, hp.discriminator, hp.sigma, wx, wy) / hp.lambda_reg

    def _memory_cloud(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        xs, ys, wxs, wys = [], [], [], []
        for fake, real, _, c in self._memory:
            xs.append(fake)
            ys.append(real)
            wxs.append(fake.new_full((fake.shape[0],), c / fake.shape[0]))
            wys.append(real.new_full((real.shape[0],), c / real.shape[0]))
        return torch.cat(xs), torch.cat(ys), torch.cat(wxs), torch.cat(wys)

    def d_value(self, q: Tensor) -> Optional[Tensor]:
        """D_n(q) for the kernel families (Σ_j c_j w_j(q)/λ); ``None`` for ``sliced`` (only ∇D is used)."""
        hp = self.hparams
        if hp.discriminator == "mlp":
            return self.discriminator(q)
        if hp.discriminator == "sliced":
            return None
        if not self._memory:
            return q.new_zeros(q.shape[0])
        x, y, wx, wy = self._memory_cloud()
        return witness(q, x, y, hp.discriminator, hp.sigma, wx, wy) / hp.lambda_reg

    def generator_objective(self, x: Tensor) -> Tensor:
        """A loss whose θ-gradient is ∇_θ E_z D_n(G_θ(z)): D(x).mean() (mlp) or ⟨x, ∇D_n(x)⟩ (∇D_n detached)."""
        if self.hparams.discriminator == "mlp":
            return self.discriminator(x).mean()
        flat = x.reshape(x.shape[0], -1)
        return (flat * self.d_grad(flat.detach())).sum(1).mean()

    def discriminator_payoff(self, fake: Tensor, real: Tensor) -> Tensor:
        """L(μ, D_φ) = E D(fake) − E D(real) − gp·E(|∇D(x̂)| − 1)², x̂ on segments between random pairs.

        The pairs are those of the global batch: real row i (of the m = min(#fake, #real) first rows) with fake row
        π(i), π a random permutation (``gp_random``) or the identity. Under DDP the fakes are all-gathered (they
        carry no gradient) and π is rank 0's, each rank takes the pairs of its own real rows and scales its sum by
        W/m, so the ranks' averaged payoff gradient is the single process's over the global batch.
        """
        d = self.discriminator
        payoff = d(fake).mean() - d(real).mean()
        if self.hparams.gp_weight > 0:
            world = self.trainer.world_size if self._distributed() else 1
            all_real_n, offset = real.shape[0] * world, self.global_rank * real.shape[0] if world > 1 else 0
            # particles: every rank holds the same fakes (all N particles); mlp: fresh local fakes, gathered
            fakes = fake if world == 1 or self.hparams.generator == "particles" else self._gather_rows(fake.detach())
            m = min(fakes.shape[0], all_real_n)
            n_loc = max(0, min(m - offset, real.shape[0]))  # this rank's real rows that are paired
            shape = (n_loc, *([1] * (real.dim() - 1)))
            if self.hparams.gp_random:
                perm = torch.randperm(fakes.shape[0], device=fake.device)
                if world > 1:
                    perm = self.trainer.strategy.broadcast(perm, 0)
                f = fakes[perm[offset:offset + n_loc]]
                eps = torch.rand(shape, device=real.device, dtype=real.dtype)
            else:
                f = fakes[offset:offset + n_loc]
                eps = torch.rand((m, *shape[1:]), generator=torch.Generator().manual_seed(0))
                eps = eps[offset:offset + n_loc].to(real)
            xh = (eps * real[:n_loc] + (1 - eps) * f).requires_grad_(True)
            (g,) = torch.autograd.grad(d(xh).sum(), xh, create_graph=True)
            gap = (g.reshape(n_loc, -1).norm(dim=1) - 1).pow(2)
            pen = gap.mean() if world == 1 else gap.sum() * (world / m)
            payoff = payoff - self.hparams.gp_weight * pen
        return payoff

    # ------------------------------------------------------------------ one step of the dual flow
    def train_batch(self, real: Tensor) -> Dict[str, Tensor]:
        logs = self.flow_step(real)
        self.count_batch()
        return logs

    def flow_step(self, real: Tensor, z: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """One step n → n+1 of the chosen scheme (simultaneous: both players see (θ_n, D_n)); see module doc.

        ``z`` fixes the latent batch (default: :meth:`flow_latents`), e.g. for deterministic full-batch flows.
        """
        self.ensure_built()
        z = self.flow_latents(real.shape[0]) if z is None else z
        with torch.no_grad():
            fake_n = self.generate(z).detach()  # samples of μ_n = (G_θn)#γ
        flat_fake, flat_real = fake_n.reshape(fake_n.shape[0], -1), real.reshape(real.shape[0], -1)
        if math.isinf(self.r):  # D_n = D*(μ_n) is a constraint, not a state: set it first
            logs = self.discriminator_update(flat_fake, flat_real)
            logs.update(self.generator_update(z, fake_n))
        else:  # Jacobi: the generator sees D_n, the discriminator sees μ_n
            logs = self.generator_update(z, fake_n)
            logs.update(self.discriminator_update(flat_fake, flat_real))
        self.count_gen_step()
        logs["flow/time"] = torch.tensor(self.gen_step * self.tau)
        return logs

    def generator_update(self, z: Tensor, fake_n: Tensor) -> Dict[str, Tensor]:
        """θ_n → θ_{n+1} against the frozen D_n: one SGD step (explicit) or a proximal step (implicit)."""
        opt_g = self._opts()[0]
        if self.hparams.scheme == "explicit":
            loss = self.generator_objective(self.generate(z))
            opt_g.zero_grad(set_to_none=True)
            self._backward(loss)
            opt_g.step()
            return {"loss/g": loss.detach()}
        return {"loss/g": self.proximal_generator_step(z, fake_n, self.tau)}

    def proximal_generator_step(self, z: Tensor, fake_n: Tensor, tau: float) -> Tensor:
        """θ_{n+1} ≈ argmin_θ E_z D_n(G_θ(z)) + P(θ)/(2τ) by K relaxed gradient steps (:func:`relaxed_prox_lr`).

        P(θ) = E_z|G_θ(z) − G_θn(z)|² (``w2``, with ``fake_n`` = G_θn(z) detached) or |θ − θ_n|² (``param``).
        ``tau`` may be ``math.inf`` (no penalty). Returns the last prox objective (detached).
        """
        hp = self.hparams
        opt_g = self._opts()[0]
        params = [p for p in self.generator.parameters() if p.requires_grad]
        self._snapshot = [p.detach().clone() for p in params] if hp.prox_metric == "param" else []
        lr = relaxed_prox_lr(hp.inner_lr or self.tau, tau)
        if hp.prox_metric == "w2" and hp.generator == "mlp" and not math.isinf(tau):
            # the penalty's curvature is E_z J^T J (J = ∂G_θ(z)/∂θ), not I: keep (η/τ)·λ_max(E J^T J) ≤ 0.8
            lr = min(lr, 0.8 * tau / self.pushforward_curvature(z))
        lr *= self._g_scale
        for group in opt_g.param_groups:
            group["lr"] = lr
        for _ in range(int(hp.inner_steps)):
            x = self.generate(z)
            obj = self.generator_objective(x)
            if not math.isinf(tau):
                if hp.prox_metric == "w2":
                    pen = (x - fake_n).reshape(x.shape[0], -1).pow(2).sum(1).mean()
                else:
                    pen = sum((p - p0).pow(2).sum() for p, p0 in zip(params, self._snapshot))
                obj = obj + pen / (2 * tau)
            opt_g.zero_grad(set_to_none=True)
            self._backward(obj)
            opt_g.step()
        self._snapshot = []
        return obj.detach()

    @torch.no_grad()
    def pushforward_curvature(self, z: Tensor, iters: int = 3) -> float:
        """λ_max(E_z J_zᵀ J_z), J_z = ∂G_θ(z)/∂θ: the curvature of the w2 prox penalty E_z|G_θ(z) − G_θn(z)|²/2.

        Power iteration with Jacobian-vector / vector-Jacobian products (``torch.func``), warm-started from the
        previous step's vector (kept in a plain attribute, never a parameter); ``iters`` products per call.
        """
        from torch.func import functional_call, jvp, vjp

        gen = self.generator
        names = [n for n, p in gen.named_parameters() if p.requires_grad]
        params = tuple(p.detach() for n, p in gen.named_parameters() if p.requires_grad)
        f = lambda *ps: functional_call(gen, dict(zip(names, ps)), (z,))  # noqa: E731
        v = self._power_vec
        if v is None or len(v) != len(params) or any(a.shape != b.shape for a, b in zip(v, params)):
            g = torch.Generator(device="cpu").manual_seed(0)
            v = tuple(torch.randn(p.shape, generator=g).to(p) for p in params)
        lam = 0.0
        for _ in range(int(iters)):
            norm = torch.sqrt(sum((a * a).sum() for a in v)).clamp_min(1e-30)
            v = tuple(a / norm for a in v)
            with torch.enable_grad():
                _, jv = jvp(f, params, v)
                _, pull = vjp(f, *params)
                v = pull(jv / z.shape[0])
            if self._distributed():  # E_z over the global batch: average the ranks' products (identical λ, lr)
                flat = self.trainer.strategy.reduce(torch.cat([a.reshape(-1) for a in v]), reduce_op="mean")
                v = tuple(c.view_as(a) for c, a in zip(flat.split([a.numel() for a in v]), v))
            lam = float(torch.sqrt(sum((a * a).sum() for a in v)))
        self._power_vec = tuple(a.detach() for a in v)
        return max(lam, 1e-12)

    def discriminator_update(self, fake_n: Tensor, real: Tensor) -> Dict[str, Tensor]:
        """D_n → D_{n+1} against μ_n (``fake_n``) and ν (``real``)."""
        hp = self.hparams
        if hp.discriminator != "mlp":
            return self._closed_form_update(fake_n, real)
        opt_d = self._opts()[1]
        if hp.scheme == "explicit":
            payoff = self.discriminator_payoff(fake_n, real)
            opt_d.zero_grad(set_to_none=True)
            self._backward(-payoff)
            opt_d.step()
            return {"loss/d": payoff.detach()}
        # implicit: φ_{n+1} ≈ argmax L(μ_n, D_φ) − |φ − φ_n|²/(2rτ), K relaxed ascent steps
        params = [p for p in self.discriminator.parameters() if p.requires_grad]
        snap = [p.detach().clone() for p in params]
        rt = self.r * self.tau
        for group in opt_d.param_groups:
            group["lr"] = relaxed_prox_lr(self.r * (hp.inner_lr or self.tau), rt)
        for _ in range(int(hp.inner_steps)):
            payoff = self.discriminator_payoff(fake_n, real)
            pen = sum((p - p0).pow(2).sum() for p, p0 in zip(params, snap))
            opt_d.zero_grad(set_to_none=True)
            self._backward(-payoff + pen / (2 * rt))
            opt_d.step()
        return {"loss/d": payoff.detach()}

    def _closed_form_update(self, fake_n: Tensor, real: Tensor) -> Dict[str, Tensor]:
        """D_{n+1} = (1−κ)D_n + κD*(μ_n) (explicit), (D_n + κD*(μ_n))/(1+κ) (implicit), D*(μ_n) (r = ∞)."""
        hp = self.hparams
        proj = None
        if hp.discriminator == "sliced":
            proj = random_projections(hp.n_projections, fake_n.shape[1], dtype=fake_n.dtype).to(fake_n.device)
            if self._distributed():
                proj = self.trainer.strategy.broadcast(proj, 0)
        if self._distributed():  # D*(μ_n) of the global batch: the same D_n on every rank, as in one process
            if hp.generator != "particles":  # (particles: every rank already holds all of them)
                fake_n = self._gather_rows(fake_n)
            real = self._gather_rows(real)
        entry = (fake_n, real.detach(), proj)
        if math.isinf(self.r):
            self._memory = [(*entry, 1.0)]
        else:
            kappa = self.r * hp.lambda_reg * self.tau
            keep, new = (1.0 - kappa, kappa) if hp.scheme == "explicit" else (1 / (1 + kappa), kappa / (1 + kappa))
            mem = [(f, y, p, c * keep) for f, y, p, c in self._memory]
            while mem and len(mem) >= int(hp.memory):  # fold the oldest term into the next one (weight kept)
                if len(mem) >= 2:
                    mem = [(*mem[1][:3], mem[0][3] + mem[1][3])] + mem[2:]
                else:
                    new, mem = new + mem[0][3], []
            self._memory = mem + [(*entry, new)]
        logs = {"flow/distance": self.batch_distance(fake_n, real, proj),
                "flow/d_memory": torch.tensor(float(len(self._memory)))}
        logs["flow/d_coef_abs"] = torch.tensor(float(sum(abs(c) for *_, c in self._memory)))
        return logs

    @torch.no_grad()
    def batch_distance(self, fake: Tensor, real: Tensor, projections: Optional[Tensor] = None) -> Tensor:
        """The family's distance between the batches: ED (energy), MMD² (gaussian), SW²₂ (sliced, m = min size)."""
        hp = self.hparams
        if hp.discriminator == "gaussian":
            return gaussian_mmd2(fake, real, hp.sigma)
        if hp.discriminator == "sliced":
            m = min(fake.shape[0], real.shape[0])
            return sliced_w2_squared(fake[:m], real[:m], projections)
        return energy_distance(fake, real)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["dual_flow_memory"] = [(f.cpu(), y.cpu(), None if p is None else p.cpu(), c)
                                          for f, y, p, c in self._memory]
        # the curvature power iteration's warm start (so a resumed implicit run takes the same steps)
        checkpoint["dual_flow_power_vec"] = None if self._power_vec is None else [v.cpu() for v in self._power_vec]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        dev = self.device
        self._memory = [(f.to(dev), y.to(dev), None if p is None else p.to(dev), c)
                        for f, y, p, c in checkpoint.get("dual_flow_memory", [])]
        vec = checkpoint.get("dual_flow_power_vec")
        self._power_vec = None if vec is None else tuple(v.to(dev) for v in vec)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

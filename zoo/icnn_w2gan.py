"""ICNN W2-GAN — a generator trained against the Wasserstein-2 distance computed by convex potentials.

The modular design of Taghvaei & Jalali (2019), with the W2 solvers of :mod:`zoo.ot.w2`:

* **discriminator** = the Brenier potentials between the generated law G♯N(0, I) (source) and the data
  (target), input-convex networks (:class:`zoo.ot.ICNN`, convexity enforced exactly). One discriminator step
  is one step of the chosen W2 solver on a generated and a real batch:
    - ``solver="w2gn"`` (Korotin et al.): ψ (fake → real) and ψ̄ (real → fake),
      minimise E ψ(x) − E ψ(sg[∇ψ̄(y)]) + λ(E|∇ψ(∇ψ̄(y)) − y|² + E|∇ψ̄(∇ψ(x)) − x|²);
    - ``solver="minimax"`` (Makkuva et al.): K steps on g = ψ minimising E_x[f(∇g(x)) − ⟨∇g(x), x⟩],
      then one step on f = ψ̄ minimising E_y f(y) − E_x f(sg[∇g(x)]);
    - ``solver="restricted"`` (Taghvaei & Jalali): ψ alone, conjugate argmax x̂(y) by batched L-BFGS,
      minimise E ψ(x) − E ψ(sg[x̂(y)]).
  The logged ``w2/estimate`` is W2²(G♯N, data) with cost |x − y|² (no ½):
  2(½E|x|² + ½E|y|² − E ψ(x) − E[⟨x̂(y), y⟩ − ψ(x̂(y))]), x̂(y) = ∇ψ̄(y) or the inner solution.
* **generator** — by the envelope theorem, ∇_θ ½W2²(G_θ♯N, Q) = E_z[J_θG(z)ᵀ(G(z) − ∇ψ(G(z)))], so the
  generator step minimises ½ E_z |G(z) − sg[∇ψ(G(z))]|² (a regression onto the transported points).
* **composite sampler** — with ``composite_sample=True``, ``sample()`` returns ∇ψ(G(z)): the generator followed
  by the fitted OT map (Taghvaei & Jalali's composite generator). ``sample(n, composite=...)`` overrides it.

Data are vectors ``(d,)`` or images flattened to vectors (``(C, H, W)`` in [-1, 1]: the generator ends in tanh,
composite samples are clamped to [-1, 1]). The potentials work on x/s, with s the RMS norm per coordinate
of the first real batch (a buffer): ∇ψ(x) = s ∇ψ_c(x/s), exact for Brenier maps.

**Cost of a step.** ∇ψ comes from the ICNN's closed-form gradient (:meth:`zoo.ot.ICNN.value_and_grad`: one forward
and one hand-written backward through the layers), so the W2GN loss needs one first-order backward instead of
autograd's ``create_graph`` double backward; ``compile=True`` also hands the W2GN loss to ``torch.compile`` (one
compilation, ~20–35 s on a CPU, then ~2× faster again; falls back to eager with one warning where it cannot
build). docs/PERFORMANCE.md, "ICNN W2-GAN per generator step", has the measurements.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from zoo import nets
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.ot import w2 as _w2
from zoo.ot.icnn import ICNN, conjugate_argmax, potential_grad, pretrain_identity
from zoo.ot.w2 import default_hidden, minimax_losses, restricted_loss
from zoo.registry import register_model

_SOLVERS = ("w2gn", "minimax", "restricted")


class _Tanh(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.net(z))


@register_model("icnn_w2")
class ICNNW2GAN(GANModule):
    """Generator + ICNN Brenier potentials (W2 discriminator); see the module docstring.

    Args:
        latent_dim: dimension of z ~ N(0, I).
        hidden: generator MLP widths.
        icnn_hidden: ICNN widths (default [max(2d,64), max(2d,64), max(d,32)]).
        solver: ``w2gn`` (default), ``minimax`` or ``restricted``.
        cycle: W2GN cycle weight λ (default d).
        inner_steps: minimax g-steps per f-step.
        n_dis: discriminator (solver) steps per generator step.
        lr_g, lr_d, betas: Adam settings of generator and potentials.
        strong_convexity, positivity, activation: ICNN options (:class:`zoo.ot.ICNN`).
        pretrain_steps: maximum identity pre-training steps of each potential at build (0: none).
        composite_sample: ``sample()`` returns ∇ψ(G(z)) instead of G(z).
        conj_max_iter: L-BFGS iterations of the conjugate solve (``restricted``).
        compile: evaluate the ``w2gn`` loss through ``torch.compile`` (pays on long runs: it costs one compilation
            of ~20–35 s on a CPU; eager where it cannot build, with a warning). Same arithmetic either way.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        icnn_hidden: Optional[Sequence[int]] = None,
        solver: str = "w2gn",
        cycle: Optional[float] = None,
        inner_steps: int = 5,
        n_dis: int = 5,
        lr_g: float = 1e-3,
        lr_d: float = 1e-3,
        betas: Tuple[float, float] = (0.5, 0.9),
        strong_convexity: float = 1e-4,
        positivity: str = "clamp",
        activation: str = "celu",
        pretrain_steps: int = 500,
        composite_sample: bool = False,
        conj_max_iter: int = 30,
        compile: bool = False,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        if solver not in _SOLVERS:
            raise ConfigError(f"unknown solver {solver!r}: use one of {', '.join(_SOLVERS)}")
        if n_dis < 1 or inner_steps < 1:
            raise ConfigError("n_dis and inner_steps must be >= 1")
        if positivity not in ("clamp", "softplus"):
            raise ConfigError(f"positivity must be 'clamp' or 'softplus', got {positivity!r}")
        self.save_hyperparameters()
        self.n_dis = int(n_dis)

    # ------------------------------------------------------------------ networks
    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        d = int(math.prod(data_shape))
        self.dim = d
        self.is_image = nets.is_image_shape(data_shape)
        gen = nets.mlp(hp.latent_dim, d, hp.hidden, act="relu")
        self.generator = _Tanh(gen) if self.is_image else gen
        widths = list(hp.icnn_hidden) if hp.icnn_hidden is not None else default_hidden(d)
        kw = dict(hidden=widths, strong_convexity=hp.strong_convexity, positivity=hp.positivity,
                  activation=hp.activation)
        self.psi = ICNN(d, **kw)  # source (generated) potential: ∇ψ maps fake → real
        self.psi_bar = ICNN(d, **kw) if hp.solver in ("w2gn", "minimax") else None  # real → fake
        if hp.pretrain_steps > 0:
            for net in (self.psi, self.psi_bar):
                if net is not None:
                    pretrain_identity(net, std=3.0, steps=int(hp.pretrain_steps), batch_size=512)
        self.register_buffer("data_scale", torch.zeros(()))  # s, set from the first real batch

    @property
    def cycle(self) -> float:
        return float(self.hparams.cycle if self.hparams.cycle is not None else self.dim)

    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(hp.betas)
        fused = dict(fused=True) if self.device.type in ("cpu", "cuda") else {}  # one kernel per step, same Adam
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=betas, **fused)
        if hp.solver == "w2gn":  # ψ and ψ̄ minimise one loss with one step: one Adam over both (the same Adam)
            both = [{"params": self.psi.parameters()}, {"params": self.psi_bar.parameters()}]
            return [opt_g, torch.optim.Adam(both, lr=hp.lr_d, betas=betas, **fused)]
        opts = [opt_g, torch.optim.Adam(self.psi.parameters(), lr=hp.lr_d, betas=betas, **fused)]
        if self.psi_bar is not None:  # minimax: f = ψ̄ has its own step after g = ψ's K steps
            opts.append(torch.optim.Adam(self.psi_bar.parameters(), lr=hp.lr_d, betas=betas, **fused))
        return opts

    # ------------------------------------------------------------------ maps
    def generate(self, z: Tensor) -> Tensor:
        return self.generator(z).reshape(z.shape[0], *self.data_shape)

    def _flat(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def _scale(self, real: Tensor) -> float:
        if float(self.data_scale) == 0.0:  # s = sqrt(E|x|²/d) over the first (global) real batch
            ms = self._flat(real).detach().float().pow(2).mean()
            if self._distributed():  # DDP: the global first batch's scale
                ms = self.trainer.strategy.reduce(ms, reduce_op="mean")
            self.data_scale.fill_(float(ms.sqrt().clamp(min=1e-6)))
        return float(self.data_scale)

    def transport(self, x: Tensor) -> Tensor:
        """∇ψ(x) = s ∇ψ_c(x/s) in data space (fake → real), same shape as ``x``; no graph to ψ's parameters."""
        s = float(self.data_scale) if float(self.data_scale) > 0 else 1.0
        y = s * potential_grad(self.psi, self._flat(x) / s)
        return y.reshape(x.shape)

    # ------------------------------------------------------------------ the algorithm
    def _w2_estimate(self, x: Tensor, y: Tensor, x_hat: Tensor) -> Tensor:
        """W2² (cost |x−y|², data units) = 2 s² (½E|x|² + ½E|y|² − Eψ(x) − E[⟨x̂, y⟩ − ψ(x̂)])."""
        with torch.no_grad():
            val = 0.5 * x.pow(2).sum(-1).mean() + 0.5 * y.pow(2).sum(-1).mean() - self.psi(x).mean() \
                - ((x_hat * y).sum(-1) - self.psi(x_hat)).mean()
        return 2.0 * float(self.data_scale) ** 2 * val

    def discriminator_step(self, real: Tensor) -> Dict[str, Tensor]:
        hp = self.hparams
        opts = self.optimizers()
        opt_psi, opt_bar = opts[1], (opts[2] if len(opts) > 2 else None)  # w2gn: opt_psi steps ψ and ψ̄ together
        s = self._scale(real)
        with torch.no_grad():
            x = self._flat(self.generate(self.sample_latent(real.shape[0]))) / s
        y = self._flat(real).float() / s
        if hp.solver == "w2gn":
            loss = _w2gn_loss(bool(hp.compile))(self.psi, self.psi_bar, x, y, self.cycle)
            opt_psi.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_psi.step()
        elif hp.solver == "minimax":
            g_loss, f_loss = minimax_losses(self.psi_bar, self.psi, x, y)
            for _ in range(int(hp.inner_steps)):
                loss_g = g_loss()
                opt_psi.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                opt_psi.step()
                self.psi.convexify()
            loss = f_loss()
            opt_bar.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_bar.step()
        else:
            x_hat = conjugate_argmax(self.psi, y, x0=y, max_iter=int(hp.conj_max_iter), tol=1e-3)
            loss = restricted_loss(self.psi, x, y, x_hat)
            opt_psi.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_psi.step()
        self.psi.convexify()
        if self.psi_bar is not None:
            self.psi_bar.convexify()
        logs = {"loss/d": loss.detach()}
        if self.will_log():  # the W2 estimate is only logged: skip its ∇ψ̄ pass on the other batches (~14 % of a step)
            if hp.solver != "restricted":
                x_hat = potential_grad(self.psi_bar, y)
            logs["w2/estimate"] = self._w2_estimate(x, y, x_hat)
        return logs

    def generator_step(self, real: Tensor) -> Dict[str, Tensor]:
        opt_g = self.optimizers()[0]
        fake = self.generate(self.sample_latent(real.shape[0]))
        target = self.transport(fake.detach()).detach()  # sg[∇ψ(G(z))]  (envelope theorem)
        loss = 0.5 * (self._flat(fake) - self._flat(target)).pow(2).sum(-1).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        return {"loss/g": loss.detach()}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, composite: Optional[bool] = None) -> Tensor:
        """``n`` samples G(z), or the composite ∇ψ(G(z)) (``composite``, default ``hparams.composite_sample``)."""
        x = super().sample(n)
        use = self.hparams.composite_sample if composite is None else composite
        if use and n > 0:
            x = torch.cat([self.transport(c) for c in x.split(self.sample_batch_size)])
            if self.is_image:
                x = x.clamp(-1, 1)
        return x


# ---------------------------------------------------------------------------- plumbing: the compiled loss
_COMPILED: dict = {}  # the process's compiled W2GN loss (one per process; a module attribute would not pickle)


def _w2gn_loss(compiled: bool):
    """:func:`zoo.ot.w2.w2gn_loss`, through ``torch.compile`` when asked and buildable (else eager, one warning)."""
    if not compiled or _COMPILED.get("failed"):
        return _w2.w2gn_loss
    if "fn" not in _COMPILED:
        compiled_fn = torch.compile(_w2.w2gn_loss)

        def first_call(*args):
            try:
                out = compiled_fn(*args)
            except Exception as err:  # no C++ compiler / unsupported backend: the same loss, eagerly
                warnings.warn(f"ICNN W2-GAN: torch.compile could not build the W2GN loss "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                              f"continuing without compilation (set model.compile false to silence this)")
                _COMPILED["failed"] = True
                return _w2.w2gn_loss(*args)
            _COMPILED["fn"] = compiled_fn
            return out

        return first_call
    return _COMPILED["fn"]

"""WGAN-GP (Gulrajani et al., NeurIPS 2017), read as congested transport (Milne & Nachman, COLT 2022).

Algorithm 1 of Gulrajani et al. (one generator iteration = ``n_critic`` critic steps, each on a fresh real batch):

1. critic: minimise  E f(x̃) − E f(x) + λ E_{x̂∼σ} φ(|∇f(x̂)|),  x̃ = G(z) fake, x real,
   x̂ = ε x + (1 − ε) x̃ with ε ~ U[0, 1] and φ(s) = (s − 1)² (two-sided, the paper) or (s − 1)_+² (one-sided);
2. generator: minimise  −E f(G(z)).

Pairs (x, x̃) are independent (the paper) or matched by minibatch OT (``pairing="ot"``: an exact assignment
for the cost |x − y|², POT ``ot.emd`` with uniform weights; Milne's MORS). The law σ of x̂ is what the
congested-transport reading depends on.

**Congested transport.** With the one-sided penalty the critic solves the dual of (μ = fake, ν = real)::

    min_V ∫ |V| + |V|²/(4 λ σ) dx   s.t.  div V = μ − ν,

and the optimal flow is V = 2 λ σ (|∇f| − 1)_+ ∇f/|∇f| (so |∇f| = 1 + |V|/(2λσ) where mass moves). The
congested cost is ≥ W1 (cost |x − y|) and tends to it as λσ → ∞. :meth:`WGANGP.congestion_report` evaluates
σ, V, the cost and the critic objective of a trained module; :class:`CongestionMonitor` logs them during
training; :func:`train_critic` trains a critic alone on fixed μ, ν (the checks against closed forms and
:func:`zoo.ot.congested.solve_congested`).

Networks come from :mod:`zoo.nets` (MLPs for vectors, DCGAN convs for images in [-1, 1]); the critic never uses
batch norm (it would couple the samples of the penalty).

**DDP.** Every term of both losses is a mean of per-sample terms (ε is drawn per sample, the penalty's gradient is
taken with respect to the inputs x̂ with ``create_graph=True``, then one ordinary ``manual_backward`` whose parameter
gradients DDP all-reduces), so W processes with batch B compute the gradients of one process with batch WB. The
minibatch-OT pairing is the one exception: it is solved over the all-gathered global batch
(:func:`interpolates`). Parity with a single process: ``tests/test_ddp_parity.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from callbacks._util import EveryNGenSteps, gen_step_of
from zoo import nets
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.registry import register_model

__all__ = ["WGANGP", "CongestionMonitor", "CongestionReport", "critic_loss", "gradient_penalty",
           "interpolates", "ot_pairing", "train_critic", "critic_objective"]

PENALTIES = ("two_sided", "one_sided")
PAIRINGS = ("independent", "ot")


# ---------------------------------------------------------------------------- the critic's loss
def ot_pairing(real: Tensor, fake: Tensor) -> Tensor:
    """Permutation ``perm`` such that ``(real[perm[i]], fake[i])`` is an optimal assignment for the cost
    ``|x − y|²`` between the two batches (uniform weights, POT ``ot.emd``; equal batch sizes)."""
    import ot

    if real.shape[0] != fake.shape[0]:
        raise ValueError(f"OT pairing needs equal batch sizes, got {real.shape[0]} and {fake.shape[0]}")
    n = real.shape[0]
    xs = fake.detach().reshape(n, -1).double().cpu().numpy()
    xt = real.detach().reshape(n, -1).double().cpu().numpy()
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, ot.dist(xs, xt, metric="sqeuclidean"))
    return torch.as_tensor(plan.argmax(1), device=real.device)


#: ``gather(x) -> (x of every rank concatenated in rank order, offset of this rank's rows)``, for DDP.
Gather = Callable[[Tensor], Tuple[Tensor, int]]


def interpolates(real: Tensor, fake: Tensor, pairing: str = "independent",
                 generator: Optional[torch.Generator] = None, gather: Optional[Gather] = None) -> Tensor:
    """x̂ = ε x + (1 − ε) x̃, ε ~ U[0, 1] per sample, for pairs (x real, x̃ fake) that are the batches as given
    (``independent``: both are i.i.d., so the pairs are independent) or matched by :func:`ot_pairing`.

    ``gather`` (DDP): the OT assignment is computed over the global batch (every rank's ``real`` and ``fake``,
    all-gathered; the same exact assignment on every rank) and each rank keeps the real partners of its own fakes,
    so the interpolates are those a single process would draw from the global batch. Without it the assignment
    is over the local batch (minibatch OT is batch-size dependent)."""
    if pairing == "ot":
        if gather is None:
            real = real[ot_pairing(real, fake)]
        else:
            all_real, offset = gather(real.detach())
            all_fake, _ = gather(fake.detach())
            perm = ot_pairing(all_real, all_fake)
            real = all_real[perm[offset:offset + fake.shape[0]]].to(real)
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype,
                     generator=generator)
    return eps * real + (1 - eps) * fake


def gradient_penalty(critic: nn.Module, x_hat: Tensor, one_sided: bool = False,
                     create_graph: bool = True) -> Tuple[Tensor, Tensor]:
    """``(E φ(|∇f(x̂)|), |∇f(x̂)|)`` with φ(s) = (s − 1)² or (s − 1)_+² (``one_sided``); the gradient is taken
    with ``torch.autograd.grad(f(x̂).sum(), x̂, create_graph=True)`` w.r.t. the inputs."""
    x_hat = x_hat.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
    norm = grad.reshape(grad.shape[0], -1).norm(2, dim=1)
    gap = (norm - 1).clamp(min=0) if one_sided else norm - 1
    return gap.pow(2).mean(), norm


def critic_loss(critic: nn.Module, real: Tensor, fake: Tensor, lam: float, one_sided: bool = False,
                pairing: str = "independent", gather: Optional[Gather] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
    """WGAN-GP critic loss ``E f(fake) − E f(real) + λ E φ(|∇f(x̂)|)`` and detached logs
    (``loss/d``, ``critic/gap`` = E f(real) − E f(fake), ``critic/gp``, ``critic/grad_norm``).

    Every term is a mean over the batch's samples, so under DDP the averaged gradients equal the global batch's;
    ``gather`` (see :func:`interpolates`) only matters for ``pairing="ot"``."""
    gap = critic(real).mean() - critic(fake).mean()
    pen, norm = gradient_penalty(critic, interpolates(real, fake, pairing, gather=gather), one_sided)
    loss = -gap + lam * pen
    return loss, {"loss/d": loss.detach(), "critic/gap": gap.detach(), "critic/gp": pen.detach(),
                  "critic/grad_norm": norm.detach().mean()}


# ---------------------------------------------------------------------------- the method
@register_model("wgan_gp")
class WGANGP(GANModule):
    """WGAN with gradient penalty.

    Args:
        latent_dim: dimension of z ~ N(0, I).
        hidden: MLP widths of generator and critic (vector data; the toy script uses 3×512).
        base_channels: DCGAN width (image data).
        g_act, critic_act: MLP activations.
        g_norm: generator normalisation (``none``, ``layer``, ``batch``); images use batch norm when ``none``.
        critic_norm: ``none`` or ``layer`` (batch norm is refused: the penalty is per sample).
        lam: penalty weight λ (paper 10; toy script 0.1).
        n_critic: critic steps per generator step (5).
        lr_g, lr_d, betas: Adam settings (paper 1e-4, (0, 0.9); toy script (0.5, 0.9)).
        penalty: ``two_sided`` (the paper, (|∇f| − 1)²) or ``one_sided`` ((|∇f| − 1)_+², the congested dual).
        pairing: interpolate pairs, ``independent`` (the paper) or ``ot`` (minibatch OT assignment, |x − y|²).
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (512, 512, 512),
        base_channels: int = 64,
        g_act: str = "relu",
        critic_act: str = "relu",
        g_norm: str = "none",
        critic_norm: str = "none",
        lam: float = 10.0,
        n_critic: int = 5,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: Tuple[float, float] = (0.0, 0.9),
        penalty: str = "two_sided",
        pairing: str = "independent",
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        if critic_norm not in ("none", "layer"):
            raise ConfigError(f"critic_norm must be 'none' or 'layer', got {critic_norm!r}: batch norm couples the "
                              "samples of the gradient penalty, so WGAN-GP critics must not use it")
        if penalty not in PENALTIES:
            raise ConfigError(f"penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
        if pairing not in PAIRINGS:
            raise ConfigError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
        if not lam > 0:
            raise ConfigError(f"lam (gradient-penalty weight) must be positive, got {lam}")
        if int(n_critic) < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {betas}")
        self.save_hyperparameters()
        self.n_dis = int(n_critic)
        self.lam = float(lam)
        self.one_sided = penalty == "one_sided"
        self.pairing = pairing

    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        self.generator = nets.make_generator(hp.latent_dim, data_shape, hp.hidden, act=hp.g_act, norm=hp.g_norm,
                                             base_channels=hp.base_channels)
        self.critic = nets.make_discriminator(data_shape, hp.hidden, act=hp.critic_act, norm=hp.critic_norm,
                                              base_channels=hp.base_channels)
        if nets.is_image_shape(data_shape):
            nets.dcgan_init(self)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        return opt_g, opt_d

    def discriminator_step(self, real: Tensor) -> Dict[str, Tensor]:
        """One critic step on a fresh real batch: loss + λ·penalty, one ``manual_backward``."""
        _, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self.generate(self.sample_latent(real.shape[0]))
        loss, logs = critic_loss(self.critic, real, fake, self.lam, self.one_sided, self.pairing,
                                 gather=self._gather_batch if self._distributed() else None)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        return logs

    def _gather_batch(self, x: Tensor) -> Tuple[Tensor, int]:
        """``x`` of every rank (equal shapes: the samplers drop the last incomplete batch), concatenated in rank
        order, and the offset of this rank's rows."""
        return self._gather_rows(x), self.global_rank * x.shape[0]

    def generator_step(self, real: Tensor) -> Dict[str, Tensor]:
        """One generator step: minimise −E f(G(z))."""
        opt_g, _ = self.optimizers()
        loss = -self.critic(self.generate(self.sample_latent(real.shape[0]))).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        return {"loss/g": loss.detach()}

    # ------------------------------------------------------------------ the congested-transport reading
    def congestion_report(self, n: int = 20000, real: Optional[Tensor] = None, grid: Optional[int] = 64,
                          n_w1: int = 2000, seed: int = 0) -> "CongestionReport":
        """The congested-transport quantities of the current critic and generator (μ = fake, ν = real).

        ``n`` fake samples and ``n`` real samples (``real``, or drawn from the attached datamodule) give ``n``
        interpolates x̂ ~ σ (the module's pairing). Returned (see :class:`CongestionReport`):

        * ``objective`` = E_ν f − E_μ f − λ E_σ (|∇f| − 1)_+² (the one-sided critic objective, the dual value);
        * ``cost`` = ∫ |V| + |V|²/(4λσ) dx of V = 2λσ(|∇f| − 1)_+ ∇f/|∇f|; on samples this is
          λ E_σ[(|∇f|² − 1)_+] (σ cancels), on the grid the cell sum with σ the interpolate histogram;
        * ``w1``: exact W1 (cost |x − y|) between ``n_w1`` fake and ``n_w1`` real samples (POT), for reference:
          the *optimal* congested cost is ≥ W1; ``cost`` and ``objective`` equal that optimum only for an
          optimal critic (a partly trained critic's flow need not satisfy div V = μ − ν, so its ``cost`` can be
          below W1; the empirical W1 of ``n_w1`` samples is also biased upwards);
        * for 2-D data and ``grid`` cells per side: ``sigma`` (grid, grid), ``flow`` (2, grid, grid), ``grad``
          ∇f at the cell centres, ``edges`` (x and y cell edges) of a square grid over the 0.1–99.9 %
          quantiles of all points plus 10 % margin (σ is normalised by all interpolates, so mass outside the
          grid is left out of the grid cost); on samples (any dimension): ``points`` x̂,
          ``point_grad`` ∇f(x̂) and ``point_velocity`` V/σ = 2λ(|∇f| − 1)_+ ∇f/|∇f|.
        """
        self.ensure_built()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            fake = self.sample(n).detach()
            if real is None:
                real = self._real_samples(n)
            real = real[:n].to(self.device, fake.dtype)
            fake = fake[: real.shape[0]]
            x_hat = _interpolates_chunked(real, fake, self.pairing, self._batch_size())
        was_training = self.training
        self.eval()
        try:
            return build_report(self.critic, real, fake, x_hat, self.lam, grid=grid, n_w1=n_w1)
        finally:
            self.train(was_training)

    def _batch_size(self) -> int:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return int(getattr(dm, "batch_size", 256) or 256)

    def _real_samples(self, n: int) -> Tensor:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "sample"):
            return dm.sample(n)
        if dm is not None and hasattr(dm, "reference_samples"):
            return dm.reference_samples(n)
        raise ConfigError("congestion_report needs real samples: pass real=... or attach a datamodule")


def _interpolates_chunked(real: Tensor, fake: Tensor, pairing: str, batch: int) -> Tensor:
    """Interpolates drawn batch by batch (the OT pairing is a *minibatch* assignment, as in training)."""
    if pairing != "ot":
        return interpolates(real, fake, "independent")
    out = [interpolates(r, f, "ot") for r, f in zip(real.split(batch), fake.split(batch))]
    return torch.cat(out)


# ---------------------------------------------------------------------------- reports
@dataclass
class CongestionReport:
    """What :meth:`WGANGP.congestion_report` returns (numpy arrays, float scalars)."""

    lam: float
    objective: float  #: E_ν f − E_μ f − λ E_σ (|∇f| − 1)_+²
    gap: float  #: E_ν f − E_μ f
    penalty: float  #: E_σ (|∇f| − 1)_+²
    cost: float  #: ∫ |V| + |V|²/(4λσ) (grid when available, otherwise on samples)
    cost_samples: float  #: λ E_σ[(|∇f|² − 1)_+]
    w1: float  #: exact W1 between subsamples (POT); ≤ the optimal congested cost
    points: np.ndarray = field(repr=False, default=None)
    point_grad: np.ndarray = field(repr=False, default=None)
    point_velocity: np.ndarray = field(repr=False, default=None)
    sigma: Optional[np.ndarray] = field(repr=False, default=None)  #: (m, m) interpolate density on cells
    flow: Optional[np.ndarray] = field(repr=False, default=None)  #: (2, m, m) V on cells
    grad: Optional[np.ndarray] = field(repr=False, default=None)  #: (2, m, m) ∇f at cell centres
    edges: Optional[Tuple[np.ndarray, np.ndarray]] = field(repr=False, default=None)
    real: Optional[np.ndarray] = field(repr=False, default=None)
    fake: Optional[np.ndarray] = field(repr=False, default=None)

    def scalars(self) -> Dict[str, float]:
        return {"objective": self.objective, "cost": self.cost, "cost_samples": self.cost_samples,
                "w1": self.w1, "gap": self.gap, "penalty": self.penalty}


def _critic_grad(critic: nn.Module, x: Tensor, chunk: int = 8192) -> Tuple[Tensor, Tensor]:
    vals, grads = [], []
    for xc in x.split(chunk):
        xc = xc.detach().requires_grad_(True)
        with torch.enable_grad():
            out = critic(xc)
            (g,) = torch.autograd.grad(out.sum(), xc)
        vals.append(out.detach())
        grads.append(g.detach())
    return torch.cat(vals), torch.cat(grads)


def build_report(critic: nn.Module, real: Tensor, fake: Tensor, x_hat: Tensor, lam: float,
                 grid: Optional[int] = 64, n_w1: int = 2000) -> CongestionReport:
    """:class:`CongestionReport` of ``critic`` for samples of ν (``real``), μ (``fake``) and σ (``x_hat``)."""
    import ot

    with torch.no_grad():
        gap = float(_batched(critic, real).mean() - _batched(critic, fake).mean())
    _, g = _critic_grad(critic, x_hat)
    gflat = g.reshape(g.shape[0], -1).double()
    norm = gflat.norm(dim=1)
    r = (norm - 1).clamp(min=0)
    pen = float(r.pow(2).mean())
    cost_samples = float(lam * (norm.pow(2) - 1).clamp(min=0).mean())
    unit = gflat / norm.clamp(min=1e-12)[:, None]
    m = min(int(n_w1), real.shape[0], fake.shape[0])
    a = fake[:m].reshape(m, -1).double().cpu().numpy()
    b = real[:m].reshape(m, -1).double().cpu().numpy()
    w1 = float(ot.emd2(np.full(m, 1.0 / m), np.full(m, 1.0 / m), ot.dist(a, b, metric="euclidean"),
                        numItermax=10_000_000))
    rep = CongestionReport(
        lam=float(lam), objective=gap - lam * pen, gap=gap, penalty=pen, cost=cost_samples,
        cost_samples=cost_samples, w1=w1,
        points=x_hat.reshape(x_hat.shape[0], -1).cpu().numpy(), point_grad=gflat.cpu().numpy(),
        point_velocity=(2 * lam * r[:, None] * unit).cpu().numpy())
    flat_dim = gflat.shape[1]
    if grid and flat_dim == 2:
        pts = torch.cat([real, fake, x_hat]).reshape(-1, 2).double()
        q = torch.tensor([0.001, 0.999], dtype=pts.dtype, device=pts.device)
        lo, hi = torch.quantile(pts[:200_000], q, dim=0).cpu().numpy()  # robust to a few far-out fakes
        pad = 0.1 * (hi - lo).max()
        side = float((hi - lo).max() + 2 * pad)
        c = 0.5 * (lo + hi)
        xe = np.linspace(c[0] - side / 2, c[0] + side / 2, grid + 1)
        ye = np.linspace(c[1] - side / 2, c[1] + side / 2, grid + 1)
        h = side / grid
        xh = x_hat.reshape(-1, 2).double().cpu().numpy()
        cnt, _, _ = np.histogram2d(xh[:, 0], xh[:, 1], bins=[xe, ye])
        sigma = cnt / (xh.shape[0] * h * h)
        xc = 0.5 * (xe[1:] + xe[:-1])
        yc = 0.5 * (ye[1:] + ye[:-1])
        X, Y = np.meshgrid(xc, yc, indexing="ij")
        centres = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1), dtype=real.dtype, device=real.device)
        _, gc = _critic_grad(critic, centres)
        gc = gc.double().cpu().numpy().T.reshape(2, grid, grid)
        gn = np.sqrt((gc**2).sum(0))
        speed = 2 * lam * sigma * np.maximum(gn - 1, 0)
        flow = speed / np.maximum(gn, 1e-12) * gc
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = np.where(sigma > 0, speed + speed**2 / (4 * lam * np.where(sigma > 0, sigma, 1.0)), 0.0)
        rep.cost = float(dens.sum() * h * h)
        rep.sigma, rep.flow, rep.grad, rep.edges = sigma, flow, gc, (xe, ye)
        rep.real = real.reshape(-1, 2).cpu().numpy()
        rep.fake = fake.reshape(-1, 2).cpu().numpy()
    return rep


def _batched(critic: nn.Module, x: Tensor, chunk: int = 8192) -> Tensor:
    return torch.cat([critic(xc) for xc in x.split(chunk)])


def report_png(rep: CongestionReport, title: str = "") -> Optional[bytes]:
    """PNG bytes: heat map of σ with the quiver of V (left) and |∇f| (right) — 2-D reports only."""
    if rep.sigma is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    xe, ye = rep.edges
    ext = (xe[0], xe[-1], ye[0], ye[-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=100)
    ax = axes[0]
    im = ax.imshow(rep.sigma.T, origin="lower", extent=ext, cmap="Greys")
    fig.colorbar(im, ax=ax, fraction=0.046, label="σ (interpolate density)")
    step = max(1, rep.sigma.shape[0] // 24)
    xc = 0.5 * (xe[1:] + xe[:-1])[::step]
    yc = 0.5 * (ye[1:] + ye[:-1])[::step]
    X, Y = np.meshgrid(xc, yc, indexing="ij")
    V = rep.flow[:, ::step, ::step]
    if np.abs(V).max() > 0:  # no flow at all while |∇f| ≤ 1 everywhere
        ax.quiver(X, Y, V[0], V[1], color="tab:red", angles="xy")
    if rep.fake is not None:
        ax.scatter(rep.fake[:500, 0], rep.fake[:500, 1], s=1, c="tab:blue", alpha=0.4, label="fake μ")
        ax.scatter(rep.real[:500, 0], rep.real[:500, 1], s=1, c="tab:green", alpha=0.4, label="real ν")
        ax.legend(loc="upper right", fontsize=7, markerscale=4)
    ax.set_title(f"σ and flow V   cost {rep.cost:.3f}, W1 {rep.w1:.3f}", fontsize=9)
    ax = axes[1]
    im = ax.imshow(np.sqrt((rep.grad**2).sum(0)).T, origin="lower", extent=ext, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, label="|∇f|")
    ax.set_title(f"|∇f|   objective {rep.objective:.3f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class CongestionMonitor(EveryNGenSteps, pl.Callback):
    """Log the congested-transport reading of a :class:`WGANGP` every ``every_n_gen_steps`` and at the end.

    Logs ``congestion/cost``, ``congestion/objective``, ``congestion/w1``, ``congestion/penalty``; for 2-D data
    saves ``<run dir>/plots/congestion_gen<step>.png`` (σ heat map + quiver of V, and |∇f|).

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end).
        n_samples: samples of μ, ν and σ per report.
        grid: cells per side of the 2-D grid.
        seed: seed of the report's samples (training's RNG is not perturbed).
    """

    def __init__(self, every_n_gen_steps: int = 1000, n_samples: int = 20000, grid: int = 64, seed: int = 0):
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.n_samples, self.grid, self.seed = int(n_samples), int(grid), int(seed)
        self._last = -1
        self.last_report: Optional[CongestionReport] = None
        self.last_path = None

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from callbacks._util import atomic_write_bytes, log_eval, run_dir

        step = gen_step_of(pl_module, trainer)
        self.mark(pl_module, trainer)
        if not trainer.is_global_zero or not hasattr(pl_module, "congestion_report"):
            return
        rep = pl_module.congestion_report(n=self.n_samples, grid=self.grid, seed=self.seed)
        self.last_report = rep
        log_eval(trainer, pl_module, {f"congestion/{k}": v for k, v in rep.scalars().items()})
        png = report_png(rep, title=f"{type(pl_module).__name__} λ={rep.lam:g} — gen_step {step}")
        if png is not None:
            self.last_path = run_dir(trainer) / "plots" / f"congestion_gen{step:07d}.png"
            atomic_write_bytes(self.last_path, png)


# ---------------------------------------------------------------------------- a critic alone on fixed μ, ν
Sampler = Callable[[int, torch.Generator], Tensor]


def train_critic(sample_mu: Sampler, sample_nu: Sampler, lam: float, steps: int, dim: int,
                 hidden: Sequence[int] = (128, 128, 128), act: str = "relu", batch_size: int = 1024,
                 lr: float = 1e-4, betas: Tuple[float, float] = (0.5, 0.9), penalty: str = "one_sided",
                 pairing: str = "independent", seed: int = 0, dtype: torch.dtype = torch.float32,
                 lr_decay_to: Optional[float] = None) -> nn.Module:
    """Train a WGAN-GP critic alone between fixed laws μ (fake, ``sample_mu``) and ν (real, ``sample_nu``):
    ``steps`` Adam steps on :func:`critic_loss` with fresh batches (samplers take ``(n, torch.Generator)``).
    ``lr_decay_to``: optional final learning rate of a cosine schedule. Returns the critic (an MLP from
    :func:`zoo.nets.make_discriminator`)."""
    if penalty not in PENALTIES or pairing not in PAIRINGS:
        raise ConfigError(f"penalty in {PENALTIES} and pairing in {PAIRINGS}, got {penalty!r}, {pairing!r}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    critic = nets.make_discriminator((dim,), hidden, act=act, norm="none").to(dtype)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=tuple(betas))
    sched = None
    if lr_decay_to is not None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr_decay_to)
    one_sided = penalty == "one_sided"
    for _ in range(int(steps)):
        real = sample_nu(batch_size, g).to(dtype)
        fake = sample_mu(batch_size, g).to(dtype)
        loss, _ = critic_loss(critic, real, fake, lam, one_sided, pairing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return critic


def critic_objective(critic: nn.Module, sample_mu: Sampler, sample_nu: Sampler, lam: float, n: int = 1_000_000,
                     n_pen: int = 200_000, pairing: str = "independent", seed: int = 12345) -> Dict[str, float]:
    """Monte-Carlo ``E_ν f − E_μ f − λ E_σ (|∇f| − 1)_+²`` (``n`` samples for the gap, ``n_pen`` interpolates),
    the dual value of the congested problem that the critic attains. Returns ``objective``, ``gap``, ``penalty``."""
    g = torch.Generator().manual_seed(seed)
    dtype = next(critic.parameters()).dtype
    with torch.no_grad():
        gap = float(_batched(critic, sample_nu(n, g).to(dtype)).double().mean()
                    - _batched(critic, sample_mu(n, g).to(dtype)).double().mean())
    real, fake = sample_nu(n_pen, g).to(dtype), sample_mu(n_pen, g).to(dtype)
    x_hat = _interpolates_chunked(real, fake, pairing, 1024)
    _, grad = _critic_grad(critic, x_hat)
    pen = float((grad.reshape(n_pen, -1).double().norm(dim=1) - 1).clamp(min=0).pow(2).mean())
    return {"objective": gap - lam * pen, "gap": gap, "penalty": pen}

"""SN-GAN (Miyato et al. 2018) and SR-GAN — spectral regularization against mode collapse (Liu et al., ICCV 2019).

**SN-GAN** (:class:`SNGAN`). Every discriminator layer is spectrally normalised (torch's
``parametrizations.spectral_norm``, one power iteration per training forward): the layer uses W/σ₁(W), with W the
``(C_out, C_in·k_h·k_w)`` matrix of the kernel (:func:`callbacks.spectral.weight_matrix`). Loss (hinge, default):

    D:  minimise  E_x max(0, 1 − D(x)) + E_z max(0, 1 + D(G(z)))
    G:  minimise  −E_z D(G(z))

(``loss="ns"``: the non-saturating loss softplus(−D(x)) + softplus(D(G(z))) / softplus(−D(G(z)))).
Adam(2e-4, β = (0, 0.9)), ``n_dis`` discriminator steps per generator step, each on a fresh real batch.

**Spectral collapse.** When SN-GAN mode-collapses, most *normalised* singular values σ_i/σ₁ of the discriminator's
weight matrices drop at the same moment (monitored by :class:`callbacks.spectral.SpectralMonitor`).

**SR-GAN** (:class:`SRGAN`) fights this directly. With the thin SVD W = U diag(σ) Vᵀ, r = min(m, n):

* static compensation (official CIFAR code, ``fraction`` = ½):
  W ← U diag(s) Vᵀ with s_i = 1 for i ≤ k = ⌊r·fraction⌋ and s_i = σ_i/σ₁ otherwise, i.e.
  W ← (1/σ₁)[W + Σ_{i≤k} (σ₁ − σ_i) u_i v_iᵀ]; the rewritten matrix has σ₁ = 1 (:func:`static_compensation`);
* dynamic compensation (official ImageNet code): the first call stores γ = σ/σ₁ and changes nothing; every later
  call sets γ ← max(γ, σ/σ₁) element-wise (a running maximum) and W ← U diag(σ₁·γ) Vᵀ, keeping σ₁
  (:class:`DynamicCompensation`).

Schedule (official code, both repos): on every generator iteration t with t % ``sr_every`` == 0 (``sr_every`` = 5),
the rewrite runs after **each** of that iteration's discriminator updates; never on G. The raw parameter
(``parametrizations.weight.original``) is rewritten in place under ``no_grad`` (Adam state untouched), then the
parametrization's power-iteration vectors are reset to the new top singular pair and refined by
``sr_power_iterations`` power iterations, so the next forward divides by the new σ₁ and not a stale estimate.
Only conv layers are regularized by default (``sr_layers="conv"``, as the original); ``"all"`` adds linear layers
(needed for MLP discriminators). Layers with the same matrix shape share one batched ``torch.linalg.svd`` on the
module's device (float64). Under DDP rank 0's rewritten weights are broadcast so that every rank holds
bit-identical weights.

**DDP** (``tests/test_ddp_parity.py``): parity with one process over the same global batch for SN-GAN and SR-GAN
(static and dynamic); rank 1's weights, perturbed before every rewrite, are rank 0's again after it. The spectral
norm's power-iteration vectors are buffers that DDP broadcasts from rank 0 at every forward. Torch's spectral-norm
parametrization cannot be pickled; ``ddp`` never pickles the module and ``ddp_spawn`` works too, as a built module
pickles its networks as a ``state_dict`` (:meth:`SNGAN.__getstate__`).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from callbacks.spectral import is_transposed, matrix_to_weight, module_weight, weight_matrix
from zoo import nets
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.registry import register_model

__all__ = ["SNGAN", "SRGAN", "static_compensation", "DynamicCompensation", "regularizable_layers",
           "spectral_regularize_"]

_LOSSES = ("hinge", "ns")
_SR_MODES = ("static", "dynamic")
_SR_LAYERS = ("conv", "all")


# ---------------------------------------------------------------------------------------------------------
# 1. Compensation formulas on 2-D matrices
# ---------------------------------------------------------------------------------------------------------

def _svd(matrix: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Thin SVD in float64 (batched over leading dims): ``U (…, m, r)``, ``σ (…, r)`` descending, ``Vh (…, r, n)``."""
    return torch.linalg.svd(matrix.to(torch.float64), full_matrices=False)


def _static_from_svd(u: Tensor, s: Tensor, vh: Tensor, fraction: float) -> Tensor:
    r = s.shape[-1]
    k = int(math.floor(r * fraction))
    top = s[..., :1].clamp_min(torch.finfo(s.dtype).tiny)
    t = s / top
    t[..., :k] = 1.0
    return (u * t.unsqueeze(-2)) @ vh


def static_compensation(matrix: Tensor, fraction: float = 0.5) -> Tensor:
    """Static spectral compensation of a 2-D ``matrix`` W ``(m, n)`` (SR-GAN CIFAR code, ``updater.py::SR``).

    With W = U diag(σ) Vᵀ (σ₁ ≥ … ≥ σ_r, r = min(m, n)) and k = ⌊r·fraction⌋, returns
    U diag(s) Vᵀ with s_i = 1 for i ≤ k and s_i = σ_i/σ₁ for i > k
    = (1/σ₁)[W + Σ_{i≤k} (σ₁ − σ_i) u_i v_iᵀ]. The result's normalised spectrum is exactly [1]*k + (σ_i/σ₁)_{i>k}
    and its σ₁ is 1 (the original rescales the raw weight; spectral normalisation makes the scale irrelevant).
    A leading batch dimension is allowed. Computed in float64; returned in ``matrix``'s dtype.
    """
    if matrix.dim() < 2:
        raise ConfigError(f"static_compensation needs a matrix (m, n), got shape {tuple(matrix.shape)}")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
    u, s, vh = _svd(matrix)
    return _static_from_svd(u, s, vh, fraction).to(matrix.dtype)


class DynamicCompensation:
    """Dynamic spectral compensation of one layer's matrix (SR-GAN ImageNet code, ``Updater.SR``; stateful).

    ``comp(W)``: with W = U diag(σ) Vᵀ and σ̂ = σ/σ₁,

    * first call: store the reference γ = σ̂ and return W unchanged;
    * later calls: γ ← max(γ, σ̂) element-wise (a running maximum: no normalised value ever ends below its
      recorded maximum) and return U diag(σ₁·γ) Vᵀ — σ₁ is kept, every σ_i is lifted to σ₁·γ_i ≥ σ_i.

    ``reference`` (float64, length r) is the state; save/restore it with :meth:`state_dict` /
    :meth:`load_state_dict`. Works on one matrix ``(m, n)`` or a batch ``(b, m, n)`` (one state per batch item).
    """

    def __init__(self, reference: Optional[Tensor] = None):
        self.reference = None if reference is None else reference.detach().to(torch.float64).clone()

    def __call__(self, matrix: Tensor) -> Tensor:
        if matrix.dim() < 2:
            raise ConfigError(f"DynamicCompensation needs a matrix (m, n), got shape {tuple(matrix.shape)}")
        u, s, vh = _svd(matrix)
        return self.from_svd(u, s, vh).to(matrix.dtype)

    def from_svd(self, u: Tensor, s: Tensor, vh: Tensor) -> Tensor:
        """The rewritten matrix from a float64 SVD (updates the state)."""
        top = s[..., :1]
        normalized = s / top.clamp_min(torch.finfo(s.dtype).tiny)
        if self.reference is None or self.reference.shape != normalized.shape:
            self.reference = normalized.detach().cpu().clone()
            return (u * s.unsqueeze(-2)) @ vh
        ref = torch.maximum(self.reference.to(normalized.device), normalized)
        self.reference = ref.detach().cpu().clone()
        return (u * (top * ref).unsqueeze(-2)) @ vh

    def state_dict(self) -> Dict[str, Optional[Tensor]]:
        return {"reference": self.reference}

    def load_state_dict(self, state: Dict[str, Optional[Tensor]]) -> None:
        ref = state.get("reference")
        self.reference = None if ref is None else ref.detach().to(torch.float64).clone()


# ---------------------------------------------------------------------------------------------------------
# 2. Rewriting a network's spectrally normalised layers
# ---------------------------------------------------------------------------------------------------------

def regularizable_layers(net: nn.Module, layers: str = "conv") -> Dict[str, nn.Module]:
    """The layers SR rewrites, by qualified name: spectrally normalised conv / conv-transpose layers
    (``layers="conv"``, the official ``isinstance`` filter) or also linear ones (``"all"``)."""
    if layers not in _SR_LAYERS:
        raise ConfigError(f"sr_layers must be one of {', '.join(_SR_LAYERS)}, got {layers!r}")
    kinds: tuple = (nn.modules.conv._ConvNd,) + ((nn.Linear,) if layers == "all" else ())
    out: Dict[str, nn.Module] = {}
    for name, m in net.named_modules():
        params = getattr(m, "parametrizations", None)
        if isinstance(m, kinds) and params is not None and "weight" in params and module_weight(m).dim() >= 2:
            out[name] = m
    return out


def _sn_parametrization(module: nn.Module):
    params = getattr(module, "parametrizations", None)
    if params is None or "weight" not in params:
        return None
    for p in params["weight"]:
        if hasattr(p, "_u") and hasattr(p, "_v"):
            return p
    return None


@torch.no_grad()
def refresh_power_iteration(module: nn.Module, u1: Optional[Tensor] = None, v1: Optional[Tensor] = None,
                            n_iterations: int = 1) -> None:
    """Reset the SN parametrization's ``_u``/``_v`` to the top singular pair (``u1``, ``v1``) of the new matrix
    when given, then run ``n_iterations`` power iterations on the new raw weight (stale vectors would make the
    next forward divide by a wrong σ₁)."""
    p = _sn_parametrization(module)
    if p is None:
        return
    if u1 is not None and v1 is not None and u1.shape == p._u.shape and v1.shape == p._v.shape:
        p._u.copy_(u1.to(p._u.dtype))
        p._v.copy_(v1.to(p._v.dtype))
    if n_iterations > 0:
        p._power_method(p._reshape_weight_to_matrix(module_weight(module)), int(n_iterations))


def _broadcast_(tensors: List[Tensor], src: int = 0) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.broadcast(t, src)


@torch.no_grad()
def spectral_regularize_(layers: Dict[str, nn.Module], mode: str = "static", fraction: float = 0.5,
                         states: Optional[Dict[str, DynamicCompensation]] = None, power_iterations: int = 1,
                         sync: bool = True) -> None:
    """Rewrite each layer's raw weight in place with static or dynamic compensation (see module doc).

    Matrices of equal shape are stacked into one batched float64 SVD on their device. ``states`` holds the
    per-layer :class:`DynamicCompensation` (created on first use) for ``mode="dynamic"``. With ``sync`` and an
    initialised process group, rank 0's new weights and power-iteration vectors are broadcast to all ranks.
    """
    if mode not in _SR_MODES:
        raise ConfigError(f"sr_mode must be one of {', '.join(_SR_MODES)}, got {mode!r}")
    if mode == "dynamic" and states is None:
        raise ConfigError("dynamic compensation needs a dict of per-layer states")
    groups: Dict[tuple, List[str]] = {}
    for name, m in layers.items():
        mat_shape = tuple(weight_matrix(module_weight(m), is_transposed(m)).shape)
        groups.setdefault((mat_shape, module_weight(m).device), []).append(name)
    synced: List[Tensor] = []
    for (_, _), names in groups.items():
        mods = [layers[n] for n in names]
        raws = [module_weight(m) for m in mods]
        mats = torch.stack([weight_matrix(w, is_transposed(m)) for w, m in zip(raws, mods)])
        u, s, vh = _svd(mats)
        if mode == "static":
            new = _static_from_svd(u, s, vh, fraction)
        else:
            new = torch.stack([states.setdefault(n, DynamicCompensation()).from_svd(u[i], s[i], vh[i])
                               for i, n in enumerate(names)])
        for i, (m, w) in enumerate(zip(mods, raws)):
            w.copy_(matrix_to_weight(new[i].to(w.dtype), w, is_transposed(m)))
            # the top singular pair of the new matrix is (u_1, v_1) in both modes
            refresh_power_iteration(m, u[i, :, 0], vh[i, 0, :], power_iterations)
            p = _sn_parametrization(m)
            synced += [w] + ([p._u, p._v] if p is not None else [])
    if sync:
        _broadcast_(synced)


# ---------------------------------------------------------------------------------------------------------
# 3. SN-GAN
# ---------------------------------------------------------------------------------------------------------

@register_model("sngan")
class SNGAN(GANModule):
    """Spectrally normalised GAN (hinge loss by default).

    Args:
        latent_dim: dimension of z ~ N(0, I) (128 for the CIFAR-10 nets).
        arch: ``auto`` (MLP for vectors, standard CNN below 32×32, ResNet at 32×32 and up), ``mlp``, ``cnn``,
            ``resnet`` (see :func:`zoo.nets.sngan_networks`).
        hidden: MLP widths (vector data), shared by G and D.
        g_channels, d_channels: base widths of the conv nets (ResNet CIFAR-10: 256 / 128; standard CNN:
            512 / 64). Few D channels is a fragile setting (srgan.md §3).
        loss: ``hinge`` or ``ns`` (non-saturating).
        lr_g, lr_d, betas: Adam (2e-4, 2e-4, (0, 0.9)).
        n_dis: discriminator steps per generator step (5; 1 is a fragile setting).
        power_iterations: SN power iterations per training forward (1, as Miyato et al.).
        lr_decay: linear LR decay to 0 over ``max_gen_steps`` (the official CIFAR-10 config).
    """

    def __init__(
        self,
        latent_dim: int = 128,
        arch: str = "auto",
        hidden: Sequence[int] = (128, 128, 128),
        g_channels: int = 256,
        d_channels: int = 128,
        loss: str = "hinge",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Tuple[float, float] = (0.0, 0.9),
        n_dis: int = 5,
        power_iterations: int = 1,
        lr_decay: bool = False,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        if loss not in _LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(_LOSSES)}, got {loss!r}")
        if n_dis < 1:
            raise ConfigError(f"n_dis must be >= 1, got {n_dis}")
        if power_iterations < 1:
            raise ConfigError(f"power_iterations must be >= 1, got {power_iterations}")
        if lr_decay and max_gen_steps is None:
            raise ConfigError("lr_decay needs max_gen_steps (the decay reaches 0 there): set model.max_gen_steps")
        self.save_hyperparameters()
        self.n_dis = int(n_dis)

    # ------------------------------------------------------------------ networks
    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        self.generator, self.discriminator = nets.sngan_networks(
            hp.arch, hp.latent_dim, data_shape, hp.hidden, hp.g_channels, hp.d_channels, spectral_norm=True)
        if hp.power_iterations != 1:
            for m in self.discriminator.modules():
                p = _sn_parametrization(m)
                if p is not None:
                    p.n_power_iterations = int(hp.power_iterations)

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr_g, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=tuple(hp.betas))
        return opt_g, opt_d

    # ------------------------------------------------------------------ pickling (ddp_spawn)
    def __getstate__(self) -> dict:
        """Picklable once built, too: torch's spectral-norm parametrization refuses to be pickled (only its
        ``state_dict`` can be saved), so a built module is pickled without its networks but with its
        ``state_dict``, and :meth:`__setstate__` rebuilds them. ``ddp_spawn`` pickles the module it is handed
        (``train.py`` hands it unbuilt; the Python API may not)."""
        state = super().__getstate__()
        if not self._built:
            return state
        # the live tensors, not copies: spawn's pickler shares storages by file descriptor, which must stay open
        nets_state = self.state_dict()
        modules = state["_modules"]
        state["_modules"] = type(modules)((k, v) for k, v in modules.items() if k not in ("generator", "discriminator"))
        state.pop("_sr_modules", None)  # SR-GAN's references into the discriminator, rebuilt by build()
        state["_built"] = False
        state["_zoo_pickled_nets"] = nets_state
        return state

    def __setstate__(self, state: dict) -> None:
        nets_state = state.pop("_zoo_pickled_nets", None)
        super().__setstate__(state)
        if nets_state is not None:
            with torch.random.fork_rng(devices=[]):  # the throw-away initialisation draws no global random numbers
                self.ensure_built()
            self.load_state_dict(nets_state)

    # ------------------------------------------------------------------ losses
    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.hparams.loss == "hinge":
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        if self.hparams.loss == "hinge":
            return -fake_logits.mean()
        return F.softplus(-fake_logits).mean()

    def _decay_lr(self, opt, base_lr: float) -> None:
        """Linear decay lr = base·(1 − gen_step/max_gen_steps) when ``lr_decay`` (official CIFAR-10 config)."""
        if not self.hparams.lr_decay:
            return
        frac = max(0.0, 1.0 - self.gen_step / float(self.max_gen_steps))
        for group in opt.param_groups:
            group["lr"] = base_lr * frac

    # ------------------------------------------------------------------ steps
    def discriminator_step(self, real: Tensor) -> Dict[str, Tensor]:
        _, opt_d = self.optimizers()
        self._decay_lr(opt_d, self.hparams.lr_d)
        with torch.no_grad():
            fake = self.generate(self.sample_latent(real.shape[0]))
        loss = self.d_loss(self.discriminator(real), self.discriminator(fake))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        logs = {"loss/d": loss.detach()}
        logs.update(self.after_discriminator_step() or {})
        return logs

    def after_discriminator_step(self) -> Optional[Dict[str, Tensor]]:
        """Hook run right after each discriminator update (SR-GAN rewrites weights here)."""
        return None

    def generator_step(self, real: Tensor) -> Dict[str, Tensor]:
        opt_g, _ = self.optimizers()
        self._decay_lr(opt_g, self.hparams.lr_g)
        fake = self.generate(self.sample_latent(real.shape[0]))
        loss = self.g_loss(self.discriminator(fake))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        return {"loss/g": loss.detach()}


# ---------------------------------------------------------------------------------------------------------
# 4. SR-GAN
# ---------------------------------------------------------------------------------------------------------

@register_model("srgan")
class SRGAN(SNGAN):
    """SN-GAN + spectral regularization (static or dynamic compensation of D's weight spectra).

    Args (besides :class:`SNGAN`'s):
        sr_mode: ``static`` (top ⌊r·fraction⌋ normalised singular values set to 1, σ₁ → 1) or ``dynamic``
            (running per-index maximum of the normalised spectrum, σ₁ kept).
        sr_fraction: the static scheme's fraction of the rank (½, as the official code).
        sr_every: cadence in generator steps: on generator iteration t with t % sr_every == 0, SR runs after each
            of that iteration's discriminator updates (5, official).
        sr_layers: ``conv`` (spectrally normalised convs only, as the original) or ``all`` (also linear layers;
            use it for MLP discriminators, which have no conv).
        sr_power_iterations: power iterations that refresh the SN vectors after a rewrite.
        sr_start: generator step from which SR runs (0: from the start, as the official CIFAR-10 code). The
            official ImageNet workflow trains plain SN-GAN and resumes its snapshot with SR on (dynamic: the
            reference spectrum is the one at the first SR call, so a later start takes a trained spectrum as
            the floor instead of the random initialisation's).
    """

    def __init__(
        self,
        latent_dim: int = 128,
        arch: str = "auto",
        hidden: Sequence[int] = (128, 128, 128),
        g_channels: int = 256,
        d_channels: int = 128,
        loss: str = "hinge",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Tuple[float, float] = (0.0, 0.9),
        n_dis: int = 5,
        power_iterations: int = 1,
        lr_decay: bool = False,
        sr_mode: str = "static",
        sr_fraction: float = 0.5,
        sr_every: int = 5,
        sr_layers: str = "conv",
        sr_power_iterations: int = 1,
        sr_start: int = 0,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        if sr_mode not in _SR_MODES:
            raise ConfigError(f"sr_mode must be one of {', '.join(_SR_MODES)}, got {sr_mode!r}")
        if sr_layers not in _SR_LAYERS:
            raise ConfigError(f"sr_layers must be one of {', '.join(_SR_LAYERS)}, got {sr_layers!r}")
        if not 0.0 <= sr_fraction <= 1.0:
            raise ConfigError(f"sr_fraction must be in [0, 1], got {sr_fraction}")
        if sr_every < 1:
            raise ConfigError(f"sr_every must be >= 1, got {sr_every}")
        if sr_start < 0:
            raise ConfigError(f"sr_start must be >= 0, got {sr_start}")
        super().__init__(latent_dim=latent_dim, arch=arch, hidden=hidden, g_channels=g_channels,
                         d_channels=d_channels, loss=loss, lr_g=lr_g, lr_d=lr_d, betas=betas, n_dis=n_dis,
                         power_iterations=power_iterations, lr_decay=lr_decay, data_shape=data_shape,
                         max_gen_steps=max_gen_steps)
        self.save_hyperparameters()
        self.sr_states: Dict[str, DynamicCompensation] = {}
        self.sr_calls = 0

    def build(self, data_shape: Tuple[int, ...]) -> None:
        super().build(data_shape)
        self._sr_modules = regularizable_layers(self.discriminator, self.hparams.sr_layers)
        if not self._sr_modules:
            raise ConfigError(
                f"sr_layers={self.hparams.sr_layers} selects no spectrally normalised layer of the "
                f"{self.hparams.arch} discriminator: use sr_layers=all for MLP discriminators")

    def sr_due(self) -> bool:
        """True while the current generator iteration t is a multiple of ``sr_every`` (official cadence) and
        t ≥ ``sr_start``."""
        t = self.gen_step
        return t >= int(self.hparams.get("sr_start", 0)) and t % int(self.hparams.sr_every) == 0

    def after_discriminator_step(self) -> Optional[Dict[str, Tensor]]:
        if not self.sr_due():
            return None
        self.spectral_regularization()
        return None

    def spectral_regularization(self) -> None:
        """Rewrite every regularized layer of D (static or dynamic compensation) and refresh its SN vectors."""
        hp = self.hparams
        # broadcast rank 0's result only under a multi-process Trainer (GANModule._distributed)
        spectral_regularize_(self._sr_modules, hp.sr_mode, hp.sr_fraction, self.sr_states, hp.sr_power_iterations,
                             sync=self._distributed())
        self.sr_calls += 1

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["srgan"] = {"states": {k: v.state_dict() for k, v in self.sr_states.items()},
                               "calls": self.sr_calls}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        sr = checkpoint.get("srgan", {})
        self.sr_states = {}
        for k, st in sr.get("states", {}).items():
            comp = DynamicCompensation()
            comp.load_state_dict(st)
            self.sr_states[k] = comp
        self.sr_calls = int(sr.get("calls", 0))

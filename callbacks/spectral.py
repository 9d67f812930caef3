"""Spectral monitoring of the discriminator's weight matrices (SR-GAN, Liu et al. 2019, "spectral collapse").

Every weight of a linear or convolutional layer is read as a matrix W:

* ``nn.Linear`` weight ``(out, in)``: as it is;
* ``nn.ConvNd`` kernel ``(C_out, C_in, k_1, …, k_d)``: reshaped to ``(C_out, C_in·k_1⋯k_d)``;
* ``nn.ConvTransposeNd`` kernel ``(C_in, C_out, k…)``: permuted to ``(C_out, C_in, k…)`` first, then reshaped.

This is the matrix whose largest singular value σ₁ spectral normalisation divides by (Miyato et al. 2018
reshape conv kernels the same way). The **normalised spectrum** is σ_i / σ₁, i = 1..min(m, n), descending,
so its first entry is 1. A healthy layer has many normalised singular values of order one; spectral collapse
(srgan.md §2) is the tail dropping toward 0 — a few directions dominate, the effective rank falls — which
SR-GAN reports precedes mode collapse. Per layer we track

* ``sigma_max``  = σ₁ of the *raw* weight (before SN divides it), the quantity SN controls;
* ``frac_above`` = #{i : σ_i/σ₁ > 0.5} / min(m, n)  (fraction of the spectrum above the threshold);
* ``mean``       = mean_i σ_i/σ₁.

The collapse flag for a layer is raised when ``frac_above`` falls more than ``collapse_drop`` (absolute)
below its running maximum over the run.
"""

from __future__ import annotations

import io
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from callbacks._util import check_schedule, EveryNGenSteps, check_eval_options, atomic_write_bytes, gen_step_of, log_eval, run_dir

__all__ = ["weight_matrix", "matrix_to_weight", "module_weight", "normalized_spectrum", "spectral_stats", "is_transposed",
           "discriminator_of", "monitored_layers", "layer_spectrum", "spectrum_png", "SpectralMonitor"]


# ---------------------------------------------------------------------------------------------------------
# Weight <-> matrix
# ---------------------------------------------------------------------------------------------------------

def weight_matrix(weight: Tensor, transposed: bool = False) -> Tensor:
    """The matrix W of a layer weight (see module doc).

    ``weight`` of shape ``(C_out, C_in, k…)`` (conv) or ``(out, in)`` (linear) → ``(C_out, C_in·∏k)``.
    With ``transposed=True`` the weight is a ConvTranspose kernel ``(C_in, C_out, k…)``: dims 0 and 1 are
    swapped first. 1-D weights (biases, norms) are returned as a ``(1, n)`` row.
    """
    if weight.dim() <= 1:
        return weight.reshape(1, -1)
    if transposed:
        weight = weight.transpose(0, 1)
    return weight.reshape(weight.shape[0], -1)


def matrix_to_weight(matrix: Tensor, like: Tensor, transposed: bool = False) -> Tensor:
    """Inverse of :func:`weight_matrix`: the matrix ``(C_out, C_in·∏k)`` back to the shape of ``like``
    (``transposed=True``: ``like`` is a ConvTranspose kernel ``(C_in, C_out, k…)``)."""
    if like.dim() <= 1:
        return matrix.reshape(like.shape)
    if transposed:
        shape = (like.shape[1], like.shape[0], *like.shape[2:])
        return matrix.reshape(shape).transpose(0, 1).contiguous()
    return matrix.reshape(like.shape)


def is_transposed(module: nn.Module) -> bool:
    """True for ``nn.ConvTranspose{1,2,3}d`` (and subclasses), whose kernel is stored ``(C_in, C_out, k…)``."""
    return isinstance(module, nn.modules.conv._ConvTransposeNd)


def module_weight(module: nn.Module) -> Tensor:
    """The raw (un-normalised) weight of ``module``:

    * ``module.parametrizations.weight.original`` under ``torch.nn.utils.parametrizations.spectral_norm``;
    * ``module.weight_orig`` under the legacy ``torch.nn.utils.spectral_norm``;
    * ``module.weight`` otherwise.
    """
    params = getattr(module, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original
    if hasattr(module, "weight_orig"):
        return module.weight_orig
    return module.weight


def normalized_spectrum(weight: Tensor, transposed: bool = False) -> Tensor:
    """σ_i(W) / σ₁(W), descending, float64, for W = :func:`weight_matrix` (``weight``, ``transposed``).

    The first entry is 1 (an all-zero matrix gives all zeros). Computed with ``torch.linalg.svdvals`` in float64
    on the CPU.
    """
    s = torch.linalg.svdvals(weight_matrix(weight.detach(), transposed).to("cpu", torch.float64))
    top = s[0] if s.numel() else torch.tensor(0.0, dtype=torch.float64)
    return s / top if float(top) > 0 else torch.zeros_like(s)


def spectral_stats(weight: Tensor, transposed: bool = False, threshold: float = 0.5) -> Dict[str, float]:
    """``sigma_max`` = σ₁(W), ``frac_above`` = mean_i 1[σ_i/σ₁ > threshold], ``mean`` = mean_i σ_i/σ₁."""
    s = torch.linalg.svdvals(weight_matrix(weight.detach(), transposed).to("cpu", torch.float64))
    top = float(s[0]) if s.numel() else 0.0
    r = s / top if top > 0 else torch.zeros_like(s)
    return {"sigma_max": top, "frac_above": float((r > threshold).double().mean()), "mean": float(r.mean())}


# ---------------------------------------------------------------------------------------------------------
# Which layers
# ---------------------------------------------------------------------------------------------------------

_WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def discriminator_of(pl_module: nn.Module) -> Optional[nn.Module]:
    """The module's ``discriminator`` (or ``critic``) network, ``None`` when it has neither."""
    for name in ("discriminator", "critic"):
        net = getattr(pl_module, name, None)
        if isinstance(net, nn.Module):
            return net
    return None


def monitored_layers(net: nn.Module, pattern: Optional[str] = None) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` for every ``nn.Linear`` / ``nn.Conv*`` / ``nn.ConvTranspose*`` of ``net`` (its
    ``named_modules`` path; SN-wrapped or not), optionally only names matching the regex ``pattern``."""
    rx = re.compile(pattern) if pattern else None
    out = []
    for name, mod in net.named_modules():
        if isinstance(mod, _WEIGHT_LAYERS) and (rx is None or rx.search(name)):
            out.append((name or type(mod).__name__, mod))
    return out


def layer_spectrum(module: nn.Module) -> Tuple[Tensor, float]:
    """(normalised spectrum σ_i/σ₁ as float64, σ₁) of the raw weight of ``module``."""
    w = module_weight(module)
    s = torch.linalg.svdvals(weight_matrix(w.detach(), is_transposed(module)).to("cpu", torch.float64))
    top = float(s[0]) if s.numel() else 0.0
    return (s / top if top > 0 else torch.zeros_like(s)), top


# ---------------------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------------------

def spectrum_png(steps: List[int], spectra: List[Tensor], title: str = "") -> bytes:
    """PNG: left, the normalised spectra σ_i/σ₁ against index i, one curve per evaluation (colour = gen step);
    right, the same as a heatmap gen step × index."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    k = max(len(s) for s in spectra)
    mat = np.full((len(spectra), k), np.nan)
    for i, s in enumerate(spectra):
        mat[i, : len(s)] = s.numpy()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    cmap = plt.get_cmap("viridis")
    for i, s in enumerate(spectra):
        a.plot(np.arange(1, len(s) + 1), s.numpy(), color=cmap(i / max(1, len(spectra) - 1)), lw=1)
    a.set_xlabel("index i")
    a.set_ylabel("σ_i / σ_1")
    a.set_ylim(0, 1.05)
    a.axhline(0.5, color="0.6", ls=":", lw=1)
    a.set_title(f"{title} (dark → light: gen step {steps[0]} → {steps[-1]})", fontsize=8)
    im = b.imshow(mat, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="magma", interpolation="nearest",
                  extent=(0.5, k + 0.5, -0.5, len(steps) - 0.5))
    ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int)
    b.set_yticks(ticks)
    b.set_yticklabels([str(steps[t]) for t in ticks])
    b.set_xlabel("index i")
    b.set_ylabel("gen step")
    fig.colorbar(im, ax=b, label="σ_i / σ_1")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Callback
# ---------------------------------------------------------------------------------------------------------

def flag_reference(history: Sequence[Tuple[int, float]], step: int, window: Optional[int] = None) -> float:
    """The level SpectralMonitor's collapse flag compares ``frac_above`` with at generator step ``step``: the maximum
    of the fraction over the evaluations ``(t, frac)`` of ``history`` with t ≤ step — all of them (``window=None``,
    the running maximum) or those of the last ``window`` generator steps (t ≥ step − window)."""
    return max(f for t, f in history if t <= step and (window is None or t >= step - window))


class SpectralMonitor(EveryNGenSteps, pl.Callback):
    """Log the discriminator's normalised singular-value spectra every ``every_n_gen_steps`` generator steps
    and at the end of training (global rank 0 only: the weights are identical on every rank).

    Per monitored layer ``<layer>`` (its path in the discriminator, e.g. ``net.0``):

    * ``spectral/<layer>/sigma_max``  σ₁ of the raw weight;
    * ``spectral/<layer>/frac_above`` #{σ_i/σ₁ > ``threshold``} / min(m, n);
    * ``spectral/<layer>/mean``       mean σ_i/σ₁;
    * ``spectral/<layer>/collapse``   1 when ``frac_above < (1 − collapse_drop) · max``, else 0. ``max`` is the
      running maximum of ``frac_above`` over the run, current value included (the default, ``flag_window=None``),
      or its maximum over the evaluations of the last ``flag_window`` generator steps: a *fall* within that time,
      as in the paper's figures, rather than a slow concentration since the random initialisation's flat spectrum
      (docs/results/srgan/README.md: on stacked digits the running-maximum flag fires in 3/3 SN-GAN runs that do
      not collapse, the 2,000-step window in 1/3, at a drop of the mode count; both fire at SN-GAN's collapses
      on the 2-D grid);

    plus ``spectral/collapsed_layers`` (how many layers are flagged). The first time a layer is flagged a
    one-line warning is printed. Pictures (spectrum curves over time + step × index heatmap) go to
    ``<run dir>/plots/spectral/<layer>.png`` and to W&B (``spectral/<layer>``); the raw spectra to
    ``plots/spectral/spectra.pt`` at the end. The SVDs are cheap (tens of ms for a DCGAN discriminator);
    rendering the PNGs is not (about a second per layer), so by default they are drawn once, at the end of
    training, from the whole history.

    Args:
        every_n_gen_steps: cadence (SR-GAN monitors every 1000 iterations).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        threshold: level of the normalised spectrum counted by ``frac_above`` (0.5, SR-GAN).
        collapse_drop: relative drop of ``frac_above`` below its running maximum that raises the flag.
        layers: regex selecting layer names (default: every linear / conv layer).
        flag_window: ``None`` (running maximum since the start) or a number of generator steps (see above).
        plots: ``"end"`` (PNGs + spectra once, at the end of training), ``"every"`` (also at each evaluation,
            overwriting) or ``"none"``.
    """

    def __init__(self, every_n_gen_steps: int = 1000, threshold: float = 0.5, collapse_drop: float = 0.5,
                 layers: Optional[str] = None, plots: str = "end", flag_window: Optional[int] = None, schedule: str = "linear"):
        from zoo.errors import ConfigError

        check_eval_options("spectral", every_n_gen_steps)
        if not 0 < threshold < 1:
            raise ConfigError(f"spectral.threshold must be in (0, 1) (a level of σ_i/σ_1), got {threshold}")
        if not 0 < collapse_drop < 1:
            raise ConfigError(f"collapse_drop must be in (0, 1), got {collapse_drop}")
        if plots not in ("end", "every", "none"):
            raise ConfigError(f"plots must be 'end', 'every' or 'none', got {plots!r}")
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("spectral", schedule)
        self.threshold, self.collapse_drop = float(threshold), float(collapse_drop)
        if flag_window is not None and int(flag_window) <= 0:
            raise ConfigError(f"spectral.flag_window must be a positive number of generator steps (or null for the "
                              f"running maximum since the start), got {flag_window}")
        self.layers, self.plots = layers, plots
        self.flag_window = None if flag_window is None else int(flag_window)
        self.fracs: Dict[str, List[Tuple[int, float]]] = {}  # (step, frac_above) per layer inside the window
        self._last = -1
        self.max_frac: Dict[str, float] = {}
        self.collapsed_at: Dict[str, int] = {}
        self.history: Dict[str, Tuple[List[int], List[Tensor]]] = {}

    # -- measurement (usable without a Trainer) -------------------------------------------------------
    def measure(self, net: nn.Module, step: int = 0) -> Dict[str, float]:
        """Measure every monitored layer of ``net``, update the running maxima / history, return the scalars."""
        out: Dict[str, float] = {}
        flagged = 0
        for name, mod in monitored_layers(net, self.layers):
            r, top = layer_spectrum(mod)
            frac = float((r > self.threshold).double().mean()) if r.numel() else 0.0
            self.max_frac[name] = max(self.max_frac.get(name, frac), frac)
            if self.flag_window is None:
                best = self.max_frac[name]
            else:  # only the evaluations inside the window are kept (and saved in checkpoints)
                seen = [(t, f) for t, f in self.fracs.get(name, []) if step - self.flag_window <= t < step]
                self.fracs[name] = seen + [(int(step), frac)]
                best = flag_reference(self.fracs[name], step, self.flag_window)
            collapse = frac < (1.0 - self.collapse_drop) * best
            if collapse:
                flagged += 1
                if name not in self.collapsed_at:
                    self.collapsed_at[name] = int(step)
                    print(f"[zoo] SpectralMonitor: spectral collapse in discriminator layer {name!r} at gen_step "
                          f"{step}: fraction of σ_i/σ_1 > {self.threshold} fell to {frac:.3f} (max "
                          + (f"over the last {self.flag_window} steps " if self.flag_window else "so far ")
                          + f"{best:.3f})", file=sys.stderr)
            out[f"spectral/{name}/sigma_max"] = top
            out[f"spectral/{name}/frac_above"] = frac
            out[f"spectral/{name}/mean"] = float(r.mean()) if r.numel() else 0.0
            out[f"spectral/{name}/collapse"] = float(collapse)
            steps, spectra = self.history.setdefault(name, ([], []))
            if steps and steps[-1] == step:
                steps.pop(), spectra.pop()
            steps.append(int(step))
            spectra.append(r.float())
        if out:
            out["spectral/collapsed_layers"] = float(flagged)
        return out

    # -- Lightning hooks ----------------------------------------------------------------------------------
    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, final: bool = False) -> None:
        self.mark(pl_module, trainer)
        if not trainer.is_global_zero:
            return
        net = discriminator_of(pl_module)
        if net is None:
            return
        step = gen_step_of(pl_module, trainer)
        metrics = self.measure(net, step)
        if not metrics:
            return
        log_eval(trainer, pl_module, metrics)
        if self.plots == "every" or (final and self.plots == "end"):
            self.save_plots(trainer, final)

    def save_plots(self, trainer: pl.Trainer, final: bool = False) -> None:
        folder = run_dir(trainer) / "plots" / "spectral"
        wandb = [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]
        for name, (steps, spectra) in self.history.items():
            path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".png")
            atomic_write_bytes(path, spectrum_png(steps, spectra, f"D layer {name}"))
            for lg in wandb:
                lg.log_image(key=f"spectral/{name}", images=[str(path)], step=trainer.global_step)
        if final:
            buf = io.BytesIO()
            torch.save({n: {"steps": s, "spectra": [t.clone() for t in sp]} for n, (s, sp) in self.history.items()},
                       buf)
            atomic_write_bytes(folder / "spectra.pt", buf.getvalue())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.due(pl_module, trainer):
            self._run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last != gen_step_of(pl_module, trainer):
            self._run(trainer, pl_module, final=True)
        elif self.plots != "none" and trainer.is_global_zero and self.history:
            self.save_plots(trainer, final=True)

    def state_dict(self):
        return {"last": self._last, "max_frac": dict(self.max_frac), "collapsed_at": dict(self.collapsed_at),
                "fracs": {k: [list(x) for x in v] for k, v in self.fracs.items()}}

    def load_state_dict(self, state):
        self._last = int(state.get("last", -1))
        self.max_frac = {k: float(v) for k, v in state.get("max_frac", {}).items()}
        self.collapsed_at = {k: int(v) for k, v in state.get("collapsed_at", {}).items()}
        self.fracs = {k: [(int(t), float(f)) for t, f in v] for k, v in state.get("fracs", {}).items()}

"""Sample plots: scatter plots for 2-D data, image grids for images (PNG, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks._util import check_schedule, EveryNGenSteps, check_eval_options, can_sample, data_shape_of, atomic_write_bytes, eval_samples, gen_step_of, run_dir


def scatter_png(samples: Tensor, real: Optional[Tensor] = None, modes: Optional[Tensor] = None,
                title: str = "", lim: Optional[float] = None) -> bytes:
    """PNG bytes of a 2-D scatter: real data (grey), generated samples (blue), mode means (red crosses)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        r = real.detach().float().cpu()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="real", rasterized=True)
    s = samples.detach().float().cpu()
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:blue", alpha=0.6, label="generated", rasterized=True)
    if modes is not None:
        m = modes.detach().float().cpu()
        ax.scatter(m[:, 0], m[:, 1], marker="x", c="tab:red", s=40, label="modes")
    if lim is None:
        ref = real if real is not None else s
        lim = float(ref.abs().max()) * 1.3 + 1e-3
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def grid_png(images: Tensor, nrow: int = 8) -> bytes:
    """PNG bytes of an image grid; images ``(N, C, H, W)`` in [-1, 1]."""
    from PIL import Image
    from torchvision.utils import make_grid

    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    if x.shape[1] not in (1, 3):
        x = x[:, :3]
    grid = make_grid(x, nrow=nrow, padding=1, pad_value=1.0)
    arr = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


class SamplePlot(EveryNGenSteps, pl.Callback):
    """Save a scatter plot (2-D data) or image grid every ``every_n_gen_steps`` and at the end of training.

    Files go to ``<run dir>/plots/samples_gen<step>.png`` and ``plots/samples_final.png``; each is also
    logged to W&B (``samples``) when a WandbLogger is active.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only the final plot).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        n_samples: points in a scatter plot.
        n_images: images in a grid.
        seed: seed of the plotted samples.
    """

    def __init__(self, every_n_gen_steps: int = 1000, n_samples: int = 2500, n_images: int = 64, seed: int = 0, schedule: str = "linear"):
        check_eval_options("sample_plot", every_n_gen_steps, n_samples=n_samples, n_images=n_images)
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("sample_plot", schedule)
        self.n_samples, self.n_images, self.seed = int(n_samples), int(n_images), int(seed)
        self._last = -1
        self.last_path: Optional[Path] = None

    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Optional[bytes]:
        shape = data_shape_of(pl_module) or ()
        step = gen_step_of(pl_module, trainer)
        if len(shape) == 1 and shape[0] == 2:
            x = eval_samples(pl_module, self.n_samples, self.seed)
            dm = getattr(trainer, "datamodule", None)
            real = dm.reference_samples(self.n_samples) if hasattr(dm, "reference_samples") else None
            return scatter_png(x, real, getattr(dm, "modes", None),
                               title=f"{type(pl_module).__name__} — gen_step {step}")
        if len(shape) == 3:
            return grid_png(eval_samples(pl_module, self.n_images, self.seed))
        return None

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str) -> Optional[Path]:
        self.mark(pl_module, trainer)
        if not trainer.is_global_zero or not can_sample(pl_module):
            return None
        png = self.render(trainer, pl_module)
        if png is None:
            return None
        path = run_dir(trainer) / "plots" / f"{name}.png"
        atomic_write_bytes(path, png)
        self.last_path = path
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.log_image(key="samples", images=[str(path)], step=trainer.global_step)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.due(pl_module, trainer):
            self.save(trainer, pl_module, f"samples_gen{gen_step_of(pl_module, trainer):07d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module, "samples_final")

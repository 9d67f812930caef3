"""A progress bar in generator steps: the budget a user sets (``max_gen_steps``) is what the bar counts.

Lightning's bar counts the batches of the current epoch (``Epoch 7: 51% 200/390``). For a GAN trained on an endless
stream of 2-D samples an epoch is an artefact of the sample size, and the run's budget is in generator updates, so
:class:`GenStepProgressBar` (a subclass of Lightning's ``TQDMProgressBar``) shows

* one bar counting generator steps against the budget — a zoo method's ``max_gen_steps``, or the top-level
  ``--max_gen_steps`` of any module (:class:`callbacks.gen_steps.GenStepCounter`) — with tqdm's rate and ETA;
  without a step budget but with ``trainer.max_time``, the bar counts elapsed seconds against that time instead
  (its postfix gives the generator step);
* in its postfix the latest evaluation, as plain numbers: ``modes=25 hq=83% kl=0.067`` or ``fid=38``;
* Lightning's epoch bar below it only for finite datasets (hidden for datamodules with ``endless = True``, the
  2-D mixtures), with the training scalars in plain notation (no ``3e+3``).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional, Tuple

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer, TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

from callbacks._util import gen_step_of

__all__ = ["GenStepProgressBar", "budget_of", "eval_postfix"]


def budget_of(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Tuple[str, Optional[float]]:
    """``("steps", N)`` for a generator-step budget, ``("seconds", T)`` for ``max_time`` alone, ``("steps", None)``
    without either."""
    steps = getattr(pl_module, "max_gen_steps", None)
    if not steps:
        from callbacks.gen_steps import GenStepCounter

        counter = GenStepCounter.of(trainer)
        steps = counter.max_gen_steps if counter is not None else None
    if steps:
        return "steps", int(steps)
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None:
        remaining, elapsed = timer.time_remaining("train"), timer.time_elapsed("train")
        if remaining is not None:
            return "seconds", float(remaining) + float(elapsed)
    return "steps", None


def _plain(v: float) -> str:
    """A number without scientific notation: integers as such, else 4 significant digits."""
    v = float(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}" if 1e-4 <= abs(v) < 1e6 else f"{v:.6f}".rstrip("0")


def eval_postfix(metrics: Dict[str, Any]) -> Dict[str, str]:
    """The latest evaluation for a bar's postfix: modes and HQ (as a percentage) or FID, as plain numbers."""
    out: Dict[str, str] = {}
    get = lambda k: float(metrics[k]) if k in metrics else None  # noqa: E731
    modes, hq, kl, fid = get("eval/modes"), get("eval/hq"), get("eval/kl"), get("eval/fid")
    if modes is not None:
        out["modes"] = str(int(round(modes)))
    if hq is not None:
        out["hq"] = f"{int(round(100 * hq))}%"
    if kl is not None:
        out["kl"] = f"{kl:.3f}"
    if fid is not None:
        out["fid"] = str(int(round(fid)))
    return out


class GenStepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting generator steps (module docstring).

    Args:
        refresh_rate: update the bars every this many training steps.
        process_position: as Lightning's (several concurrent trainers).
        epochs: ``"auto"`` (show Lightning's epoch bar unless the datamodule is ``endless``), ``"show"``, ``"hide"``.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, epochs: str = "auto"):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=False)
        if epochs not in ("auto", "show", "hide"):
            from zoo.errors import ConfigError

            raise ConfigError(f"epochs must be 'auto', 'show' or 'hide', got {epochs!r}")
        self.epochs = epochs
        self.gen_bar: Optional[Tqdm] = None
        self._kind, self._total = "steps", None
        self._calls = 0
        self._timer: Optional[Timer] = None

    def _show_epochs(self, trainer: pl.Trainer) -> bool:
        if self.epochs != "auto":
            return self.epochs == "show"
        return not bool(getattr(getattr(trainer, "datamodule", None), "endless", False))

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, Any]:
        """Lightning's bar metrics without the generator step (the top bar shows it) and in plain notation."""
        items = super().get_metrics(trainer, pl_module)
        return {k: (_plain(v) if isinstance(v, (int, float)) else v) for k, v in items.items()
                if k != "trainer/gen_step"}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epochs_shown = self._show_epochs(trainer)
        if self._epochs_shown:
            super().on_train_start(trainer, pl_module)
        else:
            self.train_progress_bar = Tqdm(disable=True)
        self._kind, self._total = budget_of(trainer, pl_module)
        self._timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        step = gen_step_of(pl_module, trainer)
        timed = self._kind == "seconds"
        self.gen_bar = Tqdm(
            desc="time (s)" if timed else "gen steps", total=self._total, initial=0 if timed else step,
            position=2 * self.process_position + (1 if self._epochs_shown else 0), disable=self.is_disabled,
            leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0.1, unit="s" if timed else "step")

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._epochs_shown:
            super().on_train_epoch_start(trainer, *args)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._epochs_shown:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._calls += 1
        if self.gen_bar is None or self.gen_bar.disable or self._calls % max(1, self.refresh_rate):
            return
        self._update(trainer, pl_module)

    def _update(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = gen_step_of(pl_module, trainer)
        post = eval_postfix(trainer.callback_metrics)
        if self._kind == "seconds":
            n = int(self._timer.time_elapsed("train")) if self._timer is not None else self.gen_bar.n
            post = {"gen_step": str(step), **post}
        else:
            n = step
        if self.gen_bar.total is not None:
            n = min(n, int(self.gen_bar.total))
        self.gen_bar.n = n
        self.gen_bar.set_postfix(post, refresh=False)
        self.gen_bar.refresh()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epochs_shown:
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.gen_bar is not None:
            if not self.gen_bar.disable:
                self._update(trainer, pl_module)
            self.gen_bar.close()
        super().on_train_end(trainer, pl_module)

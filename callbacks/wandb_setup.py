"""Consistent W&B runs: generator steps on the x-axis, best-value summaries, and the run's identity in its config.

When a :class:`~pytorch_lightning.loggers.WandbLogger` is among the trainer's loggers, :class:`WandbSetup`
(rank zero only, once per W&B run)

* makes ``trainer/gen_step`` the x-axis of every metric: ``define_metric("trainer/gen_step")`` and
  ``define_metric("*", step_metric="trainer/gen_step", step_sync=True)``. Lightning's own
  ``trainer/global_step`` counts every optimizer step (``n_dis`` critic steps + 1 generator step per generator
  iteration), so it is not comparable across methods; ``gen_step`` is;
* defines the evaluation summaries with the direction of each metric (:data:`SUMMARIES`): the **best** value over
  training under ``min`` (FID, KL, W2: lower is better) or ``max`` (modes, HQ: higher is better), and the
  **final** value under ``last``. In the W&B summary this reads ``{"eval/fid": {"min": ..., "last": ...}}``;
  the leaderboard (:mod:`zoo.leaderboard`) uses ``last`` by default, the same value ``results.json`` holds;
* records ``method``, ``dataset``, ``seed``, ``budget`` (``max_gen_steps``, ``max_time_s``, ``max_steps``,
  ``max_epochs``), ``world_size`` and ``versions`` in the run config, and at the end of fit ``wall_time_s`` and
  ``gen_steps`` in the run summary.

It never calls ``wandb.login`` (so it never prompts) and never reads or writes credentials: nothing from the
environment goes into the config. Without a WandbLogger it does nothing, so it is safe in every run.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional

import pytorch_lightning as pl

from zoo.registry import method_name
from callbacks._util import gen_step_of
from callbacks.history import run_clock

__all__ = ["WandbSetup", "SUMMARIES", "X_AXIS", "find_wandb_logger", "run_identity"]

#: ids of the W&B runs already configured in this process (the callback may be added twice).
_CONFIGURED: set = set()

#: x-axis of every W&B chart: the generator-step counter every zoo member logs.
X_AXIS = "trainer/gen_step"

#: W&B summary aggregations per evaluation metric: the best value in the metric's direction, and the last one.
SUMMARIES: Dict[str, str] = {
    "eval/fid": "min,last",
    "eval/kl": "min,last",
    "eval/w2": "min,last",
    "eval/off_support": "min,last",
    "eval/modes": "max,last",
    "eval/hq": "max,last",
}


def find_wandb_logger(trainer: pl.Trainer):
    """The trainer's WandbLogger, or ``None``."""
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover - wandb is a dependency
        return None
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            return lg
    return None


def _max_time_s(trainer: pl.Trainer) -> Optional[float]:
    from pytorch_lightning.callbacks import Timer

    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and getattr(cb, "_duration", None) is not None:
            return float(cb._duration)
    return None


def run_identity(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Dict[str, Any]:
    """``method``, ``dataset``, ``seed``, ``budget``, ``world_size``, ``versions`` of a run (no credentials)."""
    from callbacks.results import versions

    dm = getattr(trainer, "datamodule", None)
    seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything (train.py --seed_everything)
    max_steps = int(trainer.max_steps) if trainer.max_steps is not None and trainer.max_steps >= 0 else None
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    return {
        "method": method_name(pl_module),
        "model_class": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
        "dataset": (getattr(dm, "name", None) or type(dm).__name__) if dm is not None else None,
        "seed": int(seed) if seed is not None and seed.lstrip("-").isdigit() else None,
        "budget": {
            "max_gen_steps": getattr(pl_module, "max_gen_steps", None),
            "max_time_s": _max_time_s(trainer),
            "max_steps": max_steps,
            "max_epochs": max_epochs,
        },
        "world_size": int(trainer.world_size),
        "versions": versions(),
    }


class WandbSetup(pl.Callback):
    """Configure the active W&B run once: gen_step x-axis, min/max/last summaries, identity config.

    Args:
        summaries: metric name -> W&B summary aggregations (default :data:`SUMMARIES`).
        finish_on_teardown: call ``run.finish()`` when ``fit`` tears down, so the run is flushed and closed even
            when training is driven in-process (tests, notebooks, ``zoo.cli.main`` called twice); otherwise the
            next WandbLogger would silently reuse the still-open run.
    """

    def __init__(self, summaries: Optional[Dict[str, str]] = None, finish_on_teardown: bool = True):
        self.summaries = dict(SUMMARIES if summaries is None else summaries)
        self.finish_on_teardown = bool(finish_on_teardown)
        self._t0: Optional[float] = None

    @staticmethod
    def _rank_zero_run(trainer: pl.Trainer):
        """The active W&B run on global rank 0 (``None`` elsewhere or without a WandbLogger)."""
        if not trainer.is_global_zero:
            return None
        logger = find_wandb_logger(trainer)
        return logger.experiment if logger is not None else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()
        run = self._rank_zero_run(trainer)
        if run is None:
            return
        key = str(getattr(run, "id", None) or id(run))
        if key in _CONFIGURED or not callable(getattr(run, "define_metric", None)):
            return  # already configured (the callback may be added twice) or a disabled/dummy run
        run.define_metric(X_AXIS)
        run.define_metric("*", step_metric=X_AXIS, step_sync=True, overwrite=True)
        for name, summary in self.summaries.items():
            run.define_metric(name, step_metric=X_AXIS, step_sync=True, summary=summary, overwrite=True)
        run.config.update(run_identity(trainer, pl_module), allow_val_change=True)
        _CONFIGURED.add(key)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        summary = getattr(self._rank_zero_run(trainer), "summary", None)
        if summary is None:
            return
        values = {"gen_steps": gen_step_of(pl_module, trainer)}
        clock = run_clock(trainer)
        if clock is not None:  # every segment of a resumed run
            values["wall_time_s"] = round(clock.wall_s(), 3)
        elif self._t0 is not None:
            values["wall_time_s"] = round(time.perf_counter() - self._t0, 3)
        summary.update(values)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.finish_on_teardown or stage != "fit" or not trainer.is_global_zero:
            return
        logger = find_wandb_logger(trainer)
        run = getattr(logger, "_experiment", None) if logger is not None else None
        key = str(getattr(run, "id", None) or id(run)) if run is not None else None
        if key in _CONFIGURED and callable(getattr(run, "finish", None)):  # once, and only runs we configured
            _CONFIGURED.discard(key)
            run.finish()

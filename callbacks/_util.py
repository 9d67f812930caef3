"""Helpers shared by the callbacks (no method-specific knowledge)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor


def eval_samples(pl_module: pl.LightningModule, n: int, seed: int = 0) -> Tensor:
    """``pl_module.sample(n)`` under a forked, seeded RNG, so evaluation never perturbs training's random
    stream (resumed runs stay bit-identical whether or not a callback ran) and is repeatable."""
    devices = [pl_module.device] if pl_module.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return pl_module.sample(int(n)).detach()


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's directory: the first logger's ``log_dir`` (CSV logs, config, results, plots)."""
    d = None
    if trainer.loggers:
        d = getattr(trainer.loggers[0], "log_dir", None)
    return Path(d or trainer.default_root_dir)


def atomic_write_bytes(path: os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    return repr(x)


def gen_step_of(pl_module: pl.LightningModule, trainer: Optional[pl.Trainer] = None) -> int:
    """The generator-step counter of a zoo module, or ``global_step`` for other LightningModules."""
    if hasattr(pl_module, "gen_step"):
        return int(pl_module.gen_step)
    return int(trainer.global_step if trainer is not None else 0)


class EveryNGenSteps:
    """Mixin for evaluation callbacks: call ``self._run(trainer, pl_module)`` at the end of each training step that
    reaches or passes a multiple of ``every_n_gen_steps`` (exactly at the multiple when a step trains one batch;
    at the step boundary after it when the datamodule groups batches), and once at the end of training unless
    the last step was just evaluated. The step when it last fired is saved in the checkpoint."""

    every_n_gen_steps: int
    _last: int = -1

    def _run(self, trainer, pl_module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.due(pl_module, trainer):
            self._run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last != gen_step_of(pl_module, trainer):
            self._run(trainer, pl_module)

    def due(self, pl_module, trainer) -> bool:
        if not self.every_n_gen_steps or self.every_n_gen_steps <= 0:
            return False
        step, n = gen_step_of(pl_module, trainer), self.every_n_gen_steps
        return step > 0 and step // n > max(self._last, 0) // n

    def mark(self, pl_module, trainer) -> None:
        self._last = gen_step_of(pl_module, trainer)

    def state_dict(self):
        return {"last": self._last}

    def load_state_dict(self, state):
        self._last = int(state.get("last", -1))


def log_step(trainer: pl.Trainer) -> int:
    """The step Lightning gives the rows ``self.log`` writes during the current training step (the index of the
    training step, ``fit_loop.epoch_loop._batches_that_stepped``), so evaluation rows share the training rows' axis
    and a resumed run can tell the rows before its checkpoint from those after (:mod:`callbacks.history`);
    ``global_step`` where the loop does not expose it."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(step) if step is not None else int(trainer.global_step)


def log_eval(trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: dict) -> None:
    """Send evaluation scalars straight to every logger (at the current step, with ``trainer/gen_step``
    beside them, and ``time/wall_s`` / ``time/cpu_s`` — the run's seconds so far over all its segments — when the
    trainer has a :class:`callbacks.history.RunHistory`) and keep them in ``trainer.callback_metrics`` for checkpoints and ``results.json``.

    ``self.log`` from a callback would only reach the loggers on ``log_every_n_steps`` boundaries; evaluation
    runs on its own cadence, so it logs directly.
    """
    values = {k: float(v) for k, v in metrics.items()}
    values["trainer/gen_step"] = float(gen_step_of(pl_module, trainer))
    from callbacks.history import run_clock

    clock = run_clock(trainer)
    if clock is not None:  # the run's cost so far, over all its segments (wall-clock and CPU curves)
        values["time/wall_s"] = round(clock.wall_s(), 3)
        values["time/cpu_s"] = round(clock.cpu_s(), 3)
    step = log_step(trainer)
    for lg in trainer.loggers:
        lg.log_metrics(values, step=step)
    for k, v in values.items():
        trainer.callback_metrics[k] = torch.tensor(v)

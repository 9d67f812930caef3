"""Helpers shared by the callbacks (no method-specific knowledge)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor


# ---------------------------------------------------------------------------------------------- sampling protocol
#: how evaluation draws samples from a module, tried in this order (README "Plug in your own method")
SAMPLING_PROTOCOL = (
    "sample(n)",
    "a `generator` network and a latent size (hparams.latent_dim or latent_dim): generator(z), z ~ N(0, I)",
    "forward(z) with that latent size",
)


def latent_dim_of(pl_module: Any) -> Optional[int]:
    """``hparams.latent_dim`` or a ``latent_dim`` attribute, when it is a positive int."""
    hp = getattr(pl_module, "hparams", None)
    value = hp.get("latent_dim") if hasattr(hp, "get") else None
    if value is None:
        value = getattr(pl_module, "latent_dim", None)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def sampling_route(pl_module: Any) -> Optional[str]:
    """Which entry of :data:`SAMPLING_PROTOCOL` applies: ``"sample"``, ``"generator"``, ``"forward"`` or ``None``."""
    if callable(getattr(pl_module, "sample", None)):
        return "sample"
    if latent_dim_of(pl_module) is None:
        return None
    if isinstance(getattr(pl_module, "generator", None), torch.nn.Module):
        return "generator"
    forward = getattr(type(pl_module), "forward", None)
    if forward is not None and forward is not pl.LightningModule.forward:
        return "forward"
    return None


def can_sample(pl_module: Any) -> bool:
    """True when evaluation can draw samples from ``pl_module`` (:func:`sampling_route`)."""
    return sampling_route(pl_module) is not None


def not_evaluated_message(pl_module: Any) -> str:
    """The one line a run prints when its module cannot be sampled."""
    return (f"[zoo] {type(pl_module).__name__} cannot be sampled, so this run will not be evaluated (no metrics, no "
            f"plots): give it a sample(n) returning n samples in data space, or a `generator` network with "
            f"hparams.latent_dim (results.json records evaluated: false)")


def data_shape_of(pl_module: Any) -> Optional[tuple]:
    """The shape of one data point: the module's ``data_shape``, else its trainer's datamodule's."""
    shape = getattr(pl_module, "data_shape", None)
    if shape is None:
        trainer = getattr(pl_module, "_trainer", None)
        shape = getattr(getattr(trainer, "datamodule", None), "data_shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


@torch.no_grad()
def _foreign_samples(pl_module: Any, n: int, route: str, chunk: int = 4096) -> Tensor:
    """``n`` samples of a module without ``sample(n)``: ``generator(z)`` or ``forward(z)``, z ~ N(0, I), in eval mode
    (restored afterwards), reshaped to the data shape and checked."""
    name = type(pl_module).__name__
    latent, shape = latent_dim_of(pl_module), data_shape_of(pl_module)
    net = pl_module.generator if route == "generator" else pl_module
    what = f"{name}.generator(z)" if route == "generator" else f"{name}(z)"
    was_training = pl_module.training
    pl_module.eval()
    try:
        out = []
        for i in range(0, int(n), chunk):
            k = min(chunk, int(n) - i)
            x = net(torch.randn(k, latent, device=pl_module.device))
            if not isinstance(x, Tensor) or x.shape[0] != k:
                raise ValueError(f"{what} with z of shape ({k}, {latent}) returned "
                                 f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}: expected {k} "
                                 f"samples; give {name} a sample(n)")
            if shape is not None:
                if x[0].numel() != math.prod(shape):
                    raise ValueError(f"{what} returns samples of shape {tuple(x.shape[1:])}, which do not fit the "
                                     f"data's shape {shape}: give {name} a sample(n) returning (n, *{shape})")
                x = x.reshape(k, *shape)
            out.append(x)
    finally:
        pl_module.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def eval_samples(pl_module: pl.LightningModule, n: int, seed: int = 0) -> Tensor:
    """``n`` samples of ``pl_module`` by :data:`SAMPLING_PROTOCOL` (its ``sample(n)``; else ``generator(z)`` or
    ``forward(z)``), under a forked, seeded RNG, so evaluation never perturbs training's random stream (resumed runs
    stay bit-identical whether or not a callback ran) and is repeatable. Non-finite samples raise one line naming
    the module."""
    route = sampling_route(pl_module)
    if route is None:
        raise ValueError(not_evaluated_message(pl_module))
    devices = [pl_module.device] if pl_module.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        x = pl_module.sample(int(n)) if route == "sample" else _foreign_samples(pl_module, n, route)
    x = x.detach()
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"{type(pl_module).__name__} generated non-finite samples "
                                 f"({int((~torch.isfinite(x)).reshape(len(x), -1).any(1).sum())} of {len(x)}): the "
                                 f"run diverged; lower the learning rate or resume from the last good checkpoint")
    return x


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
    """Generator updates so far: a zoo module's ``gen_step``; for another LightningModule the steps of the optimizer
    holding its generator's parameters (:class:`callbacks.gen_steps.GenStepCounter`), else ``global_step``."""
    if hasattr(pl_module, "gen_step"):
        return int(pl_module.gen_step)
    if trainer is None:
        trainer = getattr(pl_module, "_trainer", None)
    if trainer is None:
        return 0
    from callbacks.gen_steps import GenStepCounter

    counter = GenStepCounter.of(trainer)
    if counter is not None and counter.source == GenStepCounter.GENERATOR:
        return counter.count
    return int(trainer.global_step)


def check_eval_options(group: str, every_n_gen_steps: int, **counts: int) -> None:
    """One-line :class:`zoo.errors.ConfigError` for an evaluation callback's options: the cadence
    ``every_n_gen_steps`` must be ≥ 0 (0: only at the end of training) and every count (samples, images, batch
    size) ≥ 1. ``group`` is the callback's option group in ``train.py`` (``mode_coverage``, ``fid``…)."""
    from zoo.errors import ConfigError

    if int(every_n_gen_steps) < 0:
        raise ConfigError(f"{group}.every_n_gen_steps must be >= 0 (0: only at the end of training), got "
                          f"{every_n_gen_steps}: set --{group}.every_n_gen_steps")
    for name, value in counts.items():
        if int(value) < 1:
            raise ConfigError(f"{group}.{name} must be >= 1, got {value}: set --{group}.{name}")


SCHEDULES = ("linear", "log2")


def check_schedule(group: str, schedule: str) -> str:
    """The evaluation schedule's name, or a one-line error naming the option (as :func:`check_eval_options`)."""
    from zoo.errors import ConfigError

    if schedule not in SCHEDULES:
        raise ConfigError(f"{group}.schedule: unknown schedule {schedule!r}: set --{group}.schedule to linear (every "
                          "every_n_gen_steps) or log2 (at every_n_gen_steps·2^k)")
    return schedule


def scheduled_steps(every_n_gen_steps: int, schedule: str, last: int) -> int:
    """The first scheduled generator step after ``last``: n·(⌊max(last, 0)/n⌋ + 1) for ``linear`` (n =
    ``every_n_gen_steps``), the smallest n·2^k > last (k ≥ 0) for ``log2`` — e.g. n = 250: 250, 500, 1000, 2000, …"""
    n = int(every_n_gen_steps)
    if schedule == "log2":
        step = n
        while step <= last:
            step *= 2
        return step
    return (max(last, 0) // n + 1) * n


class EveryNGenSteps:
    """Mixin for evaluation callbacks: call ``self._run(trainer, pl_module)`` at the end of each training step that
    reaches or passes a scheduled generator step (:func:`scheduled_steps`: every multiple of ``every_n_gen_steps``,
    or with ``schedule = "log2"`` the log-spaced steps n·2^k of an anytime curve; exactly at the step when a
    training step trains one batch, at the step boundary after it when the datamodule groups batches), and once at
    the end of training unless the last step was just evaluated. The step when it last fired is saved in the
    checkpoint."""

    every_n_gen_steps: int
    schedule: str = "linear"
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
        step = gen_step_of(pl_module, trainer)
        return step > 0 and step >= scheduled_steps(self.every_n_gen_steps, self.schedule, self._last)

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

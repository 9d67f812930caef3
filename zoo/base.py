"""The contract every zoo member follows: :class:`GANModule`.

A GAN in this zoo is a ``pytorch_lightning.LightningModule`` with manual optimization and

* ``build(data_shape)`` — creates the networks once the data's shape is known (from the datamodule's
  ``data_shape`` at ``setup``, or from the checkpoint when loading);
* ``sample(n) -> Tensor`` — ``n`` samples in data space: ``(n, d)`` points for vector data, images
  ``(n, C, H, W)`` in [-1, 1];
* a ``gen_step`` counter (a buffer, so it is saved in checkpoints and identical on every DDP rank),
  logged as ``trainer/gen_step``. Lightning's ``global_step`` counts *every* optimizer step
  (``n_dis`` critic steps + 1 generator step per generator iteration), so budgets, plots and leaderboards
  use ``gen_step``.

Every fresh real batch goes through :meth:`GANModule.train_batch`, which reads like Algorithm 1 of most GAN
papers: every batch feeds one discriminator step, and every ``n_dis``-th batch also feeds one generator
step::

    logs = discriminator_step(real)
    if (batch_step + 1) % n_dis == 0:
        logs |= generator_step(real)
        gen_step += 1

A ``training_step`` receives one batch, or a :class:`BatchGroup` of K consecutive batches when the datamodule
groups them (``batches_per_step`` = K: Lightning's fixed cost per step is then paid once per K batches); it runs
:meth:`train_batch` on each batch in turn and logs once. Methods whose algorithm does not fit (simultaneous
updates, staged training) override ``train_batch`` and call :meth:`count_gen_step` themselves.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Dict, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
from torch import Tensor

from datamodules.base import BatchGroup
from zoo.rng import rng_state, set_rng_state
from zoo.errors import ConfigError, check_hparams

__all__ = ["GANModule", "BatchGroup"]


class GANModule(pl.LightningModule):
    """Base class of the zoo (manual optimization, lazy network construction, ``gen_step``).

    Args:
        data_shape: shape of one data point, e.g. ``(2,)`` or ``(1, 8, 8)``. Leave ``None`` to take it
            from the datamodule's ``data_shape`` at ``setup``.
        max_gen_steps: stop training after this many generator steps (``None``: no limit; the Trainer's
            own limits still apply).
        sample_batch_size: ``sample(n)`` generates in chunks of this size to bound memory.
    """

    #: discriminator steps per generator step; subclasses set ``self.n_dis``.
    n_dis: int = 1

    def __init__(
        self,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
        sample_batch_size: int = 4096,
    ):
        super().__init__()
        self.automatic_optimization = False
        if max_gen_steps is not None and max_gen_steps <= 0:
            raise ConfigError(f"max_gen_steps must be positive, got {max_gen_steps}; use null for no limit")
        self.data_shape: Optional[Tuple[int, ...]] = tuple(int(s) for s in data_shape) if data_shape else None
        self.max_gen_steps = max_gen_steps
        self.sample_batch_size = int(sample_batch_size)
        self._built = False
        self._steps = 0  # training_step calls so far (= batch_step without grouping; saved in checkpoints)
        self._final_batch = True  # the batch being trained on is the last of its training_step
        self._latest: Dict[str, Tensor] = {}  # each training scalar at the latest batch that produced it
        self.register_buffer("gen_step_buf", torch.zeros((), dtype=torch.long))
        self.register_buffer("batch_step_buf", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ networks
    def build(self, data_shape: Tuple[int, ...]) -> None:  # pragma: no cover - abstract
        """Create the networks for data of shape ``data_shape`` (called once)."""
        raise NotImplementedError

    def check_data_shape(self, data_shape: Tuple[int, ...]) -> None:
        """Raise :class:`ConfigError` when the method cannot handle this data (override to restrict)."""

    def ensure_built(self, data_shape: Optional[Sequence[int]] = None) -> None:
        """Build the networks once, for ``data_shape`` (or the configured one)."""
        if self._built:
            return
        shape = tuple(int(s) for s in data_shape) if data_shape is not None else self.data_shape
        if shape is None:
            raise ConfigError(
                f"{type(self).__name__} does not know the data shape yet: pass data_shape=... or train it "
                "with a datamodule that has a data_shape attribute"
            )
        self.check_hparams()
        self.check_data_shape(shape)
        self.data_shape = shape
        self.hparams["data_shape"] = list(shape)
        self.build(shape)
        self._built = True

    def check_hparams(self) -> None:
        """Raise :class:`ConfigError` on hyper-parameters no method can train with (:func:`zoo.errors.check_hparams`:
        NaN/Inf, learning rates ≤ 0, Adam betas outside [0, 1), non-positive widths); methods check their own
        options in ``__init__``."""
        check_hparams(self.hparams)

    def validate_data_shape(self, data_shape: Sequence[int]) -> Tuple[int, ...]:
        """Check that data of ``data_shape`` fits this module (raises :class:`ConfigError` otherwise)."""
        shape = tuple(int(s) for s in data_shape)
        if self.data_shape is not None and self.data_shape != shape:
            raise ConfigError(
                f"{type(self).__name__} was configured for data_shape {self.data_shape} but the datamodule "
                f"gives {shape}: drop model.data_shape or choose matching data"
            )
        self.check_data_shape(shape)
        return shape

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        dm_shape = getattr(dm, "data_shape", None)
        self.ensure_built(self.validate_data_shape(dm_shape) if dm_shape is not None else None)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, building the networks first when the data shape is known."""
        if not self._built and self.data_shape is not None:
            self.ensure_built()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Refuse to checkpoint non-finite parameters (the last good checkpoint is kept), then record the data
        shape, ``gen_step`` and the random number generators' states (so a resumed run draws the same noise)."""
        self.check_finite_parameters()
        checkpoint["zoo"] = {"data_shape": list(self.data_shape or ()), "gen_step": self.gen_step,
                             "steps": self._steps, "rng": rng_state(),
                             "latest_logs": {k: torch.as_tensor(v).detach().cpu() for k, v in self._latest.items()}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        zoo = checkpoint.get("zoo", {})
        shape = zoo.get("data_shape") or checkpoint.get("hyper_parameters", {}).get("data_shape")
        self.ensure_built(shape)
        self._rng_to_restore = zoo.get("rng")
        self._steps_to_restore = zoo.get("steps")  # older checkpoints (one batch per step): batch_step
        self._latest = {k: v.to(self.device) for k, v in zoo.get("latest_logs", {}).items()}

    def on_train_start(self) -> None:
        """Restore the generators' states of a loaded checkpoint, as late as possible before the first batch
        (anything that draws random numbers while Lightning sets up cannot shift the resumed run's noise)."""
        state = getattr(self, "_rng_to_restore", None)
        if state:
            set_rng_state(state)
        self._rng_to_restore = None
        steps = getattr(self, "_steps_to_restore", None)
        self._steps = int(steps) if steps is not None else self.batch_step
        self._steps_to_restore = None

    def check_finite_parameters(self) -> None:
        """Raise ``FloatingPointError`` naming the first parameter or buffer holding NaN/Inf."""
        problem = self._non_finite_parameter()
        if problem is not None:
            raise FloatingPointError(problem)

    def _non_finite_parameter(self) -> Optional[str]:
        """The divergence message for the first parameter or buffer holding NaN/Inf, else ``None``.

        Screened with one float64 sum per tensor and one device sync: a NaN or ±Inf anywhere makes the total
        non-finite, and finite 32- or 16-bit values cannot overflow a float64 sum. Only a non-finite total (a
        divergence, or float64 values near 1e308) is followed by the exact element-wise test."""
        tensors = [t.detach() for t in chain(self.parameters(), self.buffers()) if t.is_floating_point() and t.numel()]
        if not tensors or math.isfinite(float(torch.stack([t.sum(dtype=torch.float64) for t in tensors]).sum())):
            return None
        named = [(n, t) for n, t in chain(self.named_parameters(), self.named_buffers())
                 if t.is_floating_point() and t.numel()]
        ok = torch.stack([torch.isfinite(t.detach()).all() for _, t in named])
        if bool(ok.all()):
            return None
        name, t = named[int((~ok).nonzero()[0])]
        bad = t.detach()[~torch.isfinite(t.detach())]
        return self.divergence_message(f"parameter {name}", float(bad.reshape(-1)[0]))

    # ------------------------------------------------------------------ counters
    @property
    def gen_step(self) -> int:
        """Number of generator updates so far (saved in checkpoints)."""
        return int(self.gen_step_buf)

    @property
    def batch_step(self) -> int:
        """Number of real batches consumed so far (one per ``training_step``)."""
        return int(self.batch_step_buf)

    def is_generator_turn(self) -> bool:
        """True on every ``n_dis``-th batch: the batch that also feeds a generator step."""
        return (self.batch_step + 1) % max(1, int(self.n_dis)) == 0

    def count_gen_step(self) -> None:
        """Record one generator update."""
        self.gen_step_buf.add_(1)  # in place: ``+=`` would also re-register the buffer (5 µs)

    def count_batch(self) -> None:
        """Record one real batch trained on (:meth:`train_batch` calls it last)."""
        self.batch_step_buf.add_(1)

    # ------------------------------------------------------------------ training loop
    @staticmethod
    def real_from_batch(batch) -> Tensor:
        """The data tensor of a batch: datamodules yield a tensor or a tuple ``(data, labels...)``."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def discriminator_step(self, real: Tensor) -> Dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def generator_step(self, real: Tensor) -> Dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch, batch_idx: int):
        """:meth:`train_batch` on the batch, or on each batch of a :class:`BatchGroup` in turn (stopping early once
        :meth:`step_done`), then :meth:`log_train` with each scalar's latest value (a generator loss is produced on
        generator batches only; a logged row carries the value of the latest batch that produced it)."""
        batches = batch if isinstance(batch, BatchGroup) else (batch,)
        for i, b in enumerate(batches):
            if i > 0 and self.step_done():
                break
            self._final_batch = i == len(batches) - 1
            logs = self.train_batch(self.real_from_batch(b)) or {}
            self._latest.update((k, v.detach() if isinstance(v, Tensor) else v) for k, v in logs.items())
        self._final_batch = True
        self._steps += 1
        self.log_train(self._latest)

    def train_batch(self, real: Tensor) -> Dict[str, Tensor]:
        """One real batch of the default loop (module doc): a discriminator step, on every ``n_dis``-th batch a
        generator step too; returns the values to log."""
        logs = dict(self.discriminator_step(real) or {})
        if self.is_generator_turn():
            logs.update(self.generator_step(real) or {})
            self.count_gen_step()
        self.count_batch()
        return logs

    def step_done(self) -> bool:
        """True when the rest of a :class:`BatchGroup` must not be trained on (default: the run is over)."""
        return self._is_last_step()

    def log_train(self, logs: Dict[str, Tensor]) -> None:
        """Log scalars every ``trainer.log_every_n_steps`` training steps (Lightning writes logs on that cadence)
        and stop on non-finite losses or parameters.

        The check runs where the values are logged, so a divergence is caught within ``log_every_n_steps``
        steps, without a device sync on every step. Under DDP the ranks agree on the verdict (any rank's NaN
        stops all of them). A ``divergence_handler`` (set by :class:`callbacks.DivergenceRollback`) may roll the
        run back to its last good checkpoint instead of stopping it.
        """
        if self._steps % self._log_every() != 0 and not self._is_last_step():
            return
        values = {k: (v.detach() if isinstance(v, Tensor) else torch.tensor(float(v))) for k, v in logs.items()}
        problem = self._first_non_finite(values)
        if self._distributed():
            if self.trainer.strategy.reduce_boolean_decision(problem is not None, all=False) and problem is None:
                problem = self.divergence_message("a value on another rank", float("nan"))
        if problem is not None:
            handler = getattr(self, "divergence_handler", None)
            if handler is not None and handler.rollback(self, problem):
                self._latest = {}  # the diverged values; the rolled-back run produces fresh ones
                return
            raise FloatingPointError(problem)
        if values:
            self.log_dict(values, on_step=True, on_epoch=False, prog_bar=False, sync_dist=self._distributed())
        self.log("trainer/gen_step", float(self.gen_step), on_step=True, on_epoch=False, prog_bar=True)

    def _distributed(self) -> bool:
        """True under a multi-process Trainer; standalone calls and single-process runs never communicate (an
        initialised process group alone does not mean that the other ranks run this step too)."""
        return self._trainer is not None and self.trainer.world_size > 1

    def _gather_rows(self, x: Tensor) -> Tensor:
        """``x`` of every rank (equal shapes: the samplers drop incomplete batches), concatenated in rank order;
        ``x`` itself outside DDP."""
        if not self._distributed():
            return x
        return self.all_gather(x).reshape(-1, *x.shape[1:])

    def will_log(self) -> bool:
        """True when the values of the batch being trained on will be written by :meth:`log_train` (call it
        before ``batch_step`` is incremented), so values computed only to be logged can be skipped on other
        batches: the last batch of a logging step, or the run's last batch."""
        if self._trainer is None:
            return True
        last = self.max_gen_steps is not None and (
            self.gen_step + int(self.is_generator_turn()) >= self.max_gen_steps)
        return last or (self._final_batch and (self._steps + 1) % self._log_every() == 0)

    def _log_every(self) -> int:
        """The Trainer's ``log_every_n_steps`` (1 without a Trainer)."""
        return max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 1)) if self._trainer else 1

    def _first_non_finite(self, values: Dict[str, Tensor]) -> Optional[str]:
        """The divergence message for the first non-finite logged value or parameter, else ``None``."""
        for key, value in values.items():
            if not bool(torch.isfinite(value).all()):
                return self.divergence_message(key, float(value.float().mean()))
        return self._non_finite_parameter()

    def divergence_message(self, key: str, value: float) -> str:
        ckpt = None
        if self._trainer is not None and getattr(self.trainer, "checkpoint_callback", None) is not None:
            ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", None) or None
        where = f"last good checkpoint: {ckpt}" if ckpt else "no checkpoint was written yet"
        return (
            f"training diverged: {key}={value} at gen_step {self.gen_step} (batch {self.batch_step}); "
            f"{where}; lower the learning rate or check the data"
        )

    def _is_last_step(self) -> bool:
        return self.max_gen_steps is not None and self.gen_step >= self.max_gen_steps

    def on_train_batch_start(self, batch, batch_idx: int) -> Optional[int]:
        """Train nothing when the run is already over (a finished run started again from its ``last.ckpt``)."""
        if self._is_last_step():
            self.trainer.should_stop = True
            return -1
        return None

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.max_gen_steps is not None and self.gen_step >= self.max_gen_steps:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------ sampling
    def sample_latent(self, n: int) -> Tensor:
        """Latent codes z ~ N(0, I) of size ``(n, latent_dim)`` on the module's device."""
        return torch.randn(n, int(self.hparams["latent_dim"]), device=self.device)

    def generate(self, z: Tensor) -> Tensor:
        """Map latent codes to data space (default: ``self.generator``)."""
        return self.generator(z).reshape(z.shape[0], *self.data_shape)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` samples in data space (generator in eval mode, restored afterwards)."""
        self.ensure_built()
        if n <= 0:
            return torch.empty(0, *self.data_shape, device=self.device)
        was_training = self.training
        self.eval()
        try:
            chunks = [
                self.generate(self.sample_latent(m))
                for m in _split(int(n), self.sample_batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(chunks)


def _split(n: int, size: int):
    size = max(1, size)
    for i in range(math.ceil(n / size)):
        yield min(size, n - i * size)

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

import ctypes.util
import math
import os
import random
from itertools import chain
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from zoo.errors import ConfigError

# Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 for the whole process; every Adam step then calls
# torch.cuda.is_available(), which first tries to dlopen NVML. Without NVML (CPU machines) that attempt can only fail
# and fall back, and it cost 5-8 % of a small GAN's step (docs/PERFORMANCE.md, section 1c). Where NVML exists the
# variable stays set.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and ctypes.util.find_library("nvidia-ml") is None:
    del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]

__all__ = ["GANModule", "BatchGroup"]


class BatchGroup(list):
    """K consecutive real batches handed to one ``training_step`` (a datamodule's ``batches_per_step`` = K > 1);
    each element is what the loader yields with K = 1 (a tensor or a tuple ``(data, labels…)``). A type of its
    own, so a step tells a group from a batch without guessing from shapes; Lightning moves it to the device
    element by element (it is a list)."""


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
        self._plain_backward = False  # manual_backward may call loss.backward() directly (set at on_train_start)
        self._plain_optimizers = None  # what optimizers() returns while their step() may skip Lightning's plumbing
        self.register_buffer("gen_step_buf", torch.zeros((), dtype=torch.long))
        self.register_buffer("batch_step_buf", torch.zeros((), dtype=torch.long))

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets _current_fx_name twice around every hook call (dozens per batch with manual
        # optimization); it is a plain string, never a parameter, buffer or module, so nn.Module's checks
        # (about 3 µs each) are skipped for it. Every other attribute goes through nn.Module.__setattr__.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

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
        self.check_data_shape(shape)
        self.data_shape = shape
        self.hparams["data_shape"] = list(shape)
        self.build(shape)
        self._built = True

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
                             "steps": self._steps, "rng": rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        zoo = checkpoint.get("zoo", {})
        shape = zoo.get("data_shape") or checkpoint.get("hyper_parameters", {}).get("data_shape")
        self.ensure_built(shape)
        self._rng_to_restore = zoo.get("rng")
        self._steps_to_restore = zoo.get("steps")  # older checkpoints (one batch per step): batch_step

    def manual_backward(self, loss: Tensor, *args, **kwargs) -> None:
        """Lightning's ``manual_backward``, or ``loss.backward()`` itself when that is all it would do (see
        :meth:`_backward_is_plain`): Lightning's version dispatches four hooks per call, about 80 µs on a CPU —
        2 % of a small GAN's step."""
        if self._plain_backward:
            loss.backward(*args, **kwargs)
        else:
            super().manual_backward(loss, *args, **kwargs)

    def _backward_is_plain(self) -> bool:
        """True when Lightning's ``manual_backward`` reduces to ``loss.backward()``: one device (no DDP hooks),
        32-bit precision (no loss scaling), no profiler, and no callback or module hook on the backward pass
        (``on_before_backward``, ``on_after_backward``, ``backward``)."""
        from pytorch_lightning.plugins.precision import Precision
        from pytorch_lightning.profilers import PassThroughProfiler
        from pytorch_lightning.strategies import SingleDeviceStrategy
        from pytorch_lightning.utilities.model_helpers import is_overridden

        t = self.trainer
        hooks = ("on_before_backward", "on_after_backward")
        return (type(t.strategy) is SingleDeviceStrategy and type(t.precision_plugin) is Precision
                and isinstance(t.profiler, PassThroughProfiler) and self._fabric is None
                and not any(is_overridden(h, cb, pl.Callback) for cb in t.callbacks for h in hooks)
                and not any(is_overridden(h, self, pl.LightningModule) for h in hooks + ("backward",)))

    def optimizers(self, use_pl_optimizer: bool = True):
        """Lightning's ``optimizers()``; during a fit where Lightning's optimizer step would only dispatch hooks
        nobody listens to (:meth:`_step_is_plain`), each comes wrapped in :class:`PlainStepOptimizer`."""
        if use_pl_optimizer and self._plain_optimizers is not None:
            return self._plain_optimizers
        return super().optimizers(use_pl_optimizer)

    def _step_is_plain(self) -> bool:
        """True when ``LightningOptimizer.step()`` reduces to the torch optimizer's ``step()`` between Lightning's
        step counters: the conditions of :meth:`_backward_is_plain`, and no callback or module hook
        ``on_before_optimizer_step`` (precision plugins call it from the step's closure)."""
        from pytorch_lightning.utilities.model_helpers import is_overridden

        hook = "on_before_optimizer_step"
        return (self._backward_is_plain() and not is_overridden(hook, self, pl.LightningModule)
                and not any(is_overridden(hook, cb, pl.Callback) for cb in self.trainer.callbacks))

    def on_train_end(self) -> None:
        self._plain_backward = False
        self._plain_optimizers = None

    def on_train_start(self) -> None:
        """Restore the generators' states of a loaded checkpoint, as late as possible before the first batch
        (anything that draws random numbers while Lightning sets up cannot shift the resumed run's noise)."""
        self._plain_backward = self._backward_is_plain()
        self._plain_optimizers = None
        if self._step_is_plain() and not self.automatic_optimization:
            opts = super().optimizers()
            self._plain_optimizers = ([PlainStepOptimizer(o) for o in opts] if isinstance(opts, list)
                                      else PlainStepOptimizer(opts))
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
        :meth:`step_done`), then :meth:`log_train` with the last batch's values."""
        batches = batch if isinstance(batch, BatchGroup) else (batch,)
        logs: Dict[str, Tensor] = {}
        for i, b in enumerate(batches):
            if i > 0 and self.step_done():
                break
            self._final_batch = i == len(batches) - 1
            logs = self.train_batch(self.real_from_batch(b))
        self._final_batch = True
        self._steps += 1
        self.log_train(logs)

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


def rng_state() -> dict:
    """The states of torch's CPU (and initialised CUDA) generators, numpy's and Python's, as tensors and plain
    Python values only, so checkpoints holding them still load with ``torch.load(weights_only=True)`` (Lightning's
    ``_collect_rng_states`` keeps numpy's state as an ndarray tuple, which that loader refuses)."""
    np_state = np.random.get_state()
    version, keys, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                             s["cached_gaussian"]))
    if "python" in state:
        s = state["python"]
        random.setstate((s["version"], tuple(int(k) for k in s["keys"].tolist()), s["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _split(n: int, size: int):
    size = max(1, size)
    for i in range(math.ceil(n / size)):
        yield min(size, n - i * size)


class PlainStepOptimizer:
    """A ``LightningOptimizer`` whose ``step()`` without a closure is the torch optimizer's own ``step()``
    between Lightning's step counters (so ``trainer.global_step`` counts it), without the strategy / precision
    plumbing: ``GANModule`` hands these out only when that plumbing would do nothing else (one device, fp32, no
    profiler, no ``on_before_optimizer_step`` listener). Saves about 25 µs per step on a CPU. Anything else
    (a closure, step kwargs, ``zero_grad``, ``param_groups``, ``toggle_model``) goes to the Lightning optimizer."""

    __slots__ = ("lightning_optimizer",)

    def __init__(self, lightning_optimizer):
        self.lightning_optimizer = lightning_optimizer

    def step(self, closure=None, **kwargs):
        lopt = self.lightning_optimizer
        if closure is not None or kwargs:
            return lopt.step(closure, **kwargs)
        lopt._on_before_step()  # the manual-optimization loop's counters (and profiler, a no-op here)
        out = lopt.optimizer.step()
        lopt._on_after_step()
        return out

    def __getattr__(self, name):
        return getattr(self.lightning_optimizer, name)

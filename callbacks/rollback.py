"""Optional automatic rollback after a divergence: reload the last good checkpoint with a lower learning rate.

Off by default (``train.py fit --rollback.enabled true``). Without it a NaN/Inf in a logged loss or in a parameter
stops the run with a message naming the step, the value and the last good checkpoint (see
:meth:`zoo.GANModule.log_train`); checkpoints are never written from non-finite parameters, so ``last.ckpt`` is
always the last good state.

With it, the module hands the divergence to :meth:`DivergenceRollback.rollback`, which

1. loads ``<checkpoint dir>/last.ckpt`` with ``torch.load(weights_only=True)`` — module state (parameters and
   buffers, ``gen_step`` included) and every optimizer's state;
2. sets every optimizer's learning rate to its value at the start of training times ``lr_factor ** k`` after
   the ``k``-th rollback;
3. prints one line and lets training go on with the next batch.

The data stream and the random generators are *not* rewound, so the retried stretch sees new batches and new
noise. After ``max_rollbacks`` rollbacks, or when no checkpoint exists yet, the run stops as without the callback.
Under DDP every rank takes the same decision (the module reduces the divergence flag over ranks) and reloads the
same file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch

__all__ = ["DivergenceRollback"]


class DivergenceRollback(pl.Callback):
    """Roll a diverged run back to its last good checkpoint with the learning rate times ``lr_factor``.

    Args:
        enabled: off by default; the run then stops on a divergence.
        lr_factor: each rollback multiplies every param group's ``lr`` by this (0 < lr_factor ≤ 1).
        max_rollbacks: give up (stop the run) after this many rollbacks.
    """

    def __init__(self, enabled: bool = False, lr_factor: float = 0.5, max_rollbacks: int = 3):
        from zoo.errors import ConfigError

        if not 0.0 < float(lr_factor) <= 1.0:
            raise ConfigError(f"rollback.lr_factor must be in (0, 1], got {lr_factor}")
        if int(max_rollbacks) < 0:
            raise ConfigError(f"rollback.max_rollbacks must be >= 0, got {max_rollbacks}")
        self.enabled = bool(enabled)
        self.lr_factor = float(lr_factor)
        self.max_rollbacks = int(max_rollbacks)
        self.rollbacks = 0
        self.base_lrs: Optional[list] = None  # learning rates before the first rollback

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.enabled:
            pl_module.divergence_handler = self

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if getattr(pl_module, "divergence_handler", None) is self:
            pl_module.divergence_handler = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.base_lrs is None:
            self.base_lrs = [[float(g["lr"]) for g in opt.param_groups] for opt in trainer.optimizers]

    def state_dict(self) -> dict:
        return {"rollbacks": self.rollbacks, "base_lrs": self.base_lrs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rollbacks = int(state_dict.get("rollbacks", 0))
        self.base_lrs = state_dict.get("base_lrs")

    @staticmethod
    def _last_checkpoint(trainer: pl.Trainer) -> Optional[Path]:
        cb = trainer.checkpoint_callback
        path = getattr(cb, "last_model_path", None) or (
            str(Path(cb.dirpath) / "last.ckpt") if getattr(cb, "dirpath", None) else None)
        return Path(path) if path and Path(path).exists() else None

    def rollback(self, pl_module: pl.LightningModule, problem: str) -> bool:
        """Reload the last good checkpoint and lower the learning rates; False when the run must stop."""
        trainer = pl_module.trainer
        path = self._last_checkpoint(trainer)
        if not self.enabled or path is None or self.rollbacks >= self.max_rollbacks:
            return False
        ckpt = torch.load(path, map_location=pl_module.device, weights_only=True)
        pl_module.load_state_dict(ckpt["state_dict"])
        optimizers = trainer.optimizers
        for opt, state in zip(optimizers, ckpt.get("optimizer_states", [])):
            opt.load_state_dict(state)
        self.rollbacks += 1
        scale = self.lr_factor ** self.rollbacks
        for opt, base in zip(optimizers, self.base_lrs or [[g["lr"] for g in o.param_groups] for o in optimizers]):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * scale
        if trainer.is_global_zero:
            print(f"[zoo] {problem.split(';')[0]}; rolled back to {path} (gen_step {int(pl_module.gen_step)}), "
                  f"learning rates x{scale:g} (rollback {self.rollbacks}/{self.max_rollbacks})", file=sys.stderr)
        return True

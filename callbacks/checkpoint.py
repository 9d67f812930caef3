"""Checkpointing for zoo runs: ``checkpoints/last.ckpt`` during training and at its end.

Lightning writes checkpoints through ``_atomic_save`` (serialised to memory, then written in one
transaction), and loads local files with ``torch.load(weights_only=True)`` (the torch ≥ 2.6 default), so a
checkpoint that would run code when unpickled is refused.
"""

from __future__ import annotations

from typing import Optional

from pytorch_lightning.callbacks import ModelCheckpoint, OnExceptionCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt`` up to date every ``every_n_train_steps`` optimizer steps and at the end of
    training (Lightning's ModelCheckpoint alone does not save when ``max_gen_steps`` stops a run mid-epoch)."""

    def __init__(self, dirpath: str, every_n_train_steps: Optional[int] = 500):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         every_n_train_steps=every_n_train_steps or None,
                         save_on_train_epoch_end=not every_n_train_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Save ``last.ckpt`` after each training step that reaches or passes a multiple of ``every_n_train_steps``
        optimizer steps: one training step takes several optimizer steps (a generator step on every ``n_dis``-th
        batch, K batches with a datamodule's ``batches_per_step``), so exact multiples may be skipped."""
        n = self._every_n_train_steps
        if n < 1 or self._should_skip_saving_checkpoint(trainer):
            return
        if trainer.global_step // n > self._last_global_step_saved // n:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.global_step == 0:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class InterruptCheckpoint(OnExceptionCheckpoint):
    """On an exception or Ctrl-C, save ``<dirpath>/interrupted.ckpt`` — unless nothing was trained yet, or the
    exception is a divergence (``FloatingPointError``: the state is garbage, and resuming must pick the last good
    ``last.ckpt``).

    Because this callback is present, Lightning's ``fit(ckpt_path=None)`` resumes from ``last.ckpt`` when the
    run directory already has one.
    """

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if trainer.global_step == 0:
            return
        if isinstance(exception, FloatingPointError):  # a divergence: keep last.ckpt as the newest checkpoint
            return
        super().on_exception(trainer, pl_module, exception)

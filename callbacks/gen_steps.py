"""Generator steps of any LightningModule, counted as generator updates, and budgets in generator steps.

The zoo's methods count their generator updates themselves (``GANModule.gen_step``). Lightning's ``global_step``
counts every optimizer step — a critic step and a generator step alike — so a budget "in generator steps" read from
it would give a plug-in with ``n_dis`` critic steps ``1/(n_dis + 1)`` of the generator updates a zoo method gets. For
any other LightningModule, :class:`GenStepCounter` finds **the optimizer that holds the generator's parameters**
(the module's ``generator`` attribute, matched by parameter identity against the optimizers' parameter groups) and
counts its ``step()`` calls (``torch.optim.Optimizer.register_step_post_hook``); with ``max_gen_steps`` it stops
training at that many generator updates. When no such optimizer can be found, it says so in one line and the run
counts training steps (``global_step``); ``results.json`` states which count it holds (``steps.gen_step_counts``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytorch_lightning as pl
import torch

__all__ = ["GenStepCounter"]


class GenStepCounter(pl.Callback):
    """Count a foreign module's generator updates (module docstring); a no-op for modules with ``gen_step``.

    Args:
        max_gen_steps: stop training once this many generator updates were made (``None``: no limit). For a
            module with its own ``max_gen_steps`` (the zoo's methods) that setting is used instead.
    """

    MODULE, GENERATOR, TRAINING = "the module's gen_step", "generator optimizer steps", "training steps (global_step)"

    def __init__(self, max_gen_steps: Optional[int] = None):
        self.max_gen_steps = int(max_gen_steps) if max_gen_steps else None
        self.count = 0
        self.source: Optional[str] = None
        self._handle = None

    @classmethod
    def of(cls, trainer: Optional[pl.Trainer]) -> Optional["GenStepCounter"]:
        """The trainer's counter (``train.py`` adds one to every run), or ``None``."""
        if trainer is None:
            return None
        return next((cb for cb in trainer.callbacks if isinstance(cb, cls)), None)

    # ------------------------------------------------------------------ finding the generator's optimizer
    @staticmethod
    def generator_optimizer(pl_module: pl.LightningModule, optimizers) -> Optional[int]:
        """Index of the optimizer holding the parameters of ``pl_module.generator`` (``None`` when there is no
        ``generator`` network or no optimizer holds its parameters)."""
        gen = getattr(pl_module, "generator", None)
        if not isinstance(gen, torch.nn.Module):
            return None
        ids = {id(p) for p in gen.parameters()}
        if not ids:
            return None
        for i, opt in enumerate(optimizers):
            if any(id(p) in ids for g in opt.param_groups for p in g["params"]):
                return i
        return None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if hasattr(pl_module, "gen_step"):
            self.source = self.MODULE
            if self.max_gen_steps and hasattr(pl_module, "max_gen_steps"):
                pl_module.max_gen_steps = self.max_gen_steps
            return
        idx = self.generator_optimizer(pl_module, trainer.optimizers)
        if idx is None:
            self.source = self.TRAINING
            if trainer.is_global_zero:
                print(f"[zoo] could not find the optimizer of {type(pl_module).__name__}'s generator (no `generator` "
                      f"network, or no optimizer holds its parameters): generator steps are counted as training "
                      f"steps (trainer.global_step)", flush=True)
            return
        self.source = self.GENERATOR
        self._handle = trainer.optimizers[idx].register_step_post_hook(self._stepped)

    def _stepped(self, *args: Any) -> None:
        self.count += 1

    def on_train_start(self, trainer, pl_module) -> None:
        if self._over(trainer):  # a resumed run that already reached its budget trains nothing
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._over(trainer):
            trainer.should_stop = True

    def _over(self, trainer: pl.Trainer) -> bool:
        if not self.max_gen_steps or self.source == self.MODULE:
            return False
        done = self.count if self.source == self.GENERATOR else int(trainer.global_step)
        return done >= self.max_gen_steps

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_fit_end(trainer, pl_module)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.count = int(state_dict.get("count", 0))

"""``GANModule.manual_backward`` calls ``loss.backward()`` directly only when Lightning's version would do nothing
else: the same training either way, and every backward hook still runs when one is there."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from datamodules.synthetic import Synthetic2D
from zoo import VanillaGAN


class _Probe(pl.Callback):
    """Records whether the fast path was on during training."""

    def __init__(self):
        self.plain = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.plain.append(pl_module._plain_backward)


class _AfterBackward(_Probe):
    """A callback that listens to the backward pass: Lightning's manual_backward must be used."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def on_after_backward(self, trainer, pl_module):
        self.calls += 1


def _fit(callback, **trainer_kw):
    torch.manual_seed(0)
    model = VanillaGAN(hidden=(16,), max_gen_steps=12)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[callback], **trainer_kw)
    trainer.fit(model, datamodule=Synthetic2D("ring8", n_samples=640, val_samples=100, batch_size=32, seed=0))
    return model


def test_backward_is_plain_only_without_listeners_and_trains_the_same():
    fast, listened, profiled = _Probe(), _AfterBackward(), _Probe()
    a = _fit(fast)
    b = _fit(listened)
    c = _fit(profiled, profiler="simple")
    assert fast.plain and all(fast.plain)
    assert listened.plain and not any(listened.plain) and not any(profiled.plain)
    assert listened.calls == 2 * 12  # vanilla: one discriminator and one generator backward per generator step
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
    assert not a._plain_backward  # switched off after training (a standalone call goes through Lightning)

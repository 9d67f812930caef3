"""``GANModule.manual_backward`` calls ``loss.backward()`` directly, and its optimizers' ``step()`` calls the torch
optimizer's own step between Lightning's step counters, only when Lightning's versions would do nothing else:
the same training and the same ``trainer.global_step`` either way, and every hook still runs when one is there."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from datamodules.synthetic import Synthetic2D
from zoo import VanillaGAN
from zoo.base import PlainStepOptimizer


class _Probe(pl.Callback):
    """Records, per training step, whether each fast path was on."""

    def __init__(self):
        self.backward, self.step = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.backward.append(pl_module._plain_backward)
        self.step.append(all(isinstance(o, PlainStepOptimizer) for o in pl_module.optimizers()))


class _AfterBackward(_Probe):
    """A callback that listens to the backward pass: Lightning's manual_backward (and optimizer step) must be used."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def on_after_backward(self, trainer, pl_module):
        self.calls += 1


class _BeforeOptimizerStep(_Probe):
    """A callback that listens to the optimizer step: Lightning's optimizer step must be used."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls += 1


def _fit(callback, **trainer_kw):
    torch.manual_seed(0)
    model = VanillaGAN(hidden=(16,), max_gen_steps=12)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[callback], **trainer_kw)
    trainer.fit(model, datamodule=Synthetic2D("ring8", n_samples=640, val_samples=100, batch_size=32, seed=0))
    return model, trainer


def test_fast_paths_only_without_listeners_and_train_the_same():
    fast, after_backward, before_step, profiled = _Probe(), _AfterBackward(), _BeforeOptimizerStep(), _Probe()
    runs = [_fit(fast), _fit(after_backward), _fit(before_step), _fit(profiled, profiler="simple")]
    assert fast.backward and all(fast.backward) and all(fast.step)
    assert not any(after_backward.backward) and not any(after_backward.step)
    assert all(before_step.backward) and not any(before_step.step)  # only the step has a listener
    assert not any(profiled.backward) and not any(profiled.step)
    # vanilla: one discriminator and one generator update per generator step, each heard by its listener
    assert after_backward.calls == before_step.calls == 2 * 12
    (a, ta) = runs[0]
    for b, tb in runs[1:]:
        assert tb.global_step == ta.global_step == 2 * 12  # Lightning counts the fast steps too
        for x, y in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(x, y)
        for oa, ob in zip(ta.optimizers, tb.optimizers):
            for sa, sb in zip(oa.state_dict()["state"].values(), ob.state_dict()["state"].values()):
                assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # switched off after training: standalone calls go through Lightning again
    assert not a._plain_backward and a._plain_optimizers is None


def test_plain_step_optimizer_delegates_everything_but_a_plain_step():
    """A closure or step kwargs, zero_grad and param_groups reach the wrapped optimizer."""
    x = torch.ones(2, requires_grad=True)

    class _Wrapped:
        def __init__(self):
            self.optimizer = torch.optim.SGD([x], lr=0.5)
            self.param_groups = self.optimizer.param_groups
            self.events = []

        def _on_before_step(self):
            self.events.append("before")

        def _on_after_step(self):
            self.events.append("after")

        def step(self, closure=None, **kwargs):
            self.events.append(("lightning step", closure is not None, tuple(kwargs)))

        def zero_grad(self, set_to_none=True):
            self.optimizer.zero_grad(set_to_none=set_to_none)

    inner = _Wrapped()
    opt = PlainStepOptimizer(inner)
    (x * torch.tensor([1.0, 3.0])).sum().backward()
    opt.step()
    assert torch.allclose(x.detach(), torch.tensor([0.5, -0.5]))  # x − 0.5·grad, by the torch optimizer itself
    assert inner.events == ["before", "after"]
    opt.step(closure=lambda: None)
    opt.step(foo=1)
    assert inner.events[2:] == [("lightning step", True, ()), ("lightning step", False, ("foo",))]
    opt.zero_grad()
    assert x.grad is None and opt.param_groups[0]["lr"] == 0.5

"""Grouped batches (a datamodule's ``batches_per_step`` = K): K batches per training step must change nothing but
the number of Lightning steps.

References: the stream of batches is checked against the documented order (epoch e = ``randperm(n)`` of a generator
seeded with ``seed·1_000_003 + e``, cut into drop-last batches); training with K > 1 is checked against the same run
with K = 1, bit for bit (parameters, buffers, optimizer states, method state), also when the K run is stopped and
resumed; the cadence of evaluation callbacks and of ``last.ckpt`` against hand-computed step lists.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from callbacks._util import EveryNGenSteps
from callbacks.checkpoint import LastCheckpoint
from callbacks.modes import ModeCoverage
from datamodules.base import BatchGroup
from datamodules.synthetic import Synthetic2D
from zoo.errors import ConfigError
from _checks import StopAtBatch, assert_same

N, B = 320, 32  # 10 batches per epoch


def _reference_stream(seed: int, n_batches: int) -> list:
    """The documented order: epoch by epoch, randperm(N) seeded with seed·1_000_003 + e, drop-last batches of B."""
    out, epoch = [], 0
    while len(out) < n_batches:
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out += [perm[i * B:(i + 1) * B] for i in range(N // B)]
        epoch += 1
    return out[:n_batches]


def _consume(dm, n_batches: int) -> list:
    """Batches of ``dm``'s loader as a training run consumes them: each item counted as the datamodule's hook
    counts it (the resume position), groups flattened, a fresh iterator every pass (Lightning's epochs)."""
    dm.trainer = type("T", (), {"training": True, "world_size": 1})()
    out = []
    while len(out) < n_batches:
        for item in dm.train_dataloader():
            dm.on_before_batch_transfer(item, 0)
            out += list(item) if isinstance(item, BatchGroup) else [item]
            if len(out) >= n_batches:
                break
    return out[:n_batches]


@pytest.mark.parametrize("k", [1, 3, 4, 12])
def test_grouping_keeps_the_stream_of_batches(k):
    data = Synthetic2D("ring8", n_samples=N, val_samples=100, batch_size=B, seed=0, batches_per_step=k)
    data._order_seed = 7
    batches = _consume(data, 37)
    data.setup("fit")
    points = data.train_set.tensors[0]
    for got, idx in zip(batches, _reference_stream(7, 37)):
        assert torch.equal(got, points[idx])
    # whole groups are handed over: K batches, and an epoch's last group holds the epoch's remaining batches
    ends = [e * 10 + j for e in range(5) for j in list(range(k, 10, k)) + [10]]
    assert data.state_dict()["batches_consumed"] == min(x for x in ends if x >= 37)


def test_group_of_tuples_keeps_labels_aligned():
    from datamodules.images import Digits

    data = Digits(batch_size=16, batches_per_step=3)
    data._order_seed = 3
    item = next(iter(data.train_dataloader()))
    assert isinstance(item, BatchGroup) and len(item) == 3
    order = torch.randperm(len(data.train_set), generator=torch.Generator().manual_seed(3 * 1_000_003))
    for j, (x, y) in enumerate(item):
        x_ref, y_ref = data.train_set.__getitems__(order[j * 16:(j + 1) * 16].tolist())
        assert x.shape == (16, 1, 8, 8) and torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_bad_group_size_fails_early():
    with pytest.raises(ConfigError, match="batches_per_step"):
        Synthetic2D("ring8", batches_per_step=0)


# ------------------------------------------------------------------ training is unchanged by grouping
SMALL = {"hidden": (32, 32)}
#: short name, constructor kwargs, generator steps (ends inside a group for K = 4 or 3), K
METHODS = [
    ("vanilla", dict(SMALL), 14, 4),
    ("wgan_gp", dict(SMALL, n_critic=5), 5, 4),            # 25 batches: the last group is cut after one batch
    ("sngan", dict(SMALL, latent_dim=8, n_dis=2), 9, 4),
    ("srgan", dict(SMALL, latent_dim=8, n_dis=2, sr_mode="dynamic", sr_layers="all", sr_every=2), 9, 3),
    ("icnn_w2", dict(SMALL, icnn_hidden=(16, 16), n_dis=2, pretrain_steps=3), 7, 4),
    ("dual_flow", dict(SMALL, scheme="implicit", inner_steps=3, memory=4), 11, 4),
    ("aeot", dict(SMALL, n_targets=64, ot_method="adam", ot_max_iters=60, ot_iters_per_step=10, ot_patience=1000,
                  stats_samples=500), 10, 4),          # the autoencoder stage ends inside a group, then the OT solve
]
COMPARED = ("state_dict", "optimizer_states", "srgan", "dual_flow_memory", "dual_flow_power_vec", "aeot")


def _fit(name, kwargs, gen_steps, k, root, seed=0, stop=None, ckpt=None):
    import zoo.methods  # noqa: F401
    from zoo.registry import resolve_model

    torch.manual_seed(seed)
    model = resolve_model(name)(max_gen_steps=gen_steps, **kwargs)
    data = Synthetic2D("ring8", n_samples=N, val_samples=500, batch_size=B, seed=0, batches_per_step=k)
    callbacks = [LastCheckpoint(dirpath=str(root), every_n_train_steps=None), ModeCoverage(every_n_gen_steps=4,
                                                                                          n_samples=500)]
    if stop is not None:
        callbacks.append(StopAtBatch(stop))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, log_every_n_steps=1, deterministic=True)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return model, trainer, torch.load(root / "last.ckpt", weights_only=True)


@pytest.mark.parametrize("name,kwargs,gen_steps,k", METHODS, ids=[m[0] for m in METHODS])
def test_grouped_training_is_bit_identical(name, kwargs, gen_steps, k, tmp_path):
    one_model, one_trainer, one = _fit(name, kwargs, gen_steps, 1, tmp_path / "k1")
    grouped_model, grouped_trainer, grouped = _fit(name, kwargs, gen_steps, k, tmp_path / f"k{k}")
    assert grouped_model.gen_step == one_model.gen_step
    assert grouped_model.batch_step == one_model.batch_step
    assert grouped_trainer.global_step == one_trainer.global_step  # the same optimizer steps
    assert grouped_model._steps < one_model._steps  # fewer Lightning steps: that is the point
    for key in COMPARED:
        if key in one or key in grouped:
            assert_same(one.get(key), grouped.get(key), f"{name} K={k} {key}")
    # stopped after some batches (at the end of the group that reaches them) and resumed: still the K = 1 run
    stop = 3 * k - 1
    root = tmp_path / "stopped"
    _fit(name, kwargs, gen_steps, k, root, stop=stop)
    for i in range(2):  # AE-OT stops again inside its OT solve
        model, _, resumed = _fit(name, kwargs, gen_steps, k, root, seed=1000 + i, ckpt=str(root / "last.ckpt"))
        if model.batch_step == one_model.batch_step:
            break
    for key in COMPARED:
        if key in one or key in resumed:
            assert_same(one.get(key), resumed.get(key), f"{name} K={k} resumed {key}")


# ------------------------------------------------------------------ cadences cross multiples
class _Record(EveryNGenSteps, pl.Callback):
    def __init__(self, every: int):
        self.every_n_gen_steps, self.steps = every, []

    def _run(self, trainer, pl_module):
        self.mark(pl_module, trainer)
        self.steps.append(pl_module.gen_step)


class _RecordSaves(LastCheckpoint):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.saved_at = []

    def _save_last_checkpoint(self, trainer, monitor_candidates):
        self.saved_at.append(trainer.global_step)
        super()._save_last_checkpoint(trainer, monitor_candidates)


def test_callbacks_fire_at_the_first_step_boundary_past_their_cadence(tmp_path):
    from zoo import VanillaGAN

    torch.manual_seed(0)
    rec = _Record(4)
    saves = _RecordSaves(dirpath=str(tmp_path), every_n_train_steps=5)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[rec, saves])
    model = VanillaGAN(hidden=(8,), max_gen_steps=17)
    trainer.fit(model, datamodule=Synthetic2D("ring8", n_samples=N, val_samples=100, batch_size=B,
                                              batches_per_step=3))
    # 10 batches per epoch in groups of 3, 3, 3, 1: step boundaries at gen steps 3, 6, 9, 10, 13, 16, 17 (the run
    # ends inside the sixth group)
    assert rec.steps == [6, 9, 13, 16, 17]  # multiples 4, 8, 12, 16 at 6, 9, 13, 16; 17: the end of training
    # 2 optimizer steps per batch: global steps 6, 12, 18, 20, 26, 32, 34 at the boundaries; multiples of 5
    # crossed at 6 (5), 12 (10), 18 (15), 20 (20), 26 (25), 32 (30), and the end of training (34)
    assert saves.saved_at == [6, 12, 18, 20, 26, 32, 34]

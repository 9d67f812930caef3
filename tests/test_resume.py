"""Exact resume, per method: k batches, stop, resume to the end  ==  the end straight (bit-identical on CPU).

Reference: the uninterrupted run itself. A run stopped after ``stop`` real batches (deliberately in the middle
of a generator iteration when ``n_dis > 1``, on an epoch's last batch — where Lightning opens the next pass of
the loader before the checkpoint's random state is restored —, and for AE-OT both inside the autoencoder stage and
inside the OT solve), whose checkpoint is then loaded by a fresh process-like setup (new module built from a *different* seed,
new datamodule, new Trainer), must end with exactly the same

* parameters and buffers (``gen_step``, SR spectra, AE-OT codes/heights/solver moments, ICNN data scale…),
* optimizer states,
* method extras saved in the checkpoint (SR running maxima, dual-flow memory, AE-OT solver schedule),
* and random generator states

as the straight run. Evaluation callbacks run in both (ModeCoverage every 4 generator steps) and must not shift
the training noise. What makes it work: the datamodule's :class:`datamodules.base.ResumableSampler` (data order
from (seed, epoch) and the number of batches consumed), the RNG states in ``GANModule.on_save_checkpoint``, and
each method's own checkpoint hooks.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from callbacks.checkpoint import LastCheckpoint
from callbacks.modes import ModeCoverage
from datamodules.synthetic import Synthetic2D
from _checks import StopAtBatch, assert_same

SMALL = {"hidden": (32, 32)}

#: short name, constructor kwargs, total generator steps, batches after which the interrupted run stops
METHODS = [
    ("vanilla", dict(SMALL), 16, [9, 10]),                   # 10: the epoch's last batch (10 batches per epoch)
    ("wgan_gp", dict(SMALL, n_critic=5), 8, [17, 20]),       # 17 = 3 full iterations + 2 critic steps; 20: epoch end
    ("sngan", dict(SMALL, latent_dim=8, n_dis=2), 12, [11]),
    ("srgan", dict(SMALL, latent_dim=8, n_dis=2, sr_mode="dynamic", sr_layers="all", sr_every=2), 12, [11]),
    ("icnn_w2", dict(SMALL, icnn_hidden=(16, 16), n_dis=2, pretrain_steps=3), 8, [9]),
    ("dual_flow", dict(SMALL, scheme="implicit", inner_steps=3, memory=4), 12, [7]),
    ("aeot", dict(SMALL, n_targets=64, ot_method="adam", ot_max_iters=60, ot_iters_per_step=10, ot_patience=1000,
                  stats_samples=500), 12, [7, 15]),       # 7: autoencoder stage; 15: inside the OT solve
]


def _fit(name, kwargs, gen_steps, root, seed, stop=None, ckpt=None):
    import zoo.methods  # noqa: F401
    from zoo.registry import resolve_model

    torch.manual_seed(seed)
    model = resolve_model(name)(max_gen_steps=gen_steps, **kwargs)
    data = Synthetic2D("ring8", n_samples=320, val_samples=500, batch_size=32, seed=0)  # 10 batches per epoch
    callbacks = [LastCheckpoint(dirpath=str(root), every_n_train_steps=None), ModeCoverage(every_n_gen_steps=4,
                                                                                          n_samples=500)]
    if stop is not None:
        callbacks.append(StopAtBatch(stop))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, log_every_n_steps=1,
                         deterministic=True)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return model, torch.load(root / "last.ckpt", weights_only=True)


COMPARED = ("state_dict", "optimizer_states", "zoo", "srgan", "dual_flow_memory", "dual_flow_power_vec", "aeot")


@pytest.mark.parametrize("name,kwargs,gen_steps,stops", METHODS, ids=[m[0] for m in METHODS])
def test_resume_is_bit_exact(name, kwargs, gen_steps, stops, tmp_path):
    straight_model, straight = _fit(name, kwargs, gen_steps, tmp_path / "straight", seed=0)
    assert straight_model.gen_step >= gen_steps

    for stop in stops:
        root = tmp_path / f"stopped{stop}"
        model, partial = _fit(name, kwargs, gen_steps, root, seed=0, stop=stop)
        assert model.batch_step == stop and model.gen_step < straight_model.gen_step, "the run did not stop early"
        for i in range(2):  # resume the stopped run (twice for the AE-OT OT stage: stop again inside it)
            ckpt = str(root / "last.ckpt")
            model, resumed = _fit(name, kwargs, gen_steps, root, seed=1000 + i, ckpt=ckpt)
            if model.gen_step >= straight_model.gen_step and model.batch_step == straight_model.batch_step:
                break
        for key in COMPARED:
            if key in straight or key in resumed:
                assert_same(straight.get(key), resumed.get(key), f"{name} stop@{stop} {key}")
        # the comparison is not vacuous: the stopped run's checkpoint really is an earlier state
        assert not all(torch.equal(partial["state_dict"][k], straight["state_dict"][k])
                       for k in straight["state_dict"] if straight["state_dict"][k].is_floating_point())

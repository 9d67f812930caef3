"""DDP parity: 2 CPU processes (gloo, ``ddp_spawn``) against one process over the same global batch.

After ``k`` generator steps the parameters must be

1. identical on both ranks (DDP keeps replicas in sync), and
2. equal, to 1e-5, to a single-process run whose batch is the union of the two ranks' batches
   (for methods that are deterministic given the batch).

How the comparison is made well-defined (the choices this test documents):

* **Data.** A fixed tensor of ring8 points, loaded without shuffling. Lightning would put a *shuffling*
  ``DistributedSampler`` on any training loader, so the test turns that off (``use_distributed_sampler=False``) and
  sets ``DistributedSampler(shuffle=False)`` itself, which gives rank ``r`` the indices ``r, r+W, r+2W, …``; with per-rank batch
  ``B``, batch ``j`` of rank ``r`` holds indices ``{W(jB+i) + r : i < B}``, so the union over ranks is exactly the
  indices ``jWB … (j+1)WB − 1`` of the single-process batch ``j`` with batch size ``WB``.
* **Noise.** :class:`SharedNoise` replaces ``torch.randn/rand/randn_like/rand_like`` during each training batch by
  draws from one generator seeded identically on every process. A draw whose leading dimension is the local batch
  size ``B`` is drawn at the global size ``WB`` and rank ``r`` keeps rows ``rB … (r+1)B − 1``; any other draw is
  drawn whole (the same on every rank). Every process consumes the generator identically, so the union of the
  per-rank noise equals the single-process noise. Methods whose randomness goes through other calls need their own
  hook before they can join :data:`PARITY_METHODS`.
* **Gradients.** Losses are batch means, DDP averages gradients over ranks, so
  (1/W) Σ_r ∇ mean_r = ∇ mean over the union: the same gradient as the single process, up to float summation order.
* **Strategy.** ``DDPStrategy(find_unused_parameters=True)``: the GAN pattern (a discriminator loss that does not
  reach the generator's parameters, then a generator loss) needs it; see :data:`STRATEGY_KW`.

The lead adds further methods to :data:`PARITY_METHODS` as they land (short name, constructor kwargs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

pytestmark = pytest.mark.ddp

#: (short name, constructor kwargs) of every method under the parity test; deterministic given batch and noise.
PARITY_METHODS = [
    ("vanilla", {"hidden": (32, 32), "lr_g": 1e-3, "lr_d": 1e-3}),
    ("icnn_w2", {"hidden": (32, 32), "icnn_hidden": (16, 16), "n_dis": 2, "pretrain_steps": 0}),
]
# Not yet in the list (measured with this harness, to be fixed):
# * wgan_gp (n_critic 2): ranks agree, but the generator differs from the single process by 6e-4 — the
#   double-backward gradient penalty under DDP needs investigation (cf. pytorch #47562);
# * sngan / srgan: ddp_spawn cannot pickle modules with torch's spectral_norm parametrization (use the
#   `ddp` strategy, which does not pickle the model, for these methods);
# * dual_flow (mlp discriminator, explicit SGD): off by 1.0e-5, at the tolerance (float summation order);
# * aeot: staged training (the OT stage is solved on every rank), not covered by this harness.

WORLD = 2          # CPU processes
LOCAL_BATCH = 16   # per rank; the single process uses WORLD * LOCAL_BATCH
GEN_STEPS = 4      # generator steps k
MAX_N_DIS = 2      # most discriminator steps per generator step among PARITY_METHODS
ATOL = 1e-5
STRATEGY_KW = {"find_unused_parameters": True}

_ORIG = {name: getattr(torch, name) for name in ("randn", "rand", "randn_like", "rand_like")}


def _size(args, kwargs):
    size = kwargs.pop("size", None)
    if size is None:
        size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
    return tuple(int(s) for s in size)


class SharedNoise(pl.Callback):
    """Rank-sliced draws from one shared generator during training batches (see the module docstring)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.gen = None

    def _draw(self, kind, size, dtype, device):
        b, w, r = self.local_batch, self.world, self.rank
        fn = _ORIG["randn" if kind == "n" else "rand"]
        if size and size[0] == b:
            full = fn((b * w,) + size[1:], generator=self.gen, dtype=dtype or torch.get_default_dtype())
            out = full[r * b:(r + 1) * b]
        else:
            out = fn(size, generator=self.gen, dtype=dtype or torch.get_default_dtype())
        return out.to(device) if device is not None else out

    def on_train_start(self, trainer, pl_module):
        self.gen = torch.Generator().manual_seed(self.seed)
        self.world, self.rank = trainer.world_size, trainer.global_rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.local_batch = int(real.shape[0])

        def randn(*args, generator=None, dtype=None, device=None, **kw):
            return self._draw("n", _size(args, kw), dtype, device)

        def rand(*args, generator=None, dtype=None, device=None, **kw):
            return self._draw("u", _size(args, kw), dtype, device)

        def randn_like(x, dtype=None, device=None, **kw):
            return self._draw("n", tuple(x.shape), dtype or x.dtype, device or x.device)

        def rand_like(x, dtype=None, device=None, **kw):
            return self._draw("u", tuple(x.shape), dtype or x.dtype, device or x.device)

        torch.randn, torch.rand, torch.randn_like, torch.rand_like = randn, rand, randn_like, rand_like

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for name, fn in _ORIG.items():
            setattr(torch, name, fn)

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_end(self, trainer, pl_module):
        self.on_train_batch_end(trainer, pl_module, None, None, 0)
        out = Path(os.environ["PARITY_OUT"])
        params = {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()}
        params["__gen_step"] = torch.tensor(int(pl_module.gen_step))
        torch.save(params, out / f"params_w{trainer.world_size}_r{trainer.global_rank}.pt")


class FixedBatches(pl.LightningDataModule):
    """Fixed ring8 points, unshuffled (module level so ``ddp_spawn`` can pickle it)."""

    data_shape = (2,)

    def __init__(self, batch_size: int):
        super().__init__()
        from datamodules.synthetic import Synthetic2D

        self.batch_size = batch_size
        n = WORLD * LOCAL_BATCH * (GEN_STEPS * MAX_N_DIS + 2)  # max_gen_steps ends every run first
        self.x = Synthetic2D("ring8").sample(n, torch.Generator().manual_seed(3))

    def train_dataloader(self):
        from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

        ds = TensorDataset(self.x)
        w, r = self.trainer.world_size, self.trainer.global_rank
        sampler = DistributedSampler(ds, num_replicas=w, rank=r, shuffle=False) if w > 1 else None
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, shuffle=False, drop_last=True)


def _fit(model, devices: int) -> None:
    from pytorch_lightning.strategies import DDPStrategy

    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", **STRATEGY_KW) if devices > 1 else "auto"
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[SharedNoise(seed=1234)], use_distributed_sampler=False)
    trainer.fit(model, datamodule=FixedBatches(LOCAL_BATCH * (WORLD if devices == 1 else 1)))


@pytest.mark.parametrize("name,kwargs", PARITY_METHODS, ids=[m[0] for m in PARITY_METHODS])
def test_ddp_matches_single_process(name, kwargs, tmp_path, monkeypatch):
    import copy

    import zoo.methods  # noqa: F401
    from zoo.registry import resolve_model

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PARITY_OUT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    torch.manual_seed(0)
    model = resolve_model(name)(max_gen_steps=GEN_STEPS, **kwargs)
    model.ensure_built((2,))
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    try:
        _fit(copy.deepcopy(model), 1)
        _fit(copy.deepcopy(model), WORLD)
    finally:  # never leave torch's samplers patched for other tests
        for fn_name, fn in _ORIG.items():
            setattr(torch, fn_name, fn)

    single = torch.load(tmp_path / "params_w1_r0.pt")
    ranks = [torch.load(tmp_path / f"params_w{WORLD}_r{r}.pt") for r in range(WORLD)]
    assert int(single.pop("__gen_step")) == GEN_STEPS
    for p in ranks:
        assert int(p.pop("__gen_step")) == GEN_STEPS
    assert set(single) == set(init) and all(set(p) == set(init) for p in ranks)
    moved = 0
    for key in init:
        for r in range(1, WORLD):
            assert torch.equal(ranks[0][key], ranks[r][key]), f"{name}: {key} differs between rank 0 and rank {r}"
        err = (ranks[0][key] - single[key]).abs().max().item()
        assert err <= ATOL, f"{name}: {key} differs from the single-process run by {err:.3g}"
        moved += int(not torch.allclose(single[key], init[key], atol=1e-6))
    # the runs trained (a test that compares two untouched initialisations could not fail)
    assert moved >= len(init) // 2, f"{name}: only {moved}/{len(init)} parameter tensors changed in {GEN_STEPS} steps"

"""FID: the shipped digits extractor, an independent scipy computation, the Inception path (random weights, no
download), the disable-with-message path, the logged protocol, and DDP (2 gloo processes) = one process."""

import csv
import io
import json
import os
import socket
import types

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.linalg
import torch
import torch.multiprocessing as mp
import yaml
from pytorch_lightning.loggers import CSVLogger
from torch import nn

from callbacks import fid as F
from datamodules.images import Digits


@pytest.fixture(scope="module")
def digits():
    dm = Digits(image_size=8, seed=0)
    dm.setup("fit")
    return dm


def test_shipped_classifier_is_small_loads_safely_and_is_accurate(digits):
    assert F.DIGITS_WEIGHTS.stat().st_size < 1_000_000
    torch.load(F.DIGITS_WEIGHTS, weights_only=True)  # plain tensors only
    info = json.loads(F.DIGITS_INFO.read_text())
    x, y = digits.val_set.__getitems__(list(range(len(digits.val_set))))  # held-out split, true labels
    net = F.load_digits_classifier()
    with torch.no_grad():
        acc = float((net(F.to_digit_input(x)).argmax(1) == y).double().mean())
    assert acc >= 0.97
    assert acc == pytest.approx(info["test_accuracy"], abs=1e-9)
    assert info["seed"] == 0 and "train_digits_classifier.py" in info["command"]


def test_fid_ordering_real_noise_constant(digits):
    train = digits.reference_samples(2000, "train")
    held = digits.reference_samples(2000, "val")
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(len(held), 1, 8, 8, generator=g) * 2 - 1
    const = torch.zeros(len(held), 1, 8, 8)
    f_held, f_noise, f_const = (F.frechet_distance(train, x) for x in (held, noise, const))
    # measured: ≈ 9.4 / 350 / 711
    assert 0 < f_held * 10 < f_noise
    assert f_noise * 1.5 < f_const


def test_fid_matches_scipy_sqrtm_on_the_same_features(digits):
    real = digits.reference_samples(2000, "train")
    g = torch.Generator().manual_seed(1)
    fake = (digits.reference_samples(400, "val") + 0.3 * torch.randn(359, 1, 8, 8, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        net = F.feature_extractor("digits", channels=1)
        a, b = net(real).double().numpy(), net(fake).double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    ref = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))
    got = F.frechet_distance(real, fake, extractor="digits", batch_size=128)
    assert got == pytest.approx(ref, rel=1e-3)
    # a user-supplied module goes through the same path
    assert F.frechet_distance(real, fake, extractor=net) == pytest.approx(ref, rel=1e-3)


def test_stacked_features_concatenate_channels():
    net = F.feature_extractor("digits", channels=3)
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        f = net(x)
        assert f.shape == (5, 3 * 64) and net.num_features == 192
        one = net.net.features(F.to_digit_input(x[:, 1:2]))
    assert torch.equal(f[:, 64:128], one)


# ------------------------------------------------------------------------------------------ Inception
def random_inception_file(path) -> str:
    """torch-fidelity's InceptionV3 with random weights, saved where ``weights_path`` can read it. Its
    constructor loads ``torch.load(feature_extractor_weights_path)`` with a strict ``load_state_dict``; we
    hand it an empty state dict (an in-memory file) and relax strictness, so nothing is downloaded."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return super().load_state_dict(state_dict, strict=False)

    buf = io.BytesIO()
    torch.save({}, buf)
    buf.seek(0)
    torch.manual_seed(0)
    net = RandomInception("rand", ["2048"], feature_extractor_weights_path=buf)
    torch.save(net.state_dict(), path)
    return str(path)


def test_inception_path_with_random_weights(tmp_path):
    w = random_inception_file(tmp_path / "inception.pth")
    net = F.feature_extractor("inception", weights_path=w, download=False)
    assert isinstance(net.net, __import__("torch_fidelity").feature_extractor_inceptionv3.FeatureExtractorInceptionV3)
    assert not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        grey = net(torch.rand(2, 1, 8, 8) * 2 - 1)
        rgb = net(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert grey.shape == (2, 2048) and rgb.shape == (1, 2048) and torch.isfinite(grey).all()
    assert "torch-fidelity" in net.version


def test_inception_unavailable_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(F.InceptionUnavailable, match="download=False"):
        F.inception_weights(download=False)
    with pytest.raises(F.InceptionUnavailable, match="does not exist"):
        F.inception_weights(str(tmp_path / "missing.pth"))


class Copycat(pl.LightningModule):
    """A 'generator' that returns noisy copies of the train digits (no training)."""

    def __init__(self, images):
        super().__init__()
        self.automatic_optimization = False
        self.images = images
        self.data_shape = tuple(images.shape[1:])
        self.gen_step = 0
        self.p = nn.Parameter(torch.zeros(1))

    def sample(self, n):
        idx = torch.randint(len(self.images), (n,))
        return (self.images[idx] + 0.1 * torch.randn(n, *self.data_shape)).clamp(-1, 1)

    def training_step(self, batch, batch_idx):
        self.gen_step += 1

    def configure_optimizers(self):
        return None


def _fit(tmp_path, cb, dm, steps=2):
    trainer = pl.Trainer(max_epochs=1, logger=CSVLogger(tmp_path, name="r", version=""), callbacks=[cb],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path, limit_train_batches=steps)
    trainer.fit(Copycat(dm.reference_samples(2000, "train")), datamodule=dm)
    return trainer


def test_callback_disables_itself_once_without_inception_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    dm = Digits(image_size=8, batch_size=16, seed=0)
    cb = F.FID(every_n_gen_steps=1, extractor="inception", download=False)
    trainer = _fit(tmp_path, cb, dm, steps=3)
    assert trainer.state.finished and cb.disabled
    err = capsys.readouterr().err
    assert err.count("FID disabled") == 1 and "inception" in err and "weights_path" in err
    log = tmp_path / "r" / "metrics.csv"  # written only when something was logged
    assert not log.exists() or not any(r.get("eval/fid") for r in csv.DictReader(open(log)))
    assert "eval/fid" not in trainer.callback_metrics


def test_callback_logs_fid_and_protocol_and_reuses_real_statistics(tmp_path, monkeypatch):
    dm = Digits(image_size=16, batch_size=16, seed=0)
    calls = []
    orig = dm.reference_samples
    monkeypatch.setattr(dm, "reference_samples", lambda n, split="val": calls.append((n, split)) or orig(n, split))
    cb = F.FID(every_n_gen_steps=1, n_fake=500, batch_size=200)
    _fit(tmp_path, cb, dm, steps=2)
    rows = [r for r in csv.DictReader(open(tmp_path / "r" / "metrics.csv")) if r.get("eval/fid")]
    assert [int(float(r["trainer/gen_step"])) for r in rows] == [1, 2]
    assert all(0 < float(r["eval/fid"]) < 100 for r in rows)
    assert calls.count((10_000, "val")) == 1  # real statistics computed once
    proto = json.loads((tmp_path / "r" / "fid_protocol.json").read_text())
    assert proto["extractor"] == "digits" and proto["extractor_version"].startswith("digits-cnn-")
    assert proto["n_real"] == 359 and proto["n_fake"] == 500 and proto["reference_split"] == "val"
    assert proto["image_size"] == [1, 16, 16] and "16x16→8x8" in proto["resize"]
    hp = yaml.safe_load(open(tmp_path / "r" / "hparams.yaml"))
    assert hp["fid_protocol"]["n_real"] == 359


def test_auto_extractor_choice():
    assert F.auto_extractor(Digits(image_size=32), (1, 32, 32)) == "digits"
    assert F.auto_extractor(object(), (3, 32, 32)) == "inception"


# ------------------------------------------------------------------------------------------ DDP
class NoiseGen(nn.Module):
    data_shape = (1, 8, 8)
    gen_step = 1

    @property
    def device(self):
        return torch.device("cpu")

    def sample(self, n):
        return torch.rand(n, 1, 8, 8) * 2 - 1


def fid_on_ranks(world: int, rank: int, root: str) -> float:
    dm = Digits(image_size=8, seed=0)
    trainer = types.SimpleNamespace(world_size=world, global_rank=rank, is_global_zero=rank == 0, datamodule=dm,
                                    loggers=[], default_root_dir=root)
    cb = F.FID(extractor="digits", n_fake=700, batch_size=100)  # 7 chunks: 4 on rank 0, 3 on rank 1
    return cb.compute(trainer, NoiseGen())


def _ddp_worker(rank: int, world: int, port: int, root: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        value = fid_on_ranks(world, rank, root)
        with open(os.path.join(root, f"fid{rank}.txt"), "w") as f:
            f.write(repr(value))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_processes_equal_one_process(tmp_path):
    single = fid_on_ranks(1, 0, str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children inherit the imported modules (spawn would re-import torch, Lightning… in each)
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    values = [float((tmp_path / f"fid{r}.txt").read_text()) for r in range(2)]
    assert values[0] == values[1]  # every rank computes the same reduced value
    # float32 features of different batch splits differ in the last bits; a wrong reduction (e.g. one rank's
    # share only) would be off by far more than this
    assert values[0] == pytest.approx(single, rel=1e-6)
    assert single > 50  # noise vs digits: far from 0

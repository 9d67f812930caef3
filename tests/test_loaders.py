"""Real dataset loaders on small files written here in the real formats (MNIST idx, CIFAR-10 pickles,
image folders), including missing, corrupted and truncated files."""

import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import ImageFolderImages, TorchvisionImages
from zoo.errors import ConfigError
from _checks import image_folder_with_two_bad_files


def _write_idx(path, array: np.ndarray):
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for s in array.shape:
            f.write(struct.pack(">I", s))
        f.write(array.astype(np.uint8).tobytes())


def _mnist(root, n_train=40, n_test=12, folder="MNIST"):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        x[0] = 0
        x[1] = 255
        _write_idx(raw / f"{split}-images-idx3-ubyte", x)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, size=n, dtype=np.uint8))
        imgs[split] = x
    return imgs


def test_mnist_idx_files_load_and_normalise(tmp_path):
    imgs = _mnist(tmp_path)
    dm = TorchvisionImages("mnist", root=str(tmp_path), image_size=32, batch_size=8)
    dm.setup()
    assert dm.data_shape == (1, 32, 32)
    assert len(dm.train_set) == 40 and len(dm.val_set) == 12
    x, y = dm.train_set.__getitems__([0, 1, 2])
    assert x.shape == (3, 1, 32, 32)
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0)) and torch.allclose(x[1], torch.ones_like(x[1]))
    native = TorchvisionImages("mnist", root=str(tmp_path), image_size=32, batch_size=8)
    native.image_size = None
    native.setup()
    raw = native.train_set.tensors[0][2].float()
    assert torch.allclose(raw, torch.from_numpy(imgs["train"][2]).float())  # bytes read back exactly
    assert next(iter(dm.train_dataloader()))[0].shape == (8, 1, 32, 32)


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    _mnist(tmp_path, folder="FashionMNIST")
    dm = TorchvisionImages("fashion_mnist", root=str(tmp_path), image_size=16, batch_size=8)
    dm.setup()
    assert dm.reference_samples(5).shape == (5, 1, 16, 16)


def test_truncated_mnist_file_is_reported(tmp_path):
    _mnist(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="mnist files under .* (corrupted|truncated)"):
        TorchvisionImages("mnist", root=str(tmp_path), batch_size=8).setup()


def test_missing_dataset_names_expected_path(tmp_path):
    with pytest.raises(ConfigError, match=r"cifar10 not found: expected .*cifar-10-batches-py/data_batch_1"):
        TorchvisionImages("cifar10", root=str(tmp_path), batch_size=8).setup()


def _cifar(root, n=10):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batches[name] = data
        with open(d / name, "wb") as f:
            pickle.dump({"data": data, "labels": list(rng.integers(0, 10, n))}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return batches


def test_cifar10_pickles_load_channel_first(tmp_path):
    batches = _cifar(tmp_path)
    with pytest.raises(ConfigError, match="corrupted or incomplete"):  # MD5 differs from the real files
        TorchvisionImages("cifar10", root=str(tmp_path), batch_size=8).setup()
    dm = TorchvisionImages("cifar10", root=str(tmp_path), verify_checksums=False, batch_size=4)
    dm.setup()
    assert len(dm.train_set) == 50 and len(dm.val_set) == 10 and dm.data_shape == (3, 32, 32)
    x, _ = dm.train_set.__getitems__([0])
    expected = torch.from_numpy(batches["data_batch_1"][0].reshape(3, 32, 32)).float() / 255 * 2 - 1
    assert torch.allclose(x[0], expected, atol=1e-6)


def _png(path, size, value):
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def test_image_folder_crop_resize_and_errors(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for i in range(6):
        _png(tmp_path / "imgs" / ("sub" if i % 2 else "") / f"{i}.png", (20, 16), 255 if i == 0 else 0)
    dm = ImageFolderImages(root=str(tmp_path / "imgs"), image_size=8, batch_size=2, val_fraction=0.2)
    dm.setup()
    assert dm.data_shape == (3, 8, 8) and len(dm.train_set) + len(dm.val_set) == 6
    xs = torch.stack([dm.train_set[i] for i in range(len(dm.train_set))] + [dm.val_set[i] for i in range(len(dm.val_set))])
    assert set(xs.flatten().tolist()) <= {-1.0, 1.0}
    native = ImageFolderImages(root=str(tmp_path / "imgs"), image_size=None, crop=16)
    assert native.data_shape == (3, 16, 16)

    _png(tmp_path / "imgs" / "odd.png", (32, 32), 0)
    with pytest.raises(ConfigError, match="mixed sizes"):
        ImageFolderImages(root=str(tmp_path / "imgs"), image_size=None)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no images"):
        ImageFolderImages(root=str(tmp_path / "empty"))


def test_corrupt_images_are_found_before_training_and_can_be_skipped(tmp_path, monkeypatch, capsys):
    """Reference: which files were broken by hand. Every file is decoded once; the verdicts are cached per folder
    (a second construction decodes nothing; a file that changes is decoded again)."""
    import datamodules.images as images

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "imgs"
    image_folder_with_two_bad_files(root)
    with pytest.raises(ConfigError, match=r"2 of 6 files under .* are not readable images \(2\.png: .*; 4\.png: "
                                          r".*\): remove or replace them, or set --data\.skip_corrupt true"):
        ImageFolderImages(root=str(root), image_size=8, batch_size=2)
    assert images.image_check_cache(str(root)).exists()

    decoded = []
    real = images._image_errors
    monkeypatch.setattr(images, "_image_errors", lambda paths: decoded.extend(paths) or real(paths))
    dm = ImageFolderImages(root=str(root), image_size=8, batch_size=2, skip_corrupt=True, val_fraction=0.25)
    assert decoded == [], "the cached verdicts are reused"
    assert sorted(p.rsplit("/", 1)[1] for p in dm.files) == ["0.png", "1.png", "3.png", "5.png"]
    assert "2 of 6 files" in capsys.readouterr().err
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 4
    assert torch.stack([dm.train_set[i] for i in range(len(dm.train_set))]).abs().max() <= 1

    (root / "2.png").write_bytes((root / "0.png").read_bytes())  # repaired: decoded again, now readable
    dm = ImageFolderImages(root=str(root), image_size=8, batch_size=2, skip_corrupt=True)
    assert decoded == [str(root / "2.png")] and len(dm.files) == 5

"""Image datamodules. All images are normalised to [-1, 1] as ``(C, H, W)`` float tensors.

* :class:`Digits` — scikit-learn's bundled 8×8 digits (1,797 images, embedded: no download), optional
  resize to 16 or 32; train/val split fixed by ``seed``.
* :class:`StackedDigits` — three independent digits stacked as channels: 1000 modes (digit triples), the
  offline stand-in for stacked MNIST (VEEGAN/PacGAN protocol).
* :class:`TorchvisionImages` — MNIST, Fashion-MNIST, CIFAR-10 through torchvision (download when online,
  or files under ``root``).
* :class:`ImageFolderImages` — any folder of images (CelebA's ``img_align_celeba`` …), centre-cropped and
  resized.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import BatchedTensorDataset, GANDataModule, check_finite, split_indices
from zoo.errors import ConfigError


def to_unit_range(x: Tensor, max_value: float) -> Tensor:
    """Map pixel values in [0, max_value] to [-1, 1] as float32: 2·x/max_value − 1."""
    return x.float().mul(2.0 / max_value).sub(1.0)


def resize(x: Tensor, size: Optional[int]) -> Tensor:
    """Bilinear resize of a float batch ``(N, C, H, W)`` to ``size``×``size`` (antialiased when shrinking)."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1]).clamp_(-1, 1)


def _check_size(image_size: Optional[int], allowed=(8, 16, 32, 64, 128)) -> None:
    if image_size is not None and image_size not in allowed:
        raise ConfigError(f"image_size must be one of {allowed}, got {image_size}")


class _ImageTransform:
    """uint8/float pixels → [-1, 1] → resized; picklable for DataLoader workers."""

    def __init__(self, max_value: float, size: Optional[int], channels_last: bool = False):
        self.max_value, self.size, self.channels_last = max_value, size, channels_last

    def __call__(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return resize(to_unit_range(x, self.max_value), self.size)


def load_digits_tensor() -> Tuple[Tensor, Tensor]:
    """scikit-learn's digits as ``(1797, 8, 8)`` float pixels in [0, 16] and ``(1797,)`` labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.as_tensor(d.images, dtype=torch.float32), torch.as_tensor(d.target, dtype=torch.long)


class Digits(GANDataModule):
    """scikit-learn's bundled 8×8 digits, in [-1, 1]; batches are ``(images, labels)``.

    Args:
        image_size: 8 (native), 16 or 32 (bilinear upsampling).
        val_fraction: held-out share, split fixed by ``seed``.
    """

    num_modes = 10  # the digit classes (callbacks.StackedModeCount counts them)

    def __init__(self, image_size: int = 8, val_fraction: float = 0.2, batch_size: int = 64,
                 num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        _check_size(image_size, (8, 16, 32))
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.image_size, self.val_fraction = int(image_size), float(val_fraction)
        self.data_shape = (1, self.image_size, self.image_size)

    def _build(self) -> None:
        images, labels = load_digits_tensor()
        tr, va = split_indices(len(images), self.val_fraction, self.seed)
        tf = _ImageTransform(16.0, self.image_size)
        self.train_set = BatchedTensorDataset(images[tr], labels[tr], transform=tf)
        self.val_set = BatchedTensorDataset(images[va], labels[va], transform=tf)


class _StackedDataset(Dataset):
    """Item i stacks digits ``triples[i]`` (indices into ``images``) as 3 channels; label = 100a + 10b + c."""

    def __init__(self, images: Tensor, labels: Tensor, triples: Tensor, size: Optional[int]):
        self.images, self.labels, self.triples, self.size = images, labels, triples, size

    def __len__(self) -> int:
        return int(self.triples.shape[0])

    def __getitems__(self, indices):
        t = self.triples[torch.as_tensor(indices, dtype=torch.long)]  # (B, 3)
        x = self.images[t]  # (B, 3, 8, 8)
        lab = self.labels[t]
        mode = lab[:, 0] * 100 + lab[:, 1] * 10 + lab[:, 2]
        return resize(to_unit_range(x, 16.0), self.size), mode

    def __getitem__(self, i: int):
        x, m = self.__getitems__([i])
        return x[0], m[0]


class StackedDigits(GANDataModule):
    """Three independent scikit-learn digits stacked as channels (1000 modes), in [-1, 1].

    Each channel is drawn uniformly from the train (or val) split of :class:`Digits` with the same seed, so
    no held-out digit image leaks into training. Batches are ``(images, mode)`` with mode = 100a + 10b + c.

    Args:
        n_samples: number of stacked training images (PacGAN pre-builds 128,000 from MNIST).
        val_samples: number of stacked held-out images.
        image_size: 8, 16 or 32.
    """

    num_modes = 1000

    def __init__(self, n_samples: int = 128_000, val_samples: int = 10_000, image_size: int = 8,
                 val_fraction: float = 0.2, batch_size: int = 64, num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        _check_size(image_size, (8, 16, 32))
        self.n_samples, self.val_samples = int(n_samples), int(val_samples)
        self.image_size, self.val_fraction = int(image_size), float(val_fraction)
        self.data_shape = (3, self.image_size, self.image_size)

    def _build(self) -> None:
        images, labels = load_digits_tensor()
        tr, va = split_indices(len(images), self.val_fraction, self.seed)
        g = torch.Generator().manual_seed(self.seed + 1)
        train_triples = tr[torch.randint(len(tr), (self.n_samples, 3), generator=g)]
        val_triples = va[torch.randint(len(va), (self.val_samples, 3), generator=g)]
        self.train_set = _StackedDataset(images, labels, train_triples, self.image_size)
        self.val_set = _StackedDataset(images, labels, val_triples, self.image_size)


_TORCHVISION = {
    # name: (torchvision class name, expected location under root, channels, native size, how to obtain)
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte", 1, 28, "yann.lecun.com/exdb/mnist or torchvision"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw/train-images-idx3-ubyte", 1, 28,
                      "github.com/zalandoresearch/fashion-mnist"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/data_batch_1", 3, 32, "www.cs.toronto.edu/~kriz/cifar.html"),
}


class TorchvisionImages(GANDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10 through torchvision, normalised to [-1, 1].

    Args:
        name: ``mnist``, ``fashion_mnist`` or ``cifar10``.
        root: directory holding the files in torchvision's layout (``root/MNIST/raw/…``,
            ``root/cifar-10-batches-py/…``).
        download: download into ``root`` when the files are missing (needs internet).
        image_size: output size (default 32: MNIST's 28×28 is resized so DCGAN nets apply).
        verify_checksums: CIFAR-10 only — torchvision checks each batch file's MD5; a mismatch is reported
            as a corrupted file. Turn off only for hand-made files in the same format.
        split: the held-out reference split is the dataset's official test split.
    """

    def __init__(self, name: str = "mnist", root: str = "data", download: bool = False, image_size: int = 32,
                 verify_checksums: bool = True, batch_size: int = 64, num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        if name not in _TORCHVISION:
            raise ConfigError(f"unknown torchvision dataset {name!r}: use one of {', '.join(_TORCHVISION)}")
        _check_size(image_size)
        self.name, self.root, self.download = name, str(root), bool(download)
        self.image_size, self.verify_checksums = int(image_size), bool(verify_checksums)
        channels = _TORCHVISION[name][2]
        self.data_shape = (channels, self.image_size, self.image_size)

    def _load(self, train: bool):
        import torchvision.datasets as tvd

        cls_name, expected, _, _, source = _TORCHVISION[self.name]
        cls = getattr(tvd, cls_name)
        if not self.verify_checksums and cls_name == "CIFAR10":
            # same parsing, no MD5 comparison (md5=None makes torchvision check only that files exist)
            cls = type("UncheckedCIFAR10", (cls,), {"_check_integrity": lambda self: True,
                                                    "meta": {**cls.meta, "md5": None}})
        path = Path(self.root) / expected
        try:
            return cls(self.root, train=train, download=self.download)
        except RuntimeError as err:
            if path.exists() or any(path.parent.glob("*")):
                raise ConfigError(
                    f"{self.name} files under {path.parent} are corrupted or incomplete ({err}); delete them and "
                    f"download again (data.download: true) or copy fresh files from {source}"
                ) from None
            raise ConfigError(
                f"{self.name} not found: expected {path} (torchvision layout under root={self.root}); set "
                f"data.download: true on a machine with internet, or copy the files from {source}"
            ) from None
        except (ValueError, EOFError, OSError, IndexError) as err:
            raise ConfigError(
                f"{self.name} files under {path.parent} could not be read ({type(err).__name__}: {err}); "
                "they are truncated or corrupted: replace them"
            ) from None

    def _build(self) -> None:
        _, _, _, native, _ = _TORCHVISION[self.name]
        sets = []
        for train in (True, False):
            ds = self._load(train)
            data = torch.as_tensor(np.asarray(ds.data))
            targets = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
            channels_last = data.dim() == 4
            if data.shape[1:3] != (native, native) and data.shape[-2:] != (native, native):
                raise ConfigError(f"{self.name}: unexpected image shape {tuple(data.shape[1:])}; files corrupted?")
            sets.append(BatchedTensorDataset(data, targets,
                                             transform=_ImageTransform(255.0, self.image_size, channels_last)))
        self.train_set, self.val_set = sets


_IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


class _FolderDataset(Dataset):
    def __init__(self, files, size: Optional[int], crop: Optional[int], channels: int):
        self.files, self.size, self.crop, self.channels = files, size, crop, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            im = im.convert("RGB" if self.channels == 3 else "L")
            w, h = im.size
            c = self.crop or min(w, h)
            left, top = (w - c) // 2, (h - c) // 2
            im = im.crop((left, top, left + c, top + c))
            if self.size is not None and im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), Image.BICUBIC)
            x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
        x = x.permute(2, 0, 1) if x.dim() == 3 else x.unsqueeze(0)
        return to_unit_range(x, 255.0)


def _image_error(path: str) -> Optional[str]:
    """``None`` when ``path`` decodes completely as an image (PIL ``open`` + ``load``), else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure makes the file unusable
        return " ".join(f"{type(err).__name__}: {err}".split())[:160]
    return None


def _image_errors(paths: list) -> list:
    return [_image_error(p) for p in paths]


def image_check_cache(root: str) -> Path:
    """Where :func:`check_images` keeps its verdicts for the folder ``root`` (``$XDG_CACHE_HOME`` or ``~/.cache``,
    then ``ot-gan-zoo/image_check/<hash of the folder's absolute path>.json``)."""
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return base / "ot-gan-zoo" / "image_check" / f"{key}.json"


def check_images(root: str, files: list, workers: Optional[int] = None) -> dict:
    """``{file: reason}`` for every file of ``files`` that does not decode as an image, checked in parallel worker
    processes and cached per folder (a file is checked again only when its size or modification time changed)."""
    import json
    from concurrent.futures import ProcessPoolExecutor

    cache_path = image_check_cache(root)
    try:
        cache = json.loads(cache_path.read_text()).get("files", {})
    except (OSError, ValueError):
        cache = {}
    stats = {f: os.stat(f) for f in files}
    keys = {f: [stats[f].st_size, stats[f].st_mtime_ns] for f in files}
    todo = [f for f in files if cache.get(f, [None, None])[:2] != keys[f]]
    if todo:
        workers = workers or min(len(todo) // 256 + 1, os.cpu_count() or 1)
        if workers > 1:
            chunks = [todo[i::workers] for i in range(workers)]
            with ProcessPoolExecutor(workers) as pool:
                results = dict(zip((f for c in chunks for f in c), (e for r in pool.map(_image_errors, chunks)
                                                                   for e in r)))
        else:
            results = dict(zip(todo, _image_errors(todo)))
        for f in todo:
            cache[f] = keys[f] + [results[f]]
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"root": str(Path(root).resolve()), "files": cache}))
            os.replace(tmp, cache_path)
        except OSError:
            pass  # no cache: the next run checks again
    return {f: cache[f][2] for f in files if cache[f][2] is not None}


class ImageFolderImages(GANDataModule):
    """Every image file under ``root`` (recursively), centre-cropped to a square and resized.

    Args:
        root: folder of images (e.g. CelebA's ``img_align_celeba``).
        image_size: output side; ``None`` keeps the native size, which must then be the same for all images.
        crop: centre-crop side before resizing (CelebA 64×64 convention: 140); ``None`` = the shorter side.
        channels: 3 (RGB) or 1 (grey).
        val_fraction: held-out share, split fixed by ``seed``.
        skip_corrupt: leave out files that do not decode as images (with one warning) instead of stopping.

    Every file is decoded once before training (:func:`check_images`: parallel worker processes, verdicts cached
    per folder), so a corrupt or truncated file stops the run with one line naming it — or is skipped with
    ``skip_corrupt`` — instead of failing in the middle of training.
    """

    def __init__(self, root: str = "data/celeba/img_align_celeba", image_size: Optional[int] = 64,
                 crop: Optional[int] = None, channels: int = 3, val_fraction: float = 0.05,
                 batch_size: int = 64, num_workers: int = 0, seed: int = 0,
                 batches_per_step: int = 1, skip_corrupt: bool = False):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed,
                         batches_per_step=batches_per_step)
        _check_size(image_size)
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        self.root, self.image_size, self.crop, self.channels = str(root), image_size, crop, int(channels)
        self.val_fraction = float(val_fraction)
        self.skip_corrupt = bool(skip_corrupt)
        self.files = self._readable(self._list_files())
        if image_size is None:
            side = self._common_size()
            _check_size(side)
            self.data_shape = (self.channels, side, side)
        else:
            self.data_shape = (self.channels, int(image_size), int(image_size))

    def _list_files(self):
        root = Path(self.root)
        if not root.is_dir():
            raise ConfigError(f"image folder {root} does not exist: set data.root to a folder of images")
        files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in _IMG_EXT)
        if not files:
            raise ConfigError(f"no images ({', '.join(_IMG_EXT)}) found under {root}: check data.root")
        return files

    def _readable(self, files: list) -> list:
        import sys

        bad = check_images(self.root, files)
        if not bad:
            return files
        first = "; ".join(f"{Path(f).name}: {bad[f]}" for f in sorted(bad)[:2])
        what = f"{len(bad)} of {len(files)} files under {self.root} are not readable images ({first}"
        if not self.skip_corrupt:
            raise ConfigError(f"{what}): remove or replace them, or set --data.skip_corrupt true to leave them out")
        if len(bad) == len(files):
            raise ConfigError(f"{what}): no readable image left; check data.root")
        print(f"[zoo] warning: {what}): skipped (data.skip_corrupt)", file=sys.stderr)
        return [f for f in files if f not in bad]

    def _common_size(self) -> int:
        from PIL import Image

        sizes = {}
        for f in self.files:
            try:
                with Image.open(f) as im:
                    w, h = im.size
            except OSError as err:
                raise ConfigError(f"cannot read image {f} ({err}): remove or replace it") from None
            side = self.crop or min(w, h)
            sizes.setdefault((w, h, side), f)
            if len(sizes) > 1:
                (a, fa), (b, fb) = list(sizes.items())[:2]
                raise ConfigError(
                    f"images under {self.root} have mixed sizes ({a[0]}x{a[1]} in {fa}, {b[0]}x{b[1]} in {fb}): "
                    "set data.image_size to resize them"
                )
        return next(iter(sizes))[2]

    def _build(self) -> None:
        files = np.array(self.files)
        tr, va = split_indices(len(files), self.val_fraction, self.seed)
        mk = lambda idx: _FolderDataset(list(files[idx.numpy()]), self.image_size, self.crop, self.channels)  # noqa
        self.train_set, self.val_set = mk(tr), mk(va)
        first = self.train_set[0]
        check_finite(first, f"image {self.train_set.files[0]}")

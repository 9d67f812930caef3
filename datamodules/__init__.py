"""Datamodules of the zoo: 2-D mixtures with known modes, embedded digits, stacked digits,
torchvision datasets, image folders and your own array files. They know nothing of the methods."""

from datamodules.arrays import ArrayFile
from datamodules.base import BatchedTensorDataset, GANDataModule
from datamodules.images import Digits, ImageFolderImages, StackedDigits, TorchvisionImages
from datamodules.synthetic import DATASETS as SYNTHETIC_DATASETS
from datamodules.synthetic import Synthetic2D

__all__ = [
    "GANDataModule",
    "BatchedTensorDataset",
    "Synthetic2D",
    "Digits",
    "StackedDigits",
    "TorchvisionImages",
    "ImageFolderImages",
    "ArrayFile",
    "SYNTHETIC_DATASETS",
    "resolve_data",
]

_IMAGE_NAMES = {"digits": Digits, "stacked_digits": StackedDigits}


def resolve_data(name: str, **kwargs) -> GANDataModule:
    """A datamodule from a short name: a 2-D dataset (``ring8``, ``grid25``…), ``digits``,
    ``stacked_digits``, ``mnist``, ``fashion_mnist`` or ``cifar10``."""
    from zoo.errors import ConfigError

    if name in SYNTHETIC_DATASETS:
        return Synthetic2D(name=name, **kwargs)
    if name in _IMAGE_NAMES:
        return _IMAGE_NAMES[name](**kwargs)
    if name in ("mnist", "fashion_mnist", "cifar10"):
        return TorchvisionImages(name=name, **kwargs)
    known = list(SYNTHETIC_DATASETS) + list(_IMAGE_NAMES) + ["mnist", "fashion_mnist", "cifar10"]
    raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(known)}")

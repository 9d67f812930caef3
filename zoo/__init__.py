"""OT-GAN zoo: GANs read through optimal transport, as PyTorch Lightning modules.

Every method subclasses :class:`zoo.GANModule`, lives in one file under ``zoo/`` and registers a short name
(``zoo.list_models()`` after ``import zoo.methods``). Method classes are imported lazily:
``zoo.WGANGP`` imports ``zoo.wgan_gp`` on first access.
"""

import importlib

from zoo.errors import ConfigError
from zoo.registry import list_models, register_model, resolve_model

__version__ = "0.1.0"

# imported on first access, so ``import zoo.errors`` (which the datamodules do) loads none of the models
_LAZY = {
    "GANModule": "zoo.base",
    "VanillaGAN": "zoo.vanilla",
    "WGANGP": "zoo.wgan_gp",
    "SNGAN": "zoo.srgan",
    "SRGAN": "zoo.srgan",
    "ICNNW2GAN": "zoo.icnn_w2gan",
    "DualFlowGAN": "zoo.dual_flow",
    "AEOT": "zoo.aeot",
}

__all__ = ["GANModule", "VanillaGAN", "ConfigError", "list_models", "register_model", "resolve_model", *_LAZY]


def __getattr__(name):
    if name == "nets":
        return importlib.import_module("zoo.nets")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")

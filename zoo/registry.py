"""A small timm-style registry of zoo methods.

Each method file registers its LightningModule under a short name::

    @register_model("vanilla")
    class VanillaGAN(GANModule): ...

``python train.py fit --model vanilla`` and ``python -m zoo.compare --methods vanilla`` resolve the
short name; any import path (``my_package.MyGAN``) works as well.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Type

from zoo.errors import ConfigError

_MODELS: Dict[str, Type] = {}


def register_model(name: str) -> Callable[[Type], Type]:
    """Class decorator: register ``cls`` under ``name`` (lower-case, unique)."""

    def deco(cls: Type) -> Type:
        key = name.lower()
        if key in _MODELS and _MODELS[key] is not cls:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[key] = cls
        cls.zoo_name = key
        return cls

    return deco


def _load_methods() -> None:
    """Import the zoo's own method files (each registers itself); plug-ins register when their module is imported."""
    importlib.import_module("zoo.methods")


def list_models() -> List[str]:
    """Short names of all registered methods, sorted."""
    _load_methods()
    return sorted(_MODELS)


def class_path(cls: Type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_model(name: str) -> Type:
    """Return the class for a short name, a class name of a zoo method, or an import path.

    Raises :class:`ConfigError` (one line, listing the known names) when nothing matches.
    """
    key = name.lower()
    _load_methods()
    if key in _MODELS:
        return _MODELS[key]
    for cls in _MODELS.values():
        if cls.__name__ == name or class_path(cls) == name:
            return cls
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            pass
    raise ConfigError(
        f"unknown method {name!r}: use one of {', '.join(list_models())} "
        "or an importable class path such as my_package.MyGAN"
    )

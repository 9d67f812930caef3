"""A small timm-style registry of zoo methods.

Each method file registers its LightningModule under a short name::

    @register_model("vanilla")
    class VanillaGAN(GANModule): ...

``python train.py fit --model vanilla`` and ``python -m zoo.compare --methods vanilla`` resolve the
short name; any import path (``my_package.MyGAN``) works as well.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Callable, Dict, List, Optional, Type

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


def method_name(obj) -> str:
    """The name a module or class is shown under: its registered short name when that class itself is registered
    (a subclass does not inherit it), else its class name."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("zoo_name") or cls.__name__


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
        cls = _import_class(name)
        if cls is not None:
            return cls
    raise ConfigError(
        f"unknown method {name!r}: use one of {', '.join(list_models())} "
        "or an importable class path such as my_package.MyGAN"
    )


def _where(err: BaseException) -> str:
    """``file:line`` of the innermost frame of ``err`` outside importlib (the user's line that failed)."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "importlib" not in f.filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _import_class(path: str) -> Optional[Type]:
    """The class at ``pkg.module.Class``; ``None`` when the module does not exist (an unknown name). Anything that
    fails *inside* an existing module is a :class:`ConfigError` of one line: the module, its failing line and the
    original message — and a module written against ``lightning.pytorch`` gets the namespace and the fix."""
    module, _, attr = path.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            return None  # the named module itself does not exist
        if missing.split(".")[0] == "lightning":
            raise ConfigError(
                f"{module} imports {missing} ({_where(err)}), which is not installed: the zoo trains "
                f"pytorch_lightning modules, so write `import pytorch_lightning as pl` (and `from pytorch_lightning "
                f"import LightningModule`) instead of the lightning.pytorch namespace") from None
        raise ConfigError(f"importing {module} failed at {_where(err)}: ModuleNotFoundError: {err}") from None
    except Exception as err:  # noqa: BLE001 - any error inside the user's module, reported in one line
        msg = str(err).splitlines()[0] if str(err) else ""
        raise ConfigError(f"importing {module} failed at {_where(err)}: {type(err).__name__}: {msg}") from None
    cls = getattr(mod, attr, None)
    if cls is None:
        raise ConfigError(f"{module} has no attribute {attr!r}: check the class name in {path!r}")
    _check_namespace(cls, path)
    return cls


def _check_namespace(cls: Type, path: str) -> None:
    """A ``lightning.pytorch.LightningModule`` is not a ``pytorch_lightning.LightningModule``: say so in one line."""
    import pytorch_lightning as pl

    if not isinstance(cls, type) or issubclass(cls, pl.LightningModule):
        return
    if any(c.__module__.split(".")[0] == "lightning" for c in cls.__mro__):
        raise ConfigError(
            f"{path} is a lightning.pytorch.LightningModule, but the zoo trains pytorch_lightning modules: in its "
            f"file write `import pytorch_lightning as pl` instead of `import lightning.pytorch as pl` (the classes "
            f"are the same, under the other package name)")

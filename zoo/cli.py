"""The zoo's LightningCLI (``train.py``).

``python train.py fit --model <method> --data <dataset> [--trainer.* ...]`` or
``python train.py fit --config configs/<method>/<data>.yaml``.

* ``--model`` takes a zoo short name (``vanilla``, ``wgan_gp``…, see ``zoo.list_models()``), a class name, or any
  import path of a LightningModule (``my_package.MyGAN``): LightningCLI subclass mode.
* ``--data`` takes a short dataset name (``ring8``, ``grid25``, ``digits``, ``stacked_digits``, ``mnist``…) or a
  LightningDataModule class path.
* Every run gets a run directory ``<trainer.default_root_dir>/<run_name>`` with CSV logs, ``config.yaml``,
  ``checkpoints/last.ckpt``, ``plots/`` and ``results.json`` (written atomically). Evaluation callbacks
  (``mode_coverage``, ``sample_plot``) are part of every run, so all methods are measured the same way.
* Logging: CSV always; W&B online when credentials exist (``WANDB_API_KEY`` or a netrc entry), otherwise
  offline (sync later with ``wandb sync``) — never an interactive prompt. ``WANDB_MODE=disabled`` or
  ``--wandb false`` turns W&B off.
* Configuration errors are printed as one line, ``error: ...``, with exit status 2, before training starts.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from jsonargparse import ArgumentError
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import SIGTERMException

from callbacks.checkpoint import InterruptCheckpoint, LastCheckpoint
from callbacks.distances import SampleDistances
from callbacks.fid import FID
from callbacks.gen_steps import GenStepCounter
from callbacks.history import RunCSVLogger, RunHistory
from callbacks.modes import ModeCoverage
from callbacks.plots import SamplePlot
from callbacks.progress import GenStepProgressBar
from callbacks.results import ResultsWriter
from callbacks.rollback import DivergenceRollback
from callbacks.spectral import SpectralMonitor
from callbacks.stacked import StackedModeCount
from callbacks.wandb_setup import WandbSetup
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.registry import class_path, method_name, resolve_model

DATA_SHORT_NAMES = {
    **{n: ("datamodules.Synthetic2D", n) for n in
       ("ring8", "grid25", "ring8_wgangp", "grid25_wgangp", "swissroll", "two_moons", "two_squares", "annulus")},
    "digits": ("datamodules.Digits", None),
    "stacked_digits": ("datamodules.StackedDigits", None),
    "mnist": ("datamodules.TorchvisionImages", "mnist"),
    "fashion_mnist": ("datamodules.TorchvisionImages", "fashion_mnist"),
    "cifar10": ("datamodules.TorchvisionImages", "cifar10"),
}


def _import_methods() -> None:
    """Import every zoo method and datamodule so short names and bare class names (``--data ArrayFile``) resolve."""
    import datamodules  # noqa: F401  (LightningCLI resolves a bare class name among imported subclasses)
    import zoo.methods  # noqa: F401  (registers the methods)


def expand_short_names(args: List[str]) -> List[str]:
    """Rewrite ``--model <short>`` and ``--data <short>`` into class paths (and ``--data.name``)."""
    out: List[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        key, value, step = None, None, 1
        if a in ("--model", "--data") and i + 1 < len(args):
            key, value, step = a, args[i + 1], 2
        elif a.startswith("--model=") or a.startswith("--data="):
            key, value = a.split("=", 1)
        if key is None or value.startswith("{") or value.endswith((".yaml", ".yml", ".json")):
            out.append(a)
            i += 1
            continue
        if key == "--model":
            cls = resolve_model(value)  # ConfigError (one line) when unknown
            out += ["--model", class_path(cls)]
        elif value in DATA_SHORT_NAMES:
            path, name = DATA_SHORT_NAMES[value]
            out += ["--data", path] + (["--data.name", name] if name else [])
        elif "." not in value and value not in ("Synthetic2D", "Digits", "StackedDigits", "TorchvisionImages",
                                                "ImageFolderImages", "ArrayFile"):
            raise ConfigError(f"unknown dataset {value!r}: use one of {', '.join(DATA_SHORT_NAMES)}, "
                              "ImageFolderImages, ArrayFile, or a LightningDataModule class path")
        else:
            out += [key, value]
        i += step
    return out


def wandb_credentials() -> bool:
    """True when a W&B API key is available without prompting (env var or netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        rc = netrc.netrc()
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]
    return rc.authenticators(host) is not None


def default_loggers(root: str, run_name: str, use_wandb: bool, project: str) -> list:
    """CSV logs always (:class:`callbacks.history.RunCSVLogger`: ``<run dir>/metrics.csv``, one history over a
    run's resumed segments), plus W&B unless disabled (the same W&B run id for the same run folder, resumed)."""
    loggers: list = [RunCSVLogger(save_dir=root, name=run_name)]
    mode = os.environ.get("WANDB_MODE", "").lower()
    if use_wandb and mode not in ("disabled", "dryrun-disabled"):
        has_key = wandb_credentials()
        online = has_key and mode != "offline"
        if not online:
            why = "WANDB_MODE=offline" if has_key else "no credentials found"
            print(f"[zoo] W&B: {why}; logging offline under {Path(root) / run_name} "
                  "(upload later with `wandb sync`)", file=sys.stderr)
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(_wandb_logger(name=run_name, project=project, save_dir=str(Path(root) / run_name),
                                     offline=not online, id=_wandb_id(root, run_name)))
    return loggers


def _wandb_logger(**kwargs):
    """Lightning's ``WandbLogger`` (which resumes a run with the same id: ``resume="allow"``), without the
    ``anonymous`` setting it always passes to ``wandb.init``: current W&B ignores it and warns about it on every run."""
    from pytorch_lightning.loggers import WandbLogger

    logger = WandbLogger(**kwargs)
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger


def _wandb_id(root: str, run_name: str) -> str:
    """A W&B run id unique to the run directory (same folder → same id, so a resumed run continues its W&B run;
    equal run names in different folders stay separate)."""
    digest = hashlib.sha1(str((Path(root) / run_name).resolve()).encode()).hexdigest()[:8]
    return f"{run_name.replace('/', '-')[:55]}-{digest}"


class ZooCLI(LightningCLI):
    """LightningCLI in subclass mode with the zoo's run directory, loggers, evaluation and results."""

    def __init__(self, args: Optional[List[str]] = None, run: bool = True, **kwargs):
        super().__init__(
            pl.LightningModule,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"default_root_dir": "runs", "log_every_n_steps": 50},
            args=args,
            run=run,
            parser_kwargs={"exit_on_error": False},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModeCoverage, "mode_coverage")
        parser.add_lightning_class_args(SamplePlot, "sample_plot")
        # each evaluation callback does nothing on data it does not apply to, so every run measures the same way
        parser.add_lightning_class_args(FID, "fid")
        parser.add_lightning_class_args(SpectralMonitor, "spectral")
        parser.add_lightning_class_args(StackedModeCount, "stacked_modes")
        parser.add_lightning_class_args(SampleDistances, "distances")
        parser.add_lightning_class_args(DivergenceRollback, "rollback")  # off unless --rollback.enabled true
        parser.add_argument("--run_name", type=Optional[str], default=None,
                            help="Run directory name under trainer.default_root_dir (default: method-data-seed-time)")
        parser.add_argument("--max_gen_steps", type=Optional[int], default=None,
                            help="Stop after this many generator updates, for any module: a zoo method's "
                                 "model.max_gen_steps; for another LightningModule, the steps of the optimizer "
                                 "holding its generator's parameters (callbacks.gen_steps)")
        parser.add_argument("--wandb", type=bool, default=True, help="Log to W&B (offline without credentials)")
        parser.add_argument("--wandb_project", type=str, default="ot-gan-zoo", help="W&B project")
        parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                            help="Resume from this checkpoint (default: <run dir>/checkpoints/last.ckpt if present)")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=500,
                            help="Write checkpoints/last.ckpt every this many optimizer steps (Lightning global_step; 0: end of each epoch)")

    def _sub(self, key: str, default: Any = None) -> Any:
        cfg = self.config.get(self.subcommand) if getattr(self, "subcommand", None) else self.config
        return cfg.get(key, default) if cfg is not None else default

    def _run_name(self) -> str:
        name = self._sub("run_name")
        if name:
            return str(name)
        model = self.model
        method = method_name(model).lower()
        data = getattr(self.datamodule, "name", None) or type(self.datamodule).__name__.lower()
        seed = self._sub("seed_everything")
        return f"{method}-{data}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"

    def _instantiate_trainer(self, config: Dict[str, Any], callbacks: list) -> pl.Trainer:
        root = config.get("default_root_dir") or "runs"
        run_name = self._run_name()
        # everything that can be checked is checked before the first file of the run is written
        preflight(self.model, self.datamodule)
        if int(self._sub("checkpoint_every_n_steps", 500) or 0) < 0:
            raise ConfigError(f"checkpoint_every_n_steps must be >= 0 (0: at the end of each epoch), got "
                              f"{self._sub('checkpoint_every_n_steps')}")
        max_gen = self._sub("max_gen_steps")
        if max_gen is not None and int(max_gen) <= 0:
            raise ConfigError(f"max_gen_steps must be a positive number of generator steps, got {max_gen}: "
                              "leave it out for no limit")
        check_run_name(run_name)
        ckpt = self._sub("ckpt_path")
        if ckpt and str(ckpt) not in ("last", "best", "hpc", "registry"):  # Lightning's named checkpoints aside
            check_checkpoint(ckpt, "--ckpt_path")
        elif not ckpt or str(ckpt) == "last":
            check_checkpoint(str(Path(root) / run_name / "checkpoints" / "last.ckpt"), "the run's last.ckpt",
                             missing_ok=True)
        make_root_dir(root)
        if config.get("logger") in (None, True):
            config["logger"] = default_loggers(root, run_name, bool(self._sub("wandb", True)),
                                               str(self._sub("wandb_project", "ot-gan-zoo")))
        run_dir = Path(root) / run_name
        full = self.config.get(self.subcommand) if getattr(self, "subcommand", None) else self.config
        cfg_dict = full.as_dict() if hasattr(full, "as_dict") else dict(full or {})
        every = int(self._sub("checkpoint_every_n_steps", 500) or 0)
        if config.get("enable_progress_bar", True) is not False and not any(
                isinstance(c, ProgressBar) for c in list(config.get("callbacks") or []) + list(callbacks)):
            # the bar counts generator steps (callbacks.progress); refreshed less often when not a terminal
            callbacks = list(callbacks) + [GenStepProgressBar(refresh_rate=1 if sys.stdout.isatty() else 200)]
        callbacks = list(callbacks) + [
            LastCheckpoint(dirpath=str(run_dir / "checkpoints"), every_n_train_steps=every),
            InterruptCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="interrupted"),
            RunHistory(),
            GenStepCounter(max_gen_steps=self._sub("max_gen_steps")),
            ResultsWriter(config=cfg_dict),
            WandbSetup(),
        ]
        strategy = config.get("strategy")
        if isinstance(strategy, str) and strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
            # GANs update disjoint parameter sets in separate backward passes: DDP must look for unused
            # parameters (a method that knows better sets ddp_find_unused_parameters = False). No static
            # graph: with n_dis > 1 the set of parameters receiving gradients changes from batch to batch.
            from pytorch_lightning.strategies import DDPStrategy

            start = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}[strategy]
            config["strategy"] = DDPStrategy(start_method=start, find_unused_parameters=bool(
                getattr(self.model, "ddp_find_unused_parameters", True)))
        return super()._instantiate_trainer(config, callbacks)


_QUIET = (
    r".*LightningCLI's args parameter is intended.*",
    r".*was called without a model.*",  # OnExceptionCheckpoint makes fit() resume from last.ckpt if present
    r".*there is no last checkpoint available.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*does not have many workers.*",
    r".*The number of training batches.*",
    r".*Using ModelCheckpoint with manual optimization.*",  # LastCheckpoint saves after the step, by design
)


def preflight(model: pl.LightningModule, datamodule: Optional[pl.LightningDataModule], load_data: bool = True) -> None:
    """Checks that need the model (and the data), run before the Trainer and the run folder exist; ``load_data``
    loads (or generates) a zoo datamodule's data here, so missing or corrupt files fail before any file is written."""
    from datamodules.base import GANDataModule

    if isinstance(model, GANModule):
        model.check_hparams()
    if load_data and isinstance(datamodule, GANDataModule):
        datamodule.setup("fit")  # loads / generates the data (idempotent): its checks run before any file exists
    shape = getattr(datamodule, "data_shape", None)
    if isinstance(model, GANModule) and shape is not None:
        model.validate_data_shape(shape)


def check_run_name(name: str) -> None:
    """A run name is one folder name under ``trainer.default_root_dir`` (no path separator, not ``.``/``..``)."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"run_name {name!r} must be a folder name (no '/', not '.' or '..'): runs are written "
                          "under trainer.default_root_dir")


def check_checkpoint(path: str, what: str = "--ckpt_path", missing_ok: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``path`` is a readable Lightning checkpoint that ``torch.load`` accepts
    with ``weights_only=True`` (never retried unsafely). ``missing_ok``: a missing file is fine (a new run).

    Told apart: a missing file or a folder; a file that is not a torch zip archive or whose archive is damaged
    (truncated by a full disk or an interrupted copy); an archive holding objects other than tensors and plain
    containers (refused: loading it could run code); a loadable file without Lightning's ``state_dict``.
    """
    import zipfile

    import torch

    p = Path(path)
    if not p.exists():
        if missing_ok:
            return
        raise ConfigError(f"checkpoint {p} does not exist: check {what}")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder, not a checkpoint file: pass the .ckpt file inside it")
    fix = ("delete it to start the run over, or pass --ckpt_path <an earlier checkpoint>" if missing_ok
           else f"pass another {what}")
    if not zipfile.is_zipfile(p):
        raise ConfigError(f"checkpoint {p} is damaged or not a checkpoint (not a torch zip archive, "
                          f"{p.stat().st_size} bytes): {fix}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(f"refused to load checkpoint {p}: it holds objects other than tensors and plain "
                          f"containers (torch.load weights_only=True): {_one_line(str(err))[:160]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise ConfigError(f"checkpoint {p} is damaged ({_one_line(str(err))[:120]}): {fix}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"{p} is not a Lightning checkpoint (no state_dict): {fix}")


def make_root_dir(root: str) -> None:
    """Create ``trainer.default_root_dir`` (with its parents, as ``mkdir -p``) and check that files can be
    written in it, or raise :class:`ConfigError` naming the folder."""
    import tempfile

    p = Path(root)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"trainer.default_root_dir {p} is a file, not a folder: set --trainer.default_root_dir "
                          "to a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as err:
        raise ConfigError(f"cannot write runs under {p} ({err.strerror or err}): set --trainer.default_root_dir "
                          "to a writable folder") from None


class _NoAdvert(logging.Filter):
    """Drops Lightning's one-line advertisement for its hosted logger (printed at the start of every fit through
    Python's logging, which is the switch Lightning offers for its messages); every other line passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.getMessage())


def quiet_advertisement() -> None:
    for name in ("lightning_fabric.utilities.rank_zero", "pytorch_lightning.utilities.rank_zero"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _NoAdvert) for f in lg.filters):
            lg.addFilter(_NoAdvert())


def skip_nvml_cuda_check() -> None:
    """A process-level setting of this entry point (``train.py`` / ``zoo.cli.main``), never of the library.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` for the whole process; every Adam step then calls
    ``torch.cuda.is_available()``, which first tries to dlopen NVML. Where NVML is missing (CPU machines) that
    attempt can only fail and fall back, and it cost 5–8 % of a 2-D GAN's step (docs/PERFORMANCE.md, section 1c),
    so the training command removes the variable there. Where NVML exists the variable stays set.
    """
    import ctypes.util

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and ctypes.util.find_library("nvidia-ml") is None:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def main(args: Optional[List[str]] = None) -> Optional[ZooCLI]:
    """Entry point of ``train.py fit ...``; returns the CLI object (for tests and the comparison runner).

    Parsing and instantiation errors (unknown names, bad values, missing data) are printed as one line
    ``error: ...`` with exit status 2 before any training starts. Re-running with the same ``--run_name``
    resumes from ``<run dir>/checkpoints/last.ckpt`` when it exists (or pass ``--ckpt_path``).
    """
    import warnings

    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    skip_nvml_cuda_check()
    quiet_advertisement()
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "fit":
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        print(f"error: unknown command {argv[0]!r}: use `python train.py fit ...`", file=sys.stderr)
        raise SystemExit(2)
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        _import_methods()
        cli = ZooCLI(args=expand_short_names(argv), run=False)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except MisconfigurationException as err:  # Lightning's own checks of the trainer options (one sentence)
        print(f"error: trainer: {_one_line(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None
    except (ArgumentError, ValueError, TypeError) as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        print("       (see `python train.py fit --help`)", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"),
                        weights_only=True)
    except ConfigError as err:  # raised in setup (e.g. data shape), before the first step
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except SIGTERMException:  # Lightning exits with status 0 here; a preempted run must not look successful
        print("[zoo] received SIGTERM: checkpoints/interrupted.ckpt written; resume by re-running the same command",
              file=sys.stderr)
        raise SystemExit(143) from None
    except pickle.UnpicklingError as err:
        print(f"error: refused to load checkpoint {cli.config.get('ckpt_path') or 'last.ckpt'}: it holds objects "
              f"other than tensors and plain containers (torch.load weights_only=True): "
              f"{_one_line(str(err))[:200]}", file=sys.stderr)
        raise SystemExit(2) from None
    except FloatingPointError as err:  # a divergence: the message says where, and which checkpoint is good
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        raise SystemExit(1) from None
    if cli.trainer.interrupted:  # SIGTERM is handled gracefully by Lightning: still report a failed exit
        print("[zoo] training was interrupted; resume by re-running the same command", file=sys.stderr)
        raise SystemExit(143)
    return cli


def _one_line(message: str) -> str:
    """The most specific part of a jsonargparse error, on one line (e.g. a ConfigError raised while
    instantiating a class, "Option 'x' is not accepted" for a config key that does not exist, or
    ``model.lr_g: expected a float, got nan`` for a value of the wrong type)."""
    typed = _type_error(message)
    if typed:
        return typed
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("- ") and not ln.startswith("- Expected a"):
            text = ln[2:]
            if text.endswith(":") and i + 1 < len(lines) and not lines[i + 1].startswith("- "):
                text = f"{text} {lines[i + 1]}"
            return text
    return " ".join(lines[:2]) if lines else message


def _type_error(message: str) -> Optional[str]:
    """``--<group>.<key>: expected an int (or …), got <value>`` from jsonargparse's nested "Parser key" report of a
    value that does not parse as its option's type (NaN and ±Inf included: jsonargparse refuses them as floats)."""
    import re

    keys = [k for k in re.findall(r'Parser key "([^"]+)"', message) if k != "config"]
    types = list(dict.fromkeys(t for t in re.findall(r"Expected a <class '([\w.]+)'>", message) if t != "NoneType"))
    got = re.findall(r"Got value: (.*)", message) or re.findall(r"Given value: (.*)", message)
    if not keys or not types or not got:
        return None
    value = got[0].strip()
    article = lambda t: ("an " if t[0] in "aeiou" else "a ") + t  # noqa: E731
    hint = " (NaN and Inf are not accepted)" if value.lower().lstrip("+-") in ("nan", "inf", "infinity") else ""
    return f"--{'.'.join(keys)}: expected {' or '.join(article(t) for t in types)}, got {value}{hint}"

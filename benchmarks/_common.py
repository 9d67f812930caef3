"""Shared helpers of the performance benchmarks (docs/PERFORMANCE.md): environment header, one-thread setup,
wall + CPU clocks, robust statistics, peak-memory probes, and building a zoo method from its ring8 config.

Import this module *before* torch / numpy (it pins the BLAS / OpenMP pools to one thread through the
environment; ``torch.set_num_threads(1)`` is applied by :func:`setup`)::

    import _common  # noqa: F401  (first)
    ...
    _common.setup(threads=1)
    print(_common.header())
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: short name -> ring8 config (configs/<dir>/ring8.yaml), in the order of the tables
RING8_CONFIGS: Dict[str, str] = {
    "vanilla": "configs/vanilla/ring8.yaml",
    "wgan_gp": "configs/wgan_gp/ring8.yaml",
    "sngan": "configs/sngan/ring8.yaml",
    "srgan": "configs/srgan/ring8.yaml",
    "icnn_w2": "configs/icnn_w2gan/ring8.yaml",
    "dual_flow": "configs/dual_flow/ring8.yaml",
    "aeot": "configs/aeot/ring8.yaml",
}
METHODS: List[str] = list(RING8_CONFIGS)


# ------------------------------------------------------------------------------------------- environment
def setup(threads: int = 1) -> None:
    import torch

    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (interop pool started)
        pass


def load_average() -> str:
    try:
        return "(" + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + ")"
    except OSError:  # pragma: no cover
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def _git() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def versions() -> str:
    import numpy
    import torch

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}", f"numpy {numpy.__version__}"]
    for mod in ("pytorch_lightning", "scipy", "ot"):
        try:
            m = __import__(mod)
            parts.append(f"{'POT' if mod == 'ot' else mod} {m.__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


def command() -> str:
    args = " ".join(sys.argv[1:])
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return f"python {script} {args}".strip()


def header(extra: str = "") -> str:
    """Machine, versions, command, git revision and load average, one per line (printed by every script)."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        f"machine: {platform.platform()}, {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"torch threads {torch.get_num_threads()}, CUDA: {cuda}",
        f"versions: {versions()}",
        f"command: {command()}",
        f"git: {_git()}; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"load average (1, 5, 15 min) at start: {load_average()}",
    ]
    if extra:
        lines.append(extra)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- clocks, stats
class Clock:
    """Wall (perf_counter) and process CPU (process_time) seconds of a ``with`` block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        return False


def quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def iqr(xs: Sequence[float]) -> Tuple[float, float]:
    return quantile(xs, 0.25), quantile(xs, 0.75)


def md_table(rows: List[dict], cols: Sequence[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- memory
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def rss_mib() -> float:
    """Current resident set size (VmRSS), MiB."""
    return _status_kb("VmRSS") / 1024.0


def peak_rss_mib() -> float:
    """Peak resident set size since the process start or the last :func:`reset_peak_rss` (VmHWM), MiB."""
    return _status_kb("VmHWM") / 1024.0


def reset_peak_rss() -> bool:
    """Give freed heap back to the OS (glibc ``malloc_trim``) and reset VmHWM to the current RSS
    (``/proc/self/clear_refs`` ← 5, Linux ≥ 4.0). Returns False when the reset is not available."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a ``with`` block: RSS increment over the RSS at entry (VmHWM after a reset), and
    ``torch.cuda.max_memory_allocated`` when CUDA is in use."""

    def __enter__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.reset_ok = reset_peak_rss()
        self.rss0 = rss_mib()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda0 = torch.cuda.memory_allocated() / 2**20
        return self

    def __exit__(self, *exc):
        import torch

        self.peak_rss = peak_rss_mib()
        self.rss_increment = self.peak_rss - self.rss0
        self.cuda_peak = self.cuda_increment = None
        if self.cuda:
            torch.cuda.synchronize()
            self.cuda_peak = torch.cuda.max_memory_allocated() / 2**20
            self.cuda_increment = self.cuda_peak - self.cuda0
        return False


# ------------------------------------------------------------------------------------------- methods
def load_config(method: str) -> dict:
    import yaml

    with open(ROOT / RING8_CONFIGS[method]) as f:
        return yaml.safe_load(f)


def build(method: str, seed: int = 0, built: bool = True, data_overrides: Optional[dict] = None,
          **model_overrides):
    """``(module, datamodule, config)`` of ``method`` as configured in configs/<method>/ring8.yaml
    (model init_args updated with ``model_overrides``), seeded with ``seed`` before the networks are built
    (``built``: build them now, for the datamodule's data shape; the data set itself is drawn with the
    datamodule's own seed)."""
    import importlib

    import pytorch_lightning as pl

    cfg = load_config(method)
    mod_path, _, cls_name = cfg["model"]["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(mod_path), cls_name)
    kwargs = dict(cfg["model"].get("init_args") or {})
    kwargs.update(model_overrides)
    dmod, _, dcls = cfg["data"]["class_path"].rpartition(".")
    dkw = dict(cfg["data"].get("init_args") or {})
    dkw.update(data_overrides or {})
    dm = getattr(importlib.import_module(dmod), dcls)(**dkw)
    pl.seed_everything(seed, verbose=False)
    model = cls(**kwargs)
    if built:
        model.ensure_built(dm.data_shape)
    return model, dm, cfg


#: train.py's ``log_every_n_steps`` (zoo/cli.py trainer_defaults): the benchmark Trainer's, and the cadence of the
#: plain loops' "logging batches" (bench_module_vs_loop)
LOG_EVERY_N_STEPS = 50


def trainer(callbacks=(), logger=False, root: Optional[str] = None, **kw):
    """A CPU ``pl.Trainer`` as the benchmarks use it: no progress bar, no checkpoints, no model summary,
    ``log_every_n_steps`` = :data:`LOG_EVERY_N_STEPS` (train.py's default); ``logger``: False or a Lightning logger."""
    import pytorch_lightning as pl

    opts = dict(accelerator=kw.pop("accelerator", "cpu"), devices=1, max_epochs=-1, logger=logger,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                log_every_n_steps=LOG_EVERY_N_STEPS, callbacks=list(callbacks), default_root_dir=root)
    opts.update(kw)
    return pl.Trainer(**opts)

"""``results.json``: one file per run with final metrics, config, versions, device, wall time and steps.

Times: ``wall_time_s`` and ``cpu_time_s`` cover every segment of a resumed run (``segments`` of them; the
current one alone in ``segment_wall_time_s``) when :class:`callbacks.history.RunHistory` is among the callbacks
(``train.py`` adds it), else ``wall_time_s`` of this fit.

Written atomically (temp file + ``os.replace``) at the end of fit (``status: complete``) and when training
stops on an exception or an interrupt (``status: incomplete``, with the error), so a run's results are never
half-written or lost.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import pytorch_lightning as pl
import torch

from zoo.registry import method_name
from callbacks._util import atomic_write_json, can_sample, gen_step_of, not_evaluated_message, run_dir
from callbacks.history import run_clock

RESULTS_FILE = "results.json"


def versions() -> Dict[str, str]:
    """Versions of Python and of the packages a result depends on (plus the git commit when available)."""
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "pytorch_lightning", "torchmetrics", "torch_fidelity", "numpy", "ot",
                 "sklearn", "wandb", "zoo"):
        try:
            mod = sys.modules.get(name) or __import__(name)
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # noqa: BLE001 - optional packages
            continue
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                           timeout=5, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        out["git_commit"] = "unknown"
    return out


def device_info(trainer: Optional[pl.Trainer] = None) -> Dict[str, Any]:
    info: Dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    if trainer is not None:
        info.update(accelerator=type(trainer.accelerator).__name__, world_size=trainer.world_size,
                    num_nodes=trainer.num_nodes, strategy=type(trainer.strategy).__name__)
    return info


def _details(pl_module) -> Dict[str, Any]:
    """A module's own record beside its metrics (``results_details()``, e.g. a solver's certificate), if it has one."""
    fn = getattr(pl_module, "results_details", None)
    out = fn() if callable(fn) else {}
    return out if isinstance(out, dict) else {}


def _gen_step_source(trainer: pl.Trainer, pl_module) -> str:
    """What ``steps.gen_step`` counts (:class:`callbacks.gen_steps.GenStepCounter`)."""
    from callbacks.gen_steps import GenStepCounter

    if hasattr(pl_module, "gen_step"):
        return GenStepCounter.MODULE
    counter = GenStepCounter.of(trainer)
    return counter.source if counter is not None and counter.source else GenStepCounter.TRAINING


def _scalar(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class ResultsWriter(pl.Callback):
    """Write ``<run dir>/results.json`` atomically at the end of fit or when training is interrupted.

    Args:
        config: the run's configuration (``train.py`` passes the full LightningCLI config).
        print_summary: print one line with the path, the ``eval/*`` metrics and the final plot.
    """

    def __init__(self, config: Optional[Dict[str, Any]] = None, print_summary: bool = True):
        self.config = config or {}
        self.print_summary = print_summary
        self._t0: Optional[float] = None
        self.path: Optional[Path] = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        if trainer.is_global_zero and not can_sample(pl_module):
            print(not_evaluated_message(pl_module), flush=True)

    def collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, status: str,
                error: Optional[str] = None) -> Dict[str, Any]:
        metrics = {k: _scalar(v) for k, v in sorted(trainer.callback_metrics.items())}
        rd = run_dir(trainer)
        plots = sorted(str(p.relative_to(rd)) for p in (rd / "plots").glob("*.png")) if (rd / "plots").is_dir() else []
        ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") if trainer.checkpoint_callback else ""
        protocols = {type(cb).__name__: cb.protocol for cb in trainer.callbacks
                     if isinstance(getattr(cb, "protocol", None), dict) and cb.protocol}
        model_cfg = self.config.get("model", {}) if isinstance(self.config, dict) else {}
        data_cfg = self.config.get("data", {}) if isinstance(self.config, dict) else {}
        return {
            "status": status,
            "error": error,
            "method": method_name(pl_module),
            "model_class": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "data": getattr(trainer.datamodule, "name", None) or type(trainer.datamodule).__name__
            if trainer.datamodule is not None else None,
            "data_class": data_cfg.get("class_path") if isinstance(data_cfg, dict) else None,
            "model_class_path": model_cfg.get("class_path") if isinstance(model_cfg, dict) else None,
            "seed": self.config.get("seed_everything") if isinstance(self.config, dict) else None,
            "metrics": metrics,
            "details": _details(pl_module),
            "protocols": protocols,
            "evaluated": can_sample(pl_module),
            "steps": {"gen_step": gen_step_of(pl_module, trainer), "gen_step_counts": _gen_step_source(trainer, pl_module),
                      "global_step": int(trainer.global_step),
                      "epochs": int(trainer.current_epoch)},
            **self._times(trainer),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "device": device_info(trainer),
            "artifacts": {"run_dir": str(rd), "plots": plots,
                          "final_plot": "plots/samples_final.png" if "plots/samples_final.png" in plots else None,
                          "last_checkpoint": ckpt or None},
            "config": self.config,
        }

    def _times(self, trainer: pl.Trainer) -> Dict[str, Any]:
        """Wall and process-CPU seconds of the whole run over its segments (:class:`callbacks.history.RunHistory`),
        else of this fit."""
        clock = run_clock(trainer)
        if clock is not None:
            return {"wall_time_s": round(clock.wall_s(), 3), "cpu_time_s": round(clock.cpu_s(), 3),
                    "segments": clock.segments, "segment_wall_time_s": round(clock.segment_wall_s(), 3)}
        return {"wall_time_s": round(time.perf_counter() - self._t0, 3) if self._t0 is not None else None}

    def write(self, trainer, pl_module, status: str, error: Optional[str] = None) -> Optional[Path]:
        if not trainer.is_global_zero:
            return None
        self.path = run_dir(trainer) / RESULTS_FILE
        result = self.collect(trainer, pl_module, status, error)
        atomic_write_json(self.path, result)
        if self.print_summary:
            evals = " ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items()
                             if k.startswith("eval/") and v is not None)
            plot = result["artifacts"]["final_plot"]
            plot_path = str(run_dir(trainer) / plot) if plot else "none"
            print(f"[zoo] {status}: {result['method']} gen_step={result['steps']['gen_step']} {evals}")
            print(f"[zoo] results: {self.path}")
            print(f"[zoo] plot: {plot_path}")
        return self.path

    def on_fit_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, "complete")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        msg = f"{type(exception).__name__}: {exception}"
        self.write(trainer, pl_module, "incomplete", msg)

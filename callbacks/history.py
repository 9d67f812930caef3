"""One run, however many times it was stopped and resumed: one metrics history and clocks over all segments.

A run of ``train.py`` may be stopped (SIGTERM, SIGKILL, a session that ends) and resumed from its ``last.ckpt``
any number of times; each start is a *segment*. Two pieces make the segments read as one run:

* :class:`RunCSVLogger` — Lightning's ``CSVLogger`` writing ``<run dir>/metrics.csv`` row by row (so a SIGKILL
  loses no row that was logged), whose writer leaves the run folder alone: the folder is the zoo's (config,
  checkpoints, plots and W&B files share it), so Lightning's "exists and is not empty… will be deleted" does not
  apply.
* :class:`RunHistory` — a callback that, when a segment starts from a checkpoint, cuts ``metrics.csv`` back to the
  rows logged up to that checkpoint (rows the killed segment logged after it are recomputed by this segment, so each
  row appears once and the file equals an uninterrupted run's), and keeps the run's wall-clock and process-CPU
  seconds and its number of segments in the checkpoint, so ``results.json`` and the leaderboard report the cost of
  the whole run (time between a checkpoint and a kill was lost and is recomputed, so it is not counted).

Row identity: every row of ``metrics.csv`` carries Lightning's logging step (``step``: the index of the training
step it was logged at; evaluation rows use the same axis, :func:`callbacks._util.log_step`), and a checkpoint
written at the end of training step *s* records *s*; a resumed segment keeps the rows with ``step ≤ s``.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

__all__ = ["RunCSVLogger", "RunHistory", "run_clock"]

METRICS_FILE = "metrics.csv"


class _RunFolderWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, minus its check of the log folder: it would warn that the (shared) run
    folder is not empty and delete ``metrics.csv``; :class:`RunHistory` decides what happens to an earlier file."""

    def _check_log_dir_exists(self) -> None:
        return None


class RunCSVLogger(CSVLogger):
    """``<save_dir>/<name>/metrics.csv`` (and ``hparams.yaml``), one row written per logging call.

    Args:
        save_dir: the runs' root folder (``trainer.default_root_dir``).
        name: the run's folder name.
    """

    def __init__(self, save_dir: str, name: str):
        super().__init__(save_dir=save_dir, name=name, version="", flush_logs_every_n_steps=1)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _RunFolderWriter(log_dir=self.log_dir)
        return self._experiment


def checkpoint_log_step(path: str) -> Optional[int]:
    """The logging step of the last training step a checkpoint holds (Lightning's ``_batches_that_stepped`` as the
    checkpoint saved it), ``None`` when the file does not say."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except (KeyError, TypeError):
        return None


def _atomic_rows(path: Path, header: List[str], rows: List[Dict[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunHistory(pl.Callback):
    """Continuity across segments (module docstring): ``metrics.csv`` cut back to the checkpoint on resume, and the
    run's clocks. :func:`run_clock` reads them (``wall_s``, ``cpu_s``, ``segments``)."""

    def __init__(self) -> None:
        self._base = {"wall_s": 0.0, "cpu_s": 0.0, "segments": 0}
        self._w0: Optional[float] = None
        self._c0: Optional[float] = None
        self.kept_rows: Optional[int] = None
        self.dropped_rows: int = 0

    # ------------------------------------------------------------------ clocks
    def wall_s(self) -> float:
        """Wall-clock seconds of the whole run: the earlier segments up to their last checkpoint, plus this one."""
        return self._base["wall_s"] + (time.perf_counter() - self._w0 if self._w0 is not None else 0.0)

    def cpu_s(self) -> float:
        """Process-CPU seconds of the whole run, counted like :meth:`wall_s`."""
        return self._base["cpu_s"] + (time.process_time() - self._c0 if self._c0 is not None else 0.0)

    def segment_wall_s(self) -> float:
        return time.perf_counter() - self._w0 if self._w0 is not None else 0.0

    @property
    def segments(self) -> int:
        return int(self._base["segments"]) + (1 if self._w0 is not None else 0)

    def state_dict(self) -> dict:
        return {"wall_s": self.wall_s(), "cpu_s": self.cpu_s(), "segments": self.segments}

    def load_state_dict(self, state_dict: dict) -> None:
        self._base = {"wall_s": float(state_dict.get("wall_s", 0.0)), "cpu_s": float(state_dict.get("cpu_s", 0.0)),
                      "segments": int(state_dict.get("segments", 0))}

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._w0, self._c0 = time.perf_counter(), time.process_time()
        if trainer.is_global_zero:
            self._one_history(trainer)

    def _one_history(self, trainer: pl.Trainer) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, RunCSVLogger)), None)
        if logger is None:
            return
        path = Path(logger.log_dir) / METRICS_FILE
        if not path.is_file():
            return
        ckpt = getattr(trainer, "ckpt_path", None)
        step = checkpoint_log_step(ckpt) if ckpt else None
        if step is None:  # a fresh run in a folder holding an earlier run's history: keep that file, start anew
            path.rename(path.with_name(f"metrics.{time.strftime('%Y%m%d-%H%M%S')}.csv"))
            return
        with open(path, newline="") as f:
            text = f.read()
        partial = not text.endswith("\n")  # a kill in the middle of writing a row: its line is incomplete
        if partial:
            text = text[:text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        rows = list(reader)
        kept = [r for r in rows if _step(r) is not None and _step(r) <= step]
        self.kept_rows, self.dropped_rows = len(kept), len(rows) - len(kept) + int(partial)
        if self.dropped_rows:
            _atomic_rows(path, header, kept)
        writer = logger.experiment
        writer.metrics_keys = sorted(header)  # later rows append under this header (Lightning rewrites it on new keys)


def _step(row: Dict[str, str]) -> Optional[int]:
    try:
        return int(float(row.get("step") or ""))
    except (TypeError, ValueError):
        return None


def run_clock(trainer: Optional[pl.Trainer]) -> Optional[RunHistory]:
    """The trainer's :class:`RunHistory` (its clocks cover every segment of the run), or ``None``."""
    if trainer is None:
        return None
    return next((cb for cb in trainer.callbacks if isinstance(cb, RunHistory)), None)

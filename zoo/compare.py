"""Comparison runner: every method × dataset × seed under one budget, each a normal ``train.py`` run.

    python -m zoo.compare --methods all --data ring8 grid25 --seeds 3 --budget 2000steps [--out runs/compare]
    python -m zoo.compare --methods vanilla wgan_gp --data ring8 --seeds 0 5 --budget 2min

Each run is ``python train.py fit --model <m> --data <d> --seed_everything <s> --run_name <m>-<d>-s<s>
--trainer.default_root_dir <out> ...`` in its own subprocess (log: ``<out>/logs/<run name>.log``) and writes
``<out>/<m>-<d>-s<s>/results.json``. The grid is **resumable**: runs whose ``results.json`` says
``status: complete`` are skipped, interrupted runs resume from their ``checkpoints/last.ckpt``.

Fair by construction — every run of a grid gets the same

* **data**: the dataset's short name with a fixed data seed (``--data.seed``, default 0), so every method and
  every seed trains on the same points; the seed only changes initialisation and noise;
* **budget**, in one unit: generator steps (``--budget 2000steps`` → ``--model.max_gen_steps 2000``) or wall-clock
  minutes (``--budget 2min`` → ``--trainer.max_time`` and no step limit); ``results.json`` records both the
  generator steps done and the wall time of every run, whichever unit bounds it;
* **evaluation protocol**: ``mode_coverage`` with 2,500 samples, seed 0, the 3σ HQ threshold, at the same
  generator-step cadence, plus the final evaluation every run does at the end of fit.

Method settings come from ``configs/<method>/<data>.yaml`` when that file exists (the method's documented
configuration); the options above are appended after it, so they win. ``--no_configs`` uses the class defaults.

Devices: sequential on CPU; with several visible GPUs, one run per GPU in parallel (``CUDA_VISIBLE_DEVICES``
set per run); with one GPU, sequential on it. At the end the leaderboard of the grid (:mod:`zoo.leaderboard`)
is printed and written to ``<out>/leaderboard.{md,csv,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from zoo.errors import ConfigError

__all__ = ["Budget", "RunSpec", "parse_budget", "resolve_methods", "plan_grid", "config_for", "train_args", "run_grid",
           "demo", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout (when the zoo is used from one)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the method configs, package data (installed or cloned)
MANIFEST = "compare.json"

#: the evaluation protocol shared by every run of a grid (train.py options).
EVAL_N_SAMPLES = 2500
EVAL_SEED = 0
EVAL_THRESHOLD = 3.0


# ---------------------------------------------------------------------------------------------- budget
@dataclass(frozen=True)
class Budget:
    """A budget in generator steps (``kind="steps"``) or wall-clock minutes (``kind="minutes"``)."""

    kind: str
    value: float

    @property
    def tag(self) -> str:
        return f"{int(self.value)}steps" if self.kind == "steps" else f"{self.value:g}min"

    def describe(self) -> str:
        return f"{int(self.value)} generator steps" if self.kind == "steps" else f"{self.value:g} min wall-clock"

    def max_time(self) -> str:
        """Lightning's ``max_time`` string ``DD:HH:MM:SS`` (whole seconds, at least 1)."""
        s = max(1, int(round(self.value * 60)))
        return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    def cli_args(self, zoo_method: bool = True) -> List[str]:
        """train.py options of the budget: a zoo method's ``--model.max_gen_steps``; for a plug-in (any other
        LightningModule) train.py's own ``--max_gen_steps``, which counts its generator optimizer's steps."""
        key = "--model.max_gen_steps" if zoo_method else "--max_gen_steps"
        if self.kind == "steps":
            return [key, str(int(self.value))]
        return ([key, "null"] if zoo_method else []) + ["--trainer.max_time", self.max_time()]


_BUDGET = re.compile(r"^\s*(?P<num>\d+(\.\d+)?)\s*(?P<unit>steps?|gen_steps?|m|min|mins|minutes?|s|sec|seconds?)?\s*$")


def parse_budget(text: Union[str, int, Budget]) -> Budget:
    """``"2000steps"``, ``"2000"`` → 2000 generator steps; ``"2min"``, ``"1.5 minutes"``, ``"90s"`` → wall-clock."""
    if isinstance(text, Budget):
        return text
    m = _BUDGET.match(str(text).lower())
    if not m:
        raise ConfigError(f"cannot read budget {text!r}: use <N>steps (generator steps) or <M>min (wall-clock)")
    num, unit = float(m.group("num")), (m.group("unit") or "steps")
    if unit.startswith(("step", "gen")):
        if num != int(num) or num <= 0:
            raise ConfigError(f"budget {text!r}: the number of generator steps must be a positive integer")
        return Budget("steps", float(int(num)))
    minutes = num / 60.0 if unit.startswith("s") else num
    if minutes <= 0:
        raise ConfigError(f"budget {text!r}: the wall-clock budget must be positive")
    return Budget("minutes", minutes)


# ---------------------------------------------------------------------------------------------- grid
def resolve_methods(names: Sequence[str]) -> List[str]:
    """Method labels for ``names`` (``all``: every method in ``zoo.methods``): a zoo method's short name, or the
    importable class path of any other LightningModule (a plug-in: no registration needed)."""
    import zoo.methods  # noqa: F401  (registers the landed methods)
    from zoo.registry import list_models, resolve_model

    if not names or any(n.lower() == "all" for n in names):
        return list_models()
    out = []
    for n in names:
        cls = resolve_model(n)  # ConfigError (one line) for unknown names and for imports that fail
        short = cls.__dict__.get("zoo_name")
        label = short if short is not None else n  # a plug-in keeps the class path it was given
        if label not in out:
            out.append(label)
    return out


def is_registered(method: str) -> bool:
    """True for the zoo's own short names (a plug-in is given by its class path)."""
    from zoo.registry import list_models

    return method in list_models()


def resolve_seeds(seeds: Union[int, Sequence[int]]) -> List[int]:
    """An int N means seeds 0..N−1; a list is taken as is."""
    if isinstance(seeds, int):
        if seeds <= 0:
            raise ConfigError("--seeds must be a positive count or a list of seeds")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("--seeds is empty")
    return out


@dataclass
class RunSpec:
    method: str
    data: str
    seed: int
    out_dir: Path
    model: str = ""  # class path given to train.py (robust to registration order); default: the short name

    @property
    def name(self) -> str:
        return f"{self.method}-{self.data}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    def status(self) -> Optional[str]:
        """``complete`` / ``incomplete`` from ``results.json``, ``None`` when absent or unreadable."""
        try:
            return json.loads(self.results_path.read_text()).get("status")
        except (OSError, json.JSONDecodeError):
            return None


def plan_grid(methods: Sequence[str], datasets: Sequence[str], seeds: Sequence[int], out_dir: Path,
              models: Optional[Dict[str, str]] = None) -> List[RunSpec]:
    """Runs in the order they execute: dataset, then method, then seed (``models``: short name -> class path)."""
    from zoo.cli import DATA_SHORT_NAMES

    for d in datasets:
        if d not in DATA_SHORT_NAMES:
            raise ConfigError(f"unknown dataset {d!r}: use one of {', '.join(DATA_SHORT_NAMES)}")
    models = models or {}
    return [RunSpec(m, d, s, Path(out_dir), models.get(m, "")) for d in datasets for m in methods for s in seeds]


def config_for(spec: RunSpec, config_paths: Optional[Mapping[str, Union[str, Path]]] = None) -> Optional[Path]:
    """The method config of a run: ``config_paths["<method>/<data>"]`` when given, else
    ``configs/<method>/<data>.yaml`` or ``configs/<method's module>/<data>.yaml`` when that file exists, else
    ``None`` (class defaults)."""
    if config_paths and f"{spec.method}/{spec.data}" in config_paths:
        path = Path(config_paths[f"{spec.method}/{spec.data}"])
        if not path.is_absolute():  # relative to the user's directory, else to the zoo's checkout
            path = Path.cwd() / path if (Path.cwd() / path).is_file() else REPO_ROOT / path
        if not path.is_file():
            raise ConfigError(f"config for {spec.method}/{spec.data} not found: {path}")
        return path
    for folder in _config_folders(spec.method):
        cfg = CONFIG_DIR / folder / f"{spec.data}.yaml"
        if cfg.is_file():
            return cfg
    return None


def _config_folders(method: str) -> List[str]:
    """Config folders of a method: its short name, then its module's name (``icnn_w2`` → ``icnn_w2gan``)."""
    folders = [method]
    try:
        from zoo.registry import resolve_model

        import zoo.methods  # noqa: F401  (registers the zoo's short names)

        stem = resolve_model(method).__module__.rsplit(".", 1)[-1]
        if stem not in folders:
            folders.append(stem)
    except Exception:  # noqa: BLE001 - an unknown name is reported where the grid is planned
        pass
    return folders


def train_args(spec: RunSpec, budget: Budget, *, accelerator: str = "cpu", eval_every: int = 500,
               data_seed: int = 0, wandb: Optional[bool] = None, wandb_project: Optional[str] = None,
               use_configs: bool = True, extra: Sequence[str] = (),
               config_paths: Optional[Mapping[str, Union[str, Path]]] = None) -> List[str]:
    """The ``train.py fit`` arguments of one run (method config first, then the grid's shared settings).

    ``config_paths`` maps ``"<method>/<data>"`` to a config file used instead of ``configs/<method>/<data>.yaml``.
    """
    args: List[str] = ["fit"]
    cfg = config_for(spec, config_paths) if use_configs else None
    if cfg is not None:
        args += ["--config", str(cfg)]
    args += [
        "--model", spec.model or spec.method,
        "--data", spec.data, "--data.seed", str(int(data_seed)),
        "--seed_everything", str(int(spec.seed)),
        "--run_name", spec.name,
        "--trainer.default_root_dir", str(spec.out_dir),
        "--trainer.max_epochs", "-1",
        "--trainer.accelerator", accelerator, "--trainer.devices", "1",
        "--trainer.enable_model_summary", "false",
        "--mode_coverage.n_samples", str(EVAL_N_SAMPLES), "--mode_coverage.seed", str(EVAL_SEED),
        "--mode_coverage.threshold", str(EVAL_THRESHOLD), "--mode_coverage.every_n_gen_steps", str(int(eval_every)),
        "--sample_plot.every_n_gen_steps", "0",
    ]
    args += budget.cli_args(zoo_method=is_registered(spec.method))
    if wandb is not None:
        args += ["--wandb", "true" if wandb else "false"]
    if wandb_project:
        args += ["--wandb_project", wandb_project]
    return args + list(extra)


# ---------------------------------------------------------------------------------------------- execution
_RUNNER = "import sys; from zoo.__main__ import main; main(sys.argv[1:])"  # = python -m zoo


@dataclass
class Outcome:
    name: str
    status: str           # complete | skipped | failed | incomplete
    seconds: float = 0.0
    returncode: Optional[int] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    log: str = ""


def _read_metrics(spec: RunSpec) -> Dict[str, float]:
    try:
        res = json.loads(spec.results_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    out = {k[5:]: v for k, v in (res.get("metrics") or {}).items() if k.startswith("eval/") and v is not None}
    out["gen_steps"] = (res.get("steps") or {}).get("gen_step")
    out["wall_time_s"] = res.get("wall_time_s")
    return out


def run_one(spec: RunSpec, args: List[str], gpu: Optional[int] = None, timeout: Optional[float] = None,
            env: Optional[Mapping[str, str]] = None) -> Outcome:
    """One ``train.py`` run in a subprocess; stdout and stderr go to ``<out>/logs/<name>.log``; ``env``: variables
    set for that process on top of this one's."""
    log = Path(spec.out_dir) / "logs" / f"{spec.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {})}
    # the user's directory first (their plug-in package), then the zoo's checkout when it is one
    paths = [os.getcwd()] + ([str(REPO_ROOT)] if (REPO_ROOT / "zoo").is_dir() else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ {sys.executable} -m zoo {' '.join(args)}\n")
        f.flush()
        proc = subprocess.Popen([sys.executable, "-c", _RUNNER, *args], stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=os.getcwd())
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # SIGTERM first: Lightning stops cleanly and writes its checkpoint
            proc.terminate()
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            f.write(f"\n[zoo.compare] stopped after the {timeout:.0f} s time limit\n")
        except BaseException:  # KeyboardInterrupt: do not leave the run behind
            proc.terminate()
            proc.wait()
            raise
    status = spec.status()
    status = "complete" if rc == 0 and status == "complete" else ("incomplete" if status == "incomplete" else "failed")
    return Outcome(spec.name, status, time.perf_counter() - t0, rc, _read_metrics(spec), str(log))


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """The grid's progress: one line per finished (or skipped) run with its metrics, elapsed time and ETA, and —
    on a terminal — an overall tqdm bar over the runs below those lines. Without a terminal (logs, CI) each run's
    start is printed too, so a log shows what is running."""

    def __init__(self, total: int, parallel: int = 1, stream=None, enabled: bool = True):
        from tqdm import tqdm

        self.total, self.parallel = total, max(1, parallel)
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.done = self.failed = self.skipped = self.started = 0
        self.durations: List[float] = []
        self.lock = threading.Lock()
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = tqdm(total=total, unit="run", desc="grid", file=self.stream, dynamic_ncols=True, leave=True,
                        disable=not (enabled and tty))

    def _print(self, msg: str) -> None:
        if not self.enabled:
            return
        if not self.bar.disable:
            self.bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def _counter(self) -> str:
        return f"[{self.done + self.failed + self.skipped:>{len(str(self.total))}}/{self.total}]"

    def skip(self, spec: RunSpec) -> None:
        with self.lock:
            self.skipped += 1
            self._print(f"{self._counter()} skip     {spec.name} (results.json: complete)")
            self.bar.update(1)

    def start(self, spec: RunSpec, where: str) -> None:
        with self.lock:
            self.started += 1
            if self.bar.disable:
                k = self.started + self.skipped
                self._print(f"[{k:>{len(str(self.total))}}/{self.total}] start    {spec.name} on {where}")
            else:
                self.bar.set_postfix_str(f"running {spec.name} on {where}")

    def finish(self, out: Outcome) -> None:
        with self.lock:
            if out.status == "complete":
                self.done += 1
                self.durations.append(out.seconds)
            else:
                self.failed += 1
            left = self.total - self.done - self.failed - self.skipped
            eta = ""
            if self.durations and left:
                eta = f", eta {_fmt_s(sum(self.durations) / len(self.durations) * math.ceil(left / self.parallel))}"
            m = out.metrics
            shown = " ".join(f"{k}={m[k]:.4g}" for k in ("modes", "hq", "kl", "fid", "w2") if m.get(k) is not None)
            extra = f" gen_steps={m.get('gen_steps')} {shown}" if out.status == "complete" else \
                f" (exit {out.returncode}; log: {out.log})"
            self._print(f"{self._counter()} {out.status:<8} {out.name} in {out.seconds:.1f}s{extra} | "
                        f"elapsed {_fmt_s(time.perf_counter() - self.t0)}{eta}")
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def visible_gpus() -> List[int]:
    """Indices of the visible CUDA devices (empty without CUDA)."""
    try:
        import torch

        return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    except Exception:  # noqa: BLE001
        return []


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    path = out_dir / MANIFEST
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for key in ("budget", "data_seed", "eval"):
        if key in old and old[key] != manifest[key]:
            raise ConfigError(
                f"{out_dir} holds a grid run with {key}={old[key]!r}, not {manifest[key]!r}: finished runs would be "
                "mixed with a different protocol; choose another --out or the same settings")


def run_grid(methods: Sequence[str] = ("all",), datasets: Sequence[str] = ("ring8",),
             seeds: Union[int, Sequence[int]] = 3, budget: Union[str, Budget] = "1000steps",
             out_dir: Union[str, Path, None] = None, *, metric: str = "modes", accelerator: str = "auto",
             eval_every: Optional[int] = None, data_seed: int = 0, wandb: Optional[bool] = None,
             wandb_project: Optional[str] = None, use_configs: bool = True, extra_args: Sequence[str] = (),
             timeout: Optional[float] = None, progress: bool = True, leaderboard_out: bool = True,
             dry_run: bool = False, config_paths: Optional[Mapping[str, Union[str, Path]]] = None) -> str:
    """Run (or resume) the grid and return the leaderboard Markdown (also written to ``<out>/leaderboard.*``).

    ``methods``: short names or ``["all"]`` (every landed method); ``seeds``: a count N (seeds 0..N−1) or a
    list; ``budget``: ``"<N>steps"`` or ``"<M>min"``; ``accelerator``: ``auto`` (GPU when visible), ``cpu`` or
    ``gpu``. ``extra_args`` are appended to every ``train.py`` command line (the same for every method).
    ``config_paths``: ``{"<method>/<data>": path}``, configs used instead of ``configs/<method>/<data>.yaml``.
    """
    from zoo import leaderboard

    budget = parse_budget(budget)
    if metric not in leaderboard.METRICS:
        raise ConfigError(f"unknown metric {metric!r}: use one of {', '.join(leaderboard.METRICS)}")
    names = resolve_methods(methods)
    seed_list = resolve_seeds(seeds)
    out_dir = Path(out_dir or f"runs/compare-{budget.tag}")
    from zoo.registry import class_path, resolve_model

    specs = plan_grid(names, datasets, seed_list, out_dir, {n: class_path(resolve_model(n)) for n in names})
    if eval_every is None:
        eval_every = max(1, int(budget.value) // 5) if budget.kind == "steps" else 500
    if int(eval_every) < 1:
        raise ConfigError(f"--eval_every must be a positive number of generator steps, got {eval_every}")
    if timeout is not None and not float(timeout) > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    gpus = visible_gpus() if accelerator in ("auto", "gpu") else []
    if accelerator == "gpu" and not gpus:
        raise ConfigError("--accelerator gpu but no CUDA device is visible: use --accelerator cpu")
    acc = "gpu" if gpus else "cpu"
    common = dict(accelerator=acc, eval_every=eval_every, data_seed=data_seed, wandb=wandb,
                  wandb_project=wandb_project, use_configs=use_configs, extra=extra_args,
                  config_paths=dict(config_paths) if config_paths else None)
    manifest = {"budget": budget.tag, "data_seed": data_seed,
                "eval": {"n_samples": EVAL_N_SAMPLES, "seed": EVAL_SEED, "threshold": EVAL_THRESHOLD,
                         "every_n_gen_steps": eval_every},
                "methods": names, "datasets": list(datasets), "seeds": seed_list, "accelerator": acc,
                "gpus": gpus, "extra_args": list(extra_args)}
    if config_paths:
        manifest["config_paths"] = {k: str(v) for k, v in config_paths.items()}
    if dry_run:
        for s in specs:
            print(f"{sys.executable} -m zoo {' '.join(train_args(s, budget, **common))}")
        return ""
    _check_manifest(out_dir, manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    from callbacks._util import atomic_write_json

    atomic_write_json(out_dir / MANIFEST, {**manifest, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if timeout is None and budget.kind == "minutes":
        timeout = budget.value * 60 * 3 + 600  # a wall-clock run that does not stop is stuck
    parallel = len(gpus) if len(gpus) > 1 else 1
    prog = Progress(len(specs), parallel, enabled=progress)
    if progress:
        print(f"[zoo.compare] {len(specs)} runs: methods={','.join(names)} data={','.join(datasets)} "
              f"seeds={seed_list} budget={budget.describe()} on {acc}"
              + (f" ({parallel} in parallel)" if parallel > 1 else "") + f" -> {out_dir}", flush=True)
    todo = []
    for s in specs:
        if s.status() == "complete":
            prog.skip(s)
        else:
            todo.append(s)
    outcomes: List[Outcome] = []
    if parallel == 1:
        for s in todo:
            prog.start(s, f"gpu {gpus[0]}" if gpus else "cpu")
            out = run_one(s, train_args(s, budget, **common), gpu=gpus[0] if gpus else None, timeout=timeout)
            prog.finish(out)
            outcomes.append(out)
    else:
        free = list(gpus)
        lock = threading.Lock()

        def work(s: RunSpec) -> Outcome:
            with lock:
                gpu = free.pop(0)
            try:
                prog.start(s, f"gpu {gpu}")
                out = run_one(s, train_args(s, budget, **common), gpu=gpu, timeout=timeout)
                prog.finish(out)
                return out
            finally:
                with lock:
                    free.append(gpu)

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            outcomes = list(pool.map(work, todo))
    prog.close()
    failed = [o for o in outcomes if o.status != "complete"]
    atomic_write_json(out_dir / MANIFEST, {**manifest, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                           "outcomes": [asdict(o) for o in outcomes]})
    records = leaderboard.records_from_results([s.results_path for s in specs if s.results_path.exists()])
    note = (f"Grid `{out_dir}`: budget {budget.describe()}, data seed {data_seed}, evaluation "
            f"{EVAL_N_SAMPLES} samples (seed {EVAL_SEED}) every {eval_every} generator steps and at the end.")
    if failed:
        note += " Failed: " + ", ".join(f"{o.name} (log {o.log})" for o in failed) + "."
    md = leaderboard.build(records, metric, out_dir / "leaderboard" if leaderboard_out else None,
                           title=f"Leaderboard ({budget.describe()})", note=note)
    if progress and failed:
        print(f"[zoo.compare] {len(failed)} run(s) failed; see their logs", file=sys.stderr, flush=True)
    return md


def demo(out_dir: Union[str, Path] = "runs/demo", budget: str = "300steps", datasets: Sequence[str] = ("ring8",),
         seeds: Union[int, Sequence[int]] = 1, timeout: Optional[float] = 300.0) -> str:
    """``make demo``: every landed method on ring8, one seed, a short step budget, W&B off; returns the Markdown.

    ``timeout`` (seconds per run) keeps a slow method from blowing the demo's time budget: such a run is stopped
    (SIGTERM, so Lightning ends it cleanly), reported under the table, and retried by the next ``make demo``.
    """
    return run_grid(["all"], datasets, seeds, budget, out_dir, wandb=False, accelerator="auto", timeout=timeout)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m zoo.compare", description=__doc__.split("\n\n")[0],
                                epilog="Arguments after -- are appended to every train.py command line.")
    p.add_argument("--methods", nargs="+", default=["all"], help="zoo short names (or all, the default) and class paths of any LightningModule (pkg.module.Class)")
    p.add_argument("--data", nargs="+", default=["ring8"], help="dataset short names (default: ring8)")
    p.add_argument("--seeds", nargs="+", type=int, default=[3],
                   help="a count N (seeds 0..N-1) or, with several values, the seeds themselves (default: 3)")
    p.add_argument("--budget", default=None, help="<N>steps (generator steps) or <M>min (wall-clock minutes); "
                                                   "required unless --against")
    p.add_argument("--against", default=None, metavar="zoo|FOLDER",
                   help="train only --methods on the anytime protocol of the zoo's records (zoo.anytime: cap and "
                        "evaluation schedule read from the records) and place them in their plateau table and "
                        "curves: 'zoo' (the records committed in this checkout) or a folder of records, e.g. "
                        "docs/results/reproduction/window; --seeds are the seeds themselves (default 0 1 2 3 4)")
    p.add_argument("--out", default=None, help="grid folder (default: runs/compare-<budget>)")
    p.add_argument("--metric", default="modes", help="leaderboard sort key (modes, hq, kl, fid, w2, wall_time)")
    p.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--eval_every", type=int, default=None,
                   help="evaluation cadence in generator steps (default: budget/5 for step budgets, else 500)")
    p.add_argument("--data_seed", type=int, default=0, help="seed of the dataset's points, shared by all runs")
    p.add_argument("--wandb", choices=("true", "false"), default=None,
                   help="log every run to W&B (default: train.py's default: on, offline without credentials)")
    p.add_argument("--wandb_project", default=None)
    p.add_argument("--no_configs", action="store_true", help="ignore configs/<method>/<data>.yaml")
    p.add_argument("--config_path", nargs="+", default=[], metavar="METHOD/DATA=PATH",
                   help="use PATH as the config of METHOD on DATA instead of configs/<method>/<data>.yaml")
    p.add_argument("--timeout", type=float, default=None,
                   help="stop a run after this many seconds (reported as failed; resumable). Default: none for "
                        "step budgets, 3x budget + 10 min for wall-clock budgets")
    p.add_argument("--dry_run", action="store_true", help="print the train.py command lines and exit")
    a = p.parse_args(argv)
    config_paths = {}
    for item in a.config_path:
        key, sep, path = item.partition("=")
        if not sep or key.count("/") != 1 or not path:
            print(f"error: --config_path {item!r}: use METHOD/DATA=PATH", file=sys.stderr)
            return 2
        config_paths[key] = path
    if a.against:
        from zoo.anytime import against

        seed_list = [0, 1, 2, 3, 4] if "--seeds" not in argv else a.seeds
        try:
            md = against(a.methods, a.data, seed_list, a.against, Path(a.out or "runs/against-zoo"),
                         config_paths=config_paths or None)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(md)
        return 0
    if a.budget is None:
        print("error: --budget is required (e.g. --budget 2000steps or --budget 10min), unless --against is given",
              file=sys.stderr)
        return 2
    seeds: Union[int, List[int]] = a.seeds[0] if len(a.seeds) == 1 else a.seeds
    try:
        md = run_grid(a.methods, a.data, seeds, a.budget, a.out, metric=a.metric, accelerator=a.accelerator,
                      eval_every=a.eval_every, data_seed=a.data_seed,
                      wandb=None if a.wandb is None else a.wandb == "true", wandb_project=a.wandb_project,
                      use_configs=not a.no_configs, extra_args=extra, dry_run=a.dry_run, timeout=a.timeout,
                      config_paths=config_paths or None)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if md:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

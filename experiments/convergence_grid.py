"""The convergence grid (issue 18): every method, every seed, trained to a budget where its curve has flattened,
with an anytime quality curve, recorded in small committed JSON files.

    OMP_NUM_THREADS=1 python experiments/reproduction.py run   [--data ring8 grid25] [--methods ...] [--seeds 0 1 2 3 4]
                                                               [--jobs 2]
    python experiments/reproduction.py write                  # the report, from the committed records alone

**Protocol** (one definition, :func:`command`, shared with ``zoo.compare --against zoo``): each run is an ordinary
``train.py fit`` of the method's config (``configs/<method>/<data>.yaml``, or :data:`CONFIG_PATHS`), through
:func:`zoo.compare.train_args` — the grid's data seed 0, ``ModeCoverage`` on 2,500 samples (HQ = within 3 std,
reverse KL), one torch thread — for :data:`CAPS` generator steps, with every evaluation callback on the
**log-spaced schedule** ``every_n_gen_steps = EVERY``, ``schedule = log2``: 250, 500, 1,000, …, 16,000 steps, and at
the end. Each evaluation row carries the run's wall-clock and CPU seconds so far (over resumed segments).

**Records.** A finished run writes ``docs/results/reproduction/runs/<data>/<method>-s<seed>.json``: method, data,
seed, config, commit, command, status, budget, the machine, and the ``curve`` (one row per evaluation:
``gen_step``, ``wall_s``, ``cpu_s`` and every ``eval/*`` value). ``run`` skips every run whose record exists, so
the grid finishes over several sessions on fresh machines; a killed run resumes from its ``last.ckpt`` (run
folders under ``runs/convergence``, git-ignored). ``write`` reads the records only.

**Plateau.** Between the last two evaluations (8,000 and 16,000 steps) the seeds' median mode count moves by at
most :data:`PLATEAU_MODES` and the median HQ by at most :data:`PLATEAU_HQ` points; a method that misses it is
marked "still moving at its cap" in the table.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduction_grid import LABELS, METHODS, git_commit  # noqa: E402  (the grid's methods, one definition)

COLORS = {"vanilla": "tab:gray", "wgan_gp": "tab:orange", "sngan": "tab:red", "srgan": "tab:blue",
          "icnn_w2": "tab:purple", "dual_flow": "tab:green", "aeot": "tab:brown"}
DATASETS = ["ring8", "grid25"]
N_MODES = {"ring8": 8, "grid25": 25}
SEEDS = [0, 1, 2, 3, 4]
#: generator-step cap per dataset (the plateau check compares the last two evaluations: CAP/2 and CAP)
CAPS = {"ring8": 16000, "grid25": 16000}
EVERY = 250  # first evaluation; then 2x each time (log2 schedule): 250, 500, ..., 16000 (multiples of the 2-D sets' 10-batch groups)
PLATEAU_MODES = 1.0
PLATEAU_HQ = 0.05
#: configs that are not at configs/<method>/<data>.yaml
CONFIG_PATHS: Dict[str, str] = {}
EVAL_GROUPS = ("mode_coverage", "distances", "spectral")
KEYS = ("eval/modes", "eval/hq", "eval/kl", "eval/w2", "eval/energy")

OUT = ROOT / "docs" / "results" / "reproduction"
RECORDS = OUT / "runs"
RUNS = ROOT / "runs" / "convergence"


def record_path(data: str, method: str, seed: int, records: Path = RECORDS) -> Path:
    return Path(records) / data / f"{method}-s{seed}.json"


def _rel(path: str) -> str:
    p = Path(path)
    return str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else str(path)


def command(method: str, data: str, seed: int, out_dir: Path = RUNS, cap: Optional[int] = None,
            model: str = "") -> List[str]:
    """The ``train.py`` arguments of one grid run (``model``: a plug-in's class path, for ``--against zoo``)."""
    from zoo.compare import RunSpec, parse_budget, train_args

    spec = RunSpec(method=method, data=data, seed=seed, out_dir=Path(out_dir), model=model)
    cap = int(cap or CAPS[data])
    extra: List[str] = []
    for group in EVAL_GROUPS:
        extra += [f"--{group}.every_n_gen_steps", str(EVERY), f"--{group}.schedule", "log2"]
    extra += ["--trainer.enable_progress_bar", "false"]
    return train_args(spec, parse_budget(f"{cap}steps"), accelerator="cpu", eval_every=EVERY, wandb=False,
                      config_paths=CONFIG_PATHS, extra=extra)


def read_curve(run_dir: Path) -> List[dict]:
    """The evaluation rows of ``metrics.csv`` merged per generator step: gen_step, wall_s, cpu_s, eval/*."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_step: Dict[int, dict] = {}
    for r in rows:
        vals = {k: float(v) for k, v in r.items() if v and k.startswith("eval/")}
        if not vals or not r.get("trainer/gen_step"):
            continue
        step = int(float(r["trainer/gen_step"]))
        row = by_step.setdefault(step, {"gen_step": step})
        row.update({k: round(v, 6) for k, v in vals.items()})
        for src, dst in (("time/wall_s", "wall_s"), ("time/cpu_s", "cpu_s")):
            if r.get(src):
                row[dst] = max(row.get(dst, 0.0), round(float(r[src]), 3))
    return [by_step[s] for s in sorted(by_step)]


def run_one(method: str, data: str, seed: int, runs: Path = RUNS, records: Path = RECORDS,
            cap: Optional[int] = None) -> Optional[Path]:
    """Train one grid run (resuming its folder's ``last.ckpt`` if any) and write its record atomically."""
    path = record_path(data, method, seed, records)
    if path.exists():
        return None
    args = command(method, data, seed, runs, cap)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    run_dir = Path(runs) / f"{method}-{data}-s{seed}"
    log = Path(runs) / "logs" / f"{method}-{data}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0, load0 = time.time(), os.getloadavg()[0]
    with open(log, "a") as f:
        rc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    try:
        res = json.loads((run_dir / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
        res = {}
    if rc != 0 or res.get("status") != "complete":
        print(f"[convergence] {method} {data} s{seed} did not finish (exit {rc}): see {log}", file=sys.stderr,
              flush=True)
        return None
    curve = read_curve(run_dir)
    cfg = args[args.index("--config") + 1] if "--config" in args else None
    rec = {"method": method, "data": data, "seed": seed,
           "config": _rel(cfg) if cfg else None,
           "commit": git_commit(), "status": res.get("status"), "cap": int(cap or CAPS[data]), "every": EVERY,
           "schedule": "log2", "gen_step": (res.get("steps") or {}).get("gen_step"),
           "wall_s": res.get("wall_time_s"), "cpu_s": res.get("cpu_time_s"), "process_wall_s": round(time.time() - t0, 1),
           "command": "python train.py " + " ".join("<runs>" if a == str(runs) else
                                                    (_rel(a) if a.endswith(".yaml") else a) for a in args),
           "machine": f"{platform.platform()} cpus={os.cpu_count()} threads=1",
           "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],  # at start and end (contention)
           "curve": curve}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rec, indent=0, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    last = curve[-1] if curve else {}
    print(f"[convergence] {method} {data} s{seed}: modes {last.get('eval/modes')} hq {last.get('eval/hq')} "
          f"in {rec['wall_s'] or 0:.0f} s -> {path}", flush=True)
    return path


def run(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], jobs: int = 2,
        runs: Path = RUNS, records: Path = RECORDS) -> None:
    """Every (seed, data, method) without a record, ``jobs`` at a time (seeds first: complete seeds land first)."""
    todo = [(m, d, s) for s in seeds for d in datasets for m in methods if not record_path(d, m, s, records).exists()]
    print(f"[convergence] {len(todo)} runs to do, {jobs} at a time; records in {records}", flush=True)
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        list(pool.map(lambda j: run_one(*j, runs=runs, records=records), todo))


# ------------------------------------------------------------------------------------------------ reading back
def load_records(records: Path = RECORDS) -> List[dict]:
    out = []
    for p in sorted(Path(records).glob("*/*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            print(f"[convergence] unreadable record {p}: skipped", file=sys.stderr)
    return out


def at_step(rec: dict, step: int) -> Optional[dict]:
    """The curve row at generator step ``step`` (None if the run has no evaluation there)."""
    return next((r for r in rec["curve"] if r["gen_step"] == step), None)


def summary(recs: List[dict], method: str, data: str) -> Optional[dict]:
    """Median (and min–max) over seeds at the cap, the plateau check between CAP/2 and CAP, the seeds' fit time."""
    rs = [r for r in recs if r["method"] == method and r["data"] == data]
    if not rs:
        return None
    cap = rs[0]["cap"]
    ends = [r["curve"][-1] for r in rs]  # the final evaluation (AE-OT's is after its OT solve, at cap + 1)
    halves = [at_step(r, cap // 2) for r in rs]
    out = {"method": method, "data": data, "seeds": sorted(r["seed"] for r in rs), "cap": cap,
           "wall_s": statistics.median(r["wall_s"] for r in rs)}
    for k in KEYS:
        vals = [e[k] for e in ends if k in e]
        if vals:
            out[k] = (statistics.median(vals), min(vals), max(vals))
    if all(h is not None for h in halves):
        dm = abs(statistics.median(e["eval/modes"] for e in ends) - statistics.median(h["eval/modes"] for h in halves))
        dh = abs(statistics.median(e["eval/hq"] for e in ends) - statistics.median(h["eval/hq"] for h in halves))
        out["plateau"] = bool(dm <= PLATEAU_MODES and dh <= PLATEAU_HQ)
        out["moved"] = (dm, dh)
    return out


def plot(recs: List[dict], data: str, path: Path) -> Optional[Path]:
    """Modes, HQ and KL against generator steps (top) and wall-clock seconds (bottom): median over seeds with
    the min–max band, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in recs if r["data"] == data]
    if not rs:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for method in METHODS:
        mr = [r for r in rs if r["method"] == method]
        if not mr:
            continue
        steps = sorted(set.intersection(*[{row["gen_step"] for row in r["curve"]} for r in mr]))
        for j, key in enumerate(("eval/modes", "eval/hq", "eval/kl")):
            rows = [[at_step(r, s) for s in steps] for r in mr]
            vals = [[(row or {}).get(key) for row in rr] for rr in rows]
            ok = [i for i in range(len(steps)) if all(v[i] is not None for v in vals)]
            if not ok:
                continue
            med = [statistics.median(v[i] for v in vals) for i in ok]
            lo = [min(v[i] for v in vals) for i in ok]
            hi = [max(v[i] for v in vals) for i in ok]
            walls = [statistics.median((row or {}).get("wall_s", float("nan")) for row in [rr[i] for rr in rows])
                     for i in ok]
            for ax, x in ((axes[0, j], [steps[i] for i in ok]), (axes[1, j], walls)):
                ax.plot(x, med, marker="o", ms=3, color=COLORS[method], label=f"{LABELS[method]} ({len(mr)} seeds)")
                ax.fill_between(x, lo, hi, color=COLORS[method], alpha=0.15, lw=0)
    for j, (key, name) in enumerate((("eval/modes", f"modes (of {N_MODES[data]})"), ("eval/hq", "HQ fraction"),
                                      ("eval/kl", "reverse KL"))):
        for i, xl in enumerate(("generator steps", "wall-clock seconds (one CPU thread)")):
            ax = axes[i, j]
            ax.set_xscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel(name)
            if key == "eval/kl":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{data}: median over seeds (band: min–max), log-spaced evaluations")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def section(recs: List[dict], fig_dir: Optional[Path] = None, report: Optional[Path] = None) -> List[str]:
    """The report's convergence section (Markdown lines), from the records alone; with ``fig_dir`` the figures are
    written there and linked relative to ``report``."""
    L = ["## Convergence grid (issue 18): anytime curves to the plateau", "",
         f"Each run trains to {CAPS['ring8']:,} generator steps on ring8 and grid25 and is evaluated at {EVERY}·2^k steps "
         "(log-spaced) and at the end; records in `docs/results/reproduction/runs/` "
         "(`OMP_NUM_THREADS=1 python experiments/reproduction.py run`; figures and this section: "
         "`python experiments/reproduction.py write`). Plateau: between the last two evaluations "
         f"({CAPS['ring8'] // 2:,} and {CAPS['ring8']:,} steps) the seeds' median modes move by ≤ {PLATEAU_MODES:g} "
         f"and median HQ by ≤ {PLATEAU_HQ * 100:g} points.", ""]
    have = {(r["method"], r["data"]) for r in recs}
    total = len(METHODS) * len(DATASETS) * len(SEEDS)
    L += [f"Records so far: {len(recs)} of {total} (7 methods × 2 datasets × {len(SEEDS)} seeds).", ""]
    for data in DATASETS:
        if not any(d == data for _, d in have):
            continue
        L += [f"### {data}", "",
              "| method | seeds | modes (median, min–max) | HQ | KL | plateau? | fit wall s (median) |",
              "|---|---|---|---|---|---|---|"]
        for m in METHODS:
            s = summary(recs, m, data)
            if s is None:
                continue

            def cell(k, pct=False):
                if k not in s:
                    return "–"
                med, lo, hi = s[k]
                f = (lambda v: f"{100 * v:.1f} %") if pct else (lambda v: f"{v:.3g}")
                return f"{f(med)} ({f(lo)}–{f(hi)})"

            pl = ("yes" if s["plateau"] else f"no: still moving (modes {s['moved'][0]:+.1f}, HQ "
                  f"{100 * s['moved'][1]:.1f} pts)") if "plateau" in s else "–"
            L.append(f"| {LABELS[m]} | {','.join(map(str, s['seeds']))} | {cell('eval/modes')} | "
                     f"{cell('eval/hq', True)} | {cell('eval/kl')} | {pl} | {s['wall_s']:.0f} |")
        if fig_dir is not None:
            p = plot(recs, data, Path(fig_dir) / f"convergence_{data}.png")
            if p is not None:
                link = os.path.relpath(p, Path(report).parent) if report is not None else str(p)
                L += ["", f"![{data}: modes, HQ and KL against generator steps and seconds]({link})"]
        L.append("")
    return L

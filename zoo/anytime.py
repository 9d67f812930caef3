"""The anytime protocol: log-spaced evaluations to a plateau cap, one small JSON record per run, and comparison
of any LightningModule against the zoo's committed records without retraining the zoo.

Protocol (:func:`protocol`): a ``train.py fit`` through :func:`zoo.compare.train_args` (data seed 0, ``ModeCoverage``
on 2,500 samples with the 3-std HQ threshold, one torch thread) for ``cap`` generator steps (:data:`CAPS`), every
evaluation callback on ``schedule = log2`` from :data:`EVERY` steps: 250, 500, 1,000, …, 16,000, and at the end —
or, on a dataset whose grid is dense (:data:`EVERY_BY_DATA`), every 1,000 steps to 32,000 (``linear``). Each
evaluation row carries the run's wall-clock and CPU seconds so far (over resumed segments).

Record (:func:`run_anytime`): ``<records>/<data>/<method>-s<seed>.json`` with method, data, seed, config, commit,
``protocol``, ``versions`` (python, torch, Lightning of the run), status, fit seconds, the command, the machine, and
``curve``: one row per evaluation, ``{gen_step, wall_s, cpu_s, eval/modes, eval/hq, eval/kl, eval/w2, …}``.

Plateau (:func:`summary`): read on *window medians* (:func:`window_medians`): per seed the median of its
evaluations over the last doubling (cap/2, cap] and over the one before (cap/4, cap/2]; between the two, the median
over seeds of the mode count moves by at most :data:`PLATEAU_MODES` and the median HQ by at most :data:`PLATEAU_HQ`.
On the log2 schedule each window holds one evaluation, so this is the two-snapshot rule (cap/2 against the cap); a
run's quality at its budget is its last window's median (:func:`plateau_value`).

Against the zoo (:func:`against`, ``python -m zoo.compare --methods my_pkg.MyGAN --against zoo --data ring8``):
trains only the given methods on the records' protocol (cap and evaluation schedule read from the records, so the
grid in ``docs/results/reproduction/runs`` of a checkout — ring8's dense, grid25's and stacked digits' log2 — and
the dense grid still being completed in ``…/window`` are both targets; seeds already recorded under ``--out`` are skipped) and places them in the plateau table and on the
curves of the zoo's records; it refuses, in one line, when the records mix protocols, use evaluation settings this
installation does not, or were made with other versions of torch/Lightning than this installation's.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from zoo.errors import ConfigError

CAPS = {"ring8": 32000, "grid25": 16000, "stacked_digits": 8000}
EVERY = 250
SCHEDULE = "log2"
#: datasets whose grid is dense instead (an evaluation every EVERY_BY_DATA[data] generator steps, linear schedule, to
#: CAPS[data]): a dataset moves here once its dense grid is complete (``reproduction.py flip``), so that the zoo's
#: records of it, and ``zoo.compare --against zoo`` on it, use the dense protocol
EVERY_BY_DATA: Dict[str, int] = {"ring8": 1000}
SCHEDULE_BY_DATA: Dict[str, str] = {"ring8": "linear"}
#: the evaluation callbacks put on the log2 schedule, per dataset (2-D: modes/HQ/KL, W2/energy; digits: the
#: 26,000-sample stacked mode count and the digit-classifier FID), and their extra options
EVAL_GROUPS = {"ring8": ("mode_coverage", "distances", "spectral"), "grid25": ("mode_coverage", "distances", "spectral"),
               "stacked_digits": ("stacked_modes", "fid", "spectral")}
EVAL_EXTRA = {"stacked_digits": ["--fid.extractor", "digits"]}
PLATEAU_MODES = 1.0  # per 2-D set; stacked digits: 1 % of its 1000 modes (PLATEAU_MODES_BY_DATA)
PLATEAU_MODES_BY_DATA = {"stacked_digits": 10.0}
PLATEAU_HQ = 0.05
KEYS = ("eval/modes", "eval/hq", "eval/kl", "eval/w2", "eval/energy")
N_MODES = {"ring8": 8, "grid25": 25, "stacked_digits": 1000}
PALETTE = ["tab:gray", "tab:orange", "tab:red", "tab:blue", "tab:purple", "tab:green", "tab:brown", "black",
           "tab:pink", "tab:olive", "tab:cyan"]


def protocol(data: str, cap: Optional[int] = None, every: Optional[int] = None,
             schedule: Optional[str] = None) -> dict:
    """What a record's numbers depend on besides the method (compared by :func:`against`). ``cap``, ``every`` and
    ``schedule`` default to the grid's for ``data``: :data:`CAPS`, and :data:`EVERY_BY_DATA` /
    :data:`SCHEDULE_BY_DATA` for a dataset whose grid is dense, else :data:`EVERY` and :data:`SCHEDULE` (log2);
    ``linear``: an evaluation every ``every`` generator steps."""
    from zoo.compare import EVAL_N_SAMPLES, EVAL_SEED, EVAL_THRESHOLD

    if data not in CAPS and cap is None:
        raise ConfigError(f"no anytime cap for data {data!r}: use one of {', '.join(CAPS)}")
    return {"data": data, "cap": int(cap or CAPS[data]), "every": int(every or EVERY_BY_DATA.get(data, EVERY)),
            "schedule": schedule or SCHEDULE_BY_DATA.get(data, SCHEDULE),
            "data_seed": 0, "eval_n_samples": EVAL_N_SAMPLES, "eval_seed": EVAL_SEED, "eval_threshold": EVAL_THRESHOLD}


def versions() -> dict:
    import pytorch_lightning
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "lightning": pytorch_lightning.__version__}


def record_path(records: Path, data: str, method: str, seed: int) -> Path:
    return Path(records) / data / f"{method}-s{seed}.json"


def anytime_args(spec, cap: Optional[int] = None, config_paths: Optional[dict] = None, every: Optional[int] = None,
                 schedule: Optional[str] = None) -> List[str]:
    """The ``train.py`` arguments of one anytime run (``spec``: a :class:`zoo.compare.RunSpec`; its ``model`` is a
    plug-in's class path; ``every``/``schedule``: :func:`protocol`'s)."""
    from zoo.compare import parse_budget, train_args

    data = spec.data
    proto = protocol(data, cap, every, schedule)
    extra: List[str] = []
    for group in EVAL_GROUPS.get(data, EVAL_GROUPS["ring8"]):
        extra += [f"--{group}.every_n_gen_steps", str(proto["every"]), f"--{group}.schedule", proto["schedule"]]
    extra += EVAL_EXTRA.get(data, [])
    extra += ["--trainer.enable_progress_bar", "false"]
    return train_args(spec, parse_budget(f"{proto['cap']}steps"), accelerator="cpu", eval_every=proto["every"],
                      wandb=False, config_paths=config_paths, extra=extra)


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


def _rel(path: str, root: Optional[Path]) -> str:
    p = Path(path)
    return str(p.relative_to(root)) if root is not None and p.is_absolute() and p.is_relative_to(root) else str(path)


def run_anytime(method: str, data: str, seed: int, runs: Path, records: Path, cap: Optional[int] = None,
                model: str = "", config_paths: Optional[dict] = None, root: Optional[Path] = None,
                every: Optional[int] = None, schedule: Optional[str] = None) -> Optional[Path]:
    """Train one anytime run (:func:`zoo.compare.run_one`, one torch thread, resuming its folder's ``last.ckpt`` if
    any) and write its record atomically; ``None`` when its record exists already or the run did not finish (then
    its log says why). ``every``/``schedule``: the evaluation schedule (default the grid's, :func:`protocol`)."""
    from zoo.compare import REPO_ROOT, RunSpec, run_one

    path = record_path(records, data, method, seed)
    if path.exists():
        return None
    root = Path(root) if root is not None else (REPO_ROOT if (REPO_ROOT / "zoo").is_dir() else None)
    spec = RunSpec(method=method, data=data, seed=seed, out_dir=Path(runs), model=model)
    args = anytime_args(spec, cap, config_paths, every, schedule)
    t0, load0 = time.time(), os.getloadavg()[0]
    outcome = run_one(spec, args, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled",
                                       "PYTHONUNBUFFERED": "1"})
    if outcome.status != "complete":
        print(f"[anytime] {method} {data} s{seed} did not finish (exit {outcome.returncode}): see {outcome.log}",
              file=sys.stderr, flush=True)
        return None
    run_dir = spec.run_dir
    res = json.loads(spec.results_path.read_text())
    curve = read_curve(run_dir)
    proto = protocol(data, cap, every, schedule)
    cfg = args[args.index("--config") + 1] if "--config" in args else None
    rv = res.get("versions") or {}
    rec = {"method": method, "data": data, "seed": seed, "model": model or method,
           "config": _rel(cfg, root) if cfg else None, "commit": rv.get("git_commit"),
           "protocol": proto, "versions": versions(), "status": res.get("status"),
           "cap": proto["cap"], "every": proto["every"], "schedule": proto["schedule"],
           "gen_step": (res.get("steps") or {}).get("gen_step"), "wall_s": res.get("wall_time_s"),
           "cpu_s": res.get("cpu_time_s"), "process_wall_s": round(time.time() - t0, 1),
           "command": "python train.py " + " ".join("<runs>" if a == str(runs) else
                                                    (_rel(a, root) if a.endswith(".yaml") else a) for a in args),
           "machine": f"{platform.platform()} cpus={os.cpu_count()} threads=1",
           "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],  # at start and end (contention)
           "curve": curve}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rec, indent=0, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    last = curve[-1] if curve else {}
    print(f"[anytime] {method} {data} s{seed}: modes {last.get('eval/modes')} hq {last.get('eval/hq')} "
          f"in {rec['wall_s'] or 0:.0f} s -> {path}", flush=True)
    return path


def load_records(records: Path) -> List[dict]:
    """Every record under ``records/<data>/*.json`` (unreadable files are reported and skipped)."""
    out = []
    for p in sorted(Path(records).glob("*/*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            print(f"[anytime] unreadable record {p}: skipped", file=sys.stderr)
            continue
        if isinstance(rec, dict) and rec.get("curve"):
            out.append(rec)
    return out


def within_plateau(data: str, d_modes: float, d_hq: float) -> bool:
    """The plateau thresholds: |Δ modes| ≤ PLATEAU_MODES (stacked digits: PLATEAU_MODES_BY_DATA) and |Δ HQ| ≤
    PLATEAU_HQ, HQ as a fraction."""
    return abs(d_modes) <= PLATEAU_MODES_BY_DATA.get(data, PLATEAU_MODES) and abs(d_hq) <= PLATEAU_HQ


def _windows(rec: dict, late: bool = False) -> Tuple[List[dict], List[dict]]:
    """A record's evaluation rows (gen_step ≤ its cap) in the last doubling (cap/2, cap] and the one before it
    (cap/4, cap/2]; ``late``: in the last quarter (3·cap/4, cap] and the one before it (cap/2, 3·cap/4]."""
    cap = int(rec["cap"])
    lo, mid = (cap // 2, 3 * cap // 4) if late else (cap // 4, cap // 2)
    rows = [r for r in rec["curve"] if int(r["gen_step"]) <= cap]
    return ([r for r in rows if mid < int(r["gen_step"]) <= cap], [r for r in rows if lo < int(r["gen_step"]) <= mid])


def window_medians(rec: dict, late: bool = False) -> Optional[Tuple[Dict[str, float], Dict[str, float]]]:
    """``(last, before)``: for each metric of :data:`KEYS` a run reports, the median of its evaluations over the last
    doubling of its budget, m_last = median{ v(t) : cap/2 < t ≤ cap }, and over the one before it,
    m_before = median{ v(t) : cap/4 < t ≤ cap/2 } (t in generator steps). On the log2 schedule (250·2^k) each window
    holds one evaluation, so these are the values at the cap and at cap/2; with an evaluation every 1,000 steps to
    32,000 they are medians of 16 and 8 evaluations, which single-evaluation dips do not move. ``late``: the same
    over the last quarter (3·cap/4, cap] against (cap/2, 3·cap/4] (8 and 8 evaluations on the dense grid; empty on
    the log2 schedule), which sees a run that takes off or collapses late in its last doubling (read on the mode
    count only: HQ over 8 evaluations is too noisy). ``None`` when
    either window has no evaluation."""
    last, before = _windows(rec, late)
    if not last or not before:
        return None

    def med(rows: List[dict]) -> Dict[str, float]:
        return {k: statistics.median(float(r[k]) for r in rows if r.get(k) is not None)
                for k in KEYS if any(r.get(k) is not None for r in rows)}

    return med(last), med(before)


def median_moves(wms: List[Optional[tuple]]) -> Optional[Tuple[float, float]]:
    """(Δ modes, Δ HQ fraction) = median over seeds of ``last`` − median over seeds of ``before``, for per-seed
    pairs ``(last, before)`` of metric dicts (:func:`window_medians`, or two evaluation rows); HQ's Δ is 0 unless every
    pair reports it. ``None`` unless every pair has a mode count on both sides."""
    if not wms or not all(w is not None and "eval/modes" in w[0] and "eval/modes" in w[1] for w in wms):
        return None
    dm = statistics.median(w[0]["eval/modes"] for w in wms) - statistics.median(w[1]["eval/modes"] for w in wms)
    has_hq = all("eval/hq" in w[0] and "eval/hq" in w[1] for w in wms)
    dh = statistics.median(w[0]["eval/hq"] for w in wms) - statistics.median(w[1]["eval/hq"] for w in wms) \
        if has_hq else 0.0
    return dm, dh


def plateau_value(rec: dict) -> Dict[str, float]:
    """A run's quality *at its budget*: :func:`window_medians`'s ``last`` (the median over (cap/2, cap]; the value at
    the cap on the log2 schedule); for a run whose final generator is made after the cap (AE-OT's OT solve counts one
    generator step more) or that lacks the windows, its final evaluation."""
    end = rec["curve"][-1]
    wm = None if int(end["gen_step"]) > int(rec["cap"]) else window_medians(rec)
    if wm is None:
        return {k: float(end[k]) for k in KEYS if end.get(k) is not None}
    return wm[0]


def summary(recs: List[dict], method: str, data: str) -> Optional[dict]:
    """Over the seeds of (method, data): the median (min, max) of each run's :func:`plateau_value`, the plateau check
    on window medians (the median over seeds of m_last against that of m_before, :func:`window_medians`: on the log2
    schedule the values at the cap and at cap/2; on dense records also the mode count over the last quarter against
    the one before, ``delta_late``), and the seeds' median fit time."""
    rs = [r for r in recs if r["method"] == method and r["data"] == data]
    if not rs:
        return None
    cap = rs[0]["cap"]
    out = {"method": method, "data": data, "seeds": sorted(r["seed"] for r in rs), "cap": cap,
           "wall_s": statistics.median([r["wall_s"] for r in rs if r.get("wall_s") is not None] or [math.nan])}
    values = [plateau_value(r) for r in rs]
    for k in KEYS:
        vals = [v[k] for v in values if k in v]
        if vals:
            out[k] = (statistics.median(vals), min(vals), max(vals))
    if any(r["curve"][-1]["gen_step"] > r["cap"] for r in rs):
        # the final generator comes from a stage after the cap (AE-OT's OT solve counts one more step): the
        # evaluations before it are not the same generator's, so there is no plateau to check
        out["after_cap"] = True
        return out
    halves = median_moves([window_medians(r) for r in rs])
    if halves is not None:
        sm, sh = halves
        out["moved"] = (abs(sm), abs(sh))
        out["delta"] = (sm, sh)  # signed: last doubling minus the one before (modes, HQ fraction), seed medians
        out["plateau"] = within_plateau(data, sm, sh)
        late = median_moves([window_medians(r, late=True) for r in rs])
        if late is not None:  # dense records: the mode count over the last quarter against the quarter before, too
            out["delta_late"] = late  # (HQ over 8 evaluations is too noisy to judge: a single seed spans 2-95 %)
            out["plateau"] = out["plateau"] and within_plateau(data, late[0], 0.0)
    return out


def drawn_curve(rec: dict) -> List[dict]:
    """The evaluation rows a figure draws for one record: its curve up to the cap; for a run whose generator is made
    after the cap (AE-OT: its OT solve counts one generator step, at its end) the evaluations before the cap, then the
    final one drawn at the cap. The evaluation *at* the cap is left out there: it falls on the step that starts the
    solve (records made before 2026-12-07 sampled the unfinished map, h = 0, at that step; later ones the
    autoencoder's baseline), so it is neither the method nor its baseline curve."""
    cap = rec.get("cap")
    rows = list(rec["curve"])
    if cap is None or not rows or int(rows[-1]["gen_step"]) <= int(cap):
        return rows
    return [r for r in rows if int(r["gen_step"]) < int(cap)] + [dict(rows[-1], gen_step=int(cap))]


def curve_band(curves: Sequence[Sequence[dict]], key: str) -> Tuple[List[int], List[float], List[float],
                                                                    List[float], List[float]]:
    """(steps, median, min, max of ``key``, median wall-clock seconds) over the seeds' curves, at every generator
    step that all of them evaluated and that reports ``key``."""
    by_seed = [{int(r["gen_step"]): r for r in c if r.get(key) is not None} for c in curves]
    steps = sorted(set.intersection(*[set(b) for b in by_seed])) if by_seed else []
    vals = [[float(b[s][key]) for b in by_seed] for s in steps]
    wall = [statistics.median(float(b[s].get("wall_s", math.nan)) for b in by_seed) for s in steps]
    return steps, [statistics.median(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals], wall


def is_dense(rec: dict) -> bool:
    """Whether a record was evaluated on the dense, ``linear`` schedule (an evaluation every ``every`` generator
    steps) rather than at 250·2^k."""
    return rec.get("schedule") == "linear"


def plot(recs: List[dict], data: str, path: Path, labels: Optional[Dict[str, str]] = None) -> Optional[Path]:
    """Modes, HQ and KL against generator steps (top) and wall-clock seconds (bottom): median over seeds with
    the min–max band, one line per method (``labels``: method → legend name, in plotting order). Generator steps on
    a log axis for log2 records, a linear one when every record of ``data`` is dense (``linear`` schedule);
    wall-clock seconds on a log axis (the methods' costs differ tenfold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in recs if r["data"] == data]
    if not rs:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    order = list(labels or {}) + sorted({r["method"] for r in rs} - set(labels or {}))
    for ci, method in enumerate(order):
        mr = [r for r in rs if r["method"] == method]
        color, label = PALETTE[ci % len(PALETTE)], (labels or {}).get(method, method)
        if not mr:
            continue
        for j, key in enumerate(("eval/modes", "eval/hq", "eval/kl")):
            steps, med, lo, hi, walls = curve_band([drawn_curve(r) for r in mr], key)
            if not steps:
                continue
            for ax, x in ((axes[0, j], steps), (axes[1, j], walls)):
                ax.plot(x, med, marker="o", ms=3, color=color, label=f"{label} ({len(mr)} seed{'s' if len(mr) > 1 else ''})")
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
    dense = all(is_dense(r) for r in rs)
    for j, (key, name) in enumerate((("eval/modes", f"modes (of {N_MODES.get(data, '?')})"), ("eval/hq", "HQ fraction"),
                                      ("eval/kl", "reverse KL"))):
        for i, xl in enumerate(("generator steps", "wall-clock seconds (one CPU thread)")):
            ax = axes[i, j]
            ax.set_xscale("linear" if dense and i == 0 else "log")
            ax.set_xlabel(xl)
            ax.set_ylabel(name)
            if key == "eval/kl":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{data}: median over seeds (band: min–max), "
                 + (f"an evaluation every {max(int(r['every']) for r in rs):,} generator steps" if dense
                    else "log-spaced evaluations"))
    return save_figure(fig, path)


def save_figure(fig, path: Path, dpi: int = 90) -> Path:
    """Write a matplotlib figure to ``path`` atomically (a temporary file, then a rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path




# ---------------------------------------------------------------------------------------------- against the zoo
def check_comparable(zoo_recs: List[dict], data: str, cap: Optional[int] = None) -> dict:
    """The protocol to train on against the zoo's records of ``data``: theirs (cap, evaluation cadence and schedule
    are taken from the records, so a folder of dense records is compared on the dense protocol). One-line refusal
    when the records of ``data`` disagree among themselves, were made under evaluation settings this installation
    does not use (data seed, evaluation samples, seed, HQ threshold), or with other versions of torch/Lightning
    (their numbers would not be comparable); ``cap``: the protocol to require instead of the records' own."""
    rs = [r for r in zoo_recs if r.get("data") == data]
    if not rs:
        raise ConfigError(f"no zoo record of {data!r} among the records given: compare on a dataset they cover")
    protos = {json.dumps(r.get("protocol") or {}, sort_keys=True): r for r in rs}
    if len(protos) > 1:
        a, b = (json.loads(k) for k in list(protos)[:2])
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        ra, rb = list(protos.values())[:2]
        raise ConfigError(f"the zoo's records of {data} mix protocols ({ra['method']}-s{ra['seed']} and "
                          f"{rb['method']}-s{rb['seed']} differ in {', '.join(diff)}): keep one protocol per folder "
                          "of records")
    theirs = json.loads(next(iter(protos)))
    mine = protocol(data, cap or theirs.get("cap"), theirs.get("every"), theirs.get("schedule"))
    diff = sorted(k for k in mine if theirs.get(k) != mine[k])
    if diff:
        r = rs[0]
        raise ConfigError(f"the zoo's record {r['method']}-s{r['seed']} ({data}) used another protocol "
                          f"({', '.join(f'{k}={theirs.get(k)!r} here {mine[k]!r}' for k in diff)}): "
                          "compare on the records' protocol or rerun the zoo's grid")
    here = versions()
    for r in rs:
        v = r.get("versions") or {}
        bad = sorted(k for k in ("torch", "lightning") if v.get(k) != here[k])
        if bad:
            raise ConfigError(f"the zoo's record {r['method']}-s{r['seed']} ({data}) was made with "
                              f"{', '.join(f'{k} {v.get(k)}' for k in bad)}, this installation has "
                              f"{', '.join(f'{k} {here[k]}' for k in bad)}: install the versions of constraints.txt")
    return mine


def moves_text(s: dict) -> str:
    """Why a :func:`summary` is not flat, in words: the moves of the seeds' window medians that exceed the
    thresholds (over the last doubling; over the last quarter, on dense records)."""
    parts = []
    if "delta" in s and not within_plateau(s["data"], *s["delta"]):
        parts.append(f"median modes moved {abs(s['delta'][0]):.1f}, HQ {100 * abs(s['delta'][1]):.1f} pts over the "
                     "last doubling")
    if "delta_late" in s and not within_plateau(s["data"], s["delta_late"][0], 0.0):
        parts.append(f"median modes moved {abs(s['delta_late'][0]):.1f} over the last quarter")
    return "; ".join(parts)


def range_cell(s: dict, key: str, pct: bool = False, unit: str = " %") -> str:
    """A :func:`summary` metric as "median (min–max)": HQ-like fractions (``pct``) in percent with one decimal and
    ``unit`` after each number, counts from 100 up as integers, the rest to 3 significant digits; "–" if absent."""
    if key not in s:
        return "–"
    med, lo, hi = s[key]
    f = (lambda v: f"{100 * v:.1f}{unit}") if pct else (lambda v: f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}")
    return f"{f(med)} ({f(lo)}–{f(hi)})"


def table(recs: List[dict], data: str, labels: Dict[str, str]) -> List[str]:
    """The plateau table of ``data`` (Markdown lines): median (min–max) over seeds of each run's quality at its budget
    (:func:`plateau_value`: the final evaluation on the log2 schedule, the last doubling's median on a dense one),
    the plateau check (:func:`summary`), the median fit seconds; one row per method in ``labels`` order."""
    L = ["| method | seeds | modes (median, min–max) | HQ | KL | plateau? | fit wall s (median) |",
         "|---|---|---|---|---|---|---|"]
    for m, label in labels.items():
        s = summary(recs, m, data)
        if s is None:
            continue

        pl = ("yes" if s["plateau"] else f"no: still moving ({moves_text(s)})") if "plateau" in s else \
            ("n/a: its generator is made after the cap" if s.get("after_cap") else "–")
        L.append(f"| {label} | {','.join(map(str, s['seeds']))} | {range_cell(s, 'eval/modes')} | "
                 f"{range_cell(s, 'eval/hq', True)} | {range_cell(s, 'eval/kl')} | {pl} | {s['wall_s']:.0f} |")
    return L


def committed_records() -> Path:
    """Where a checkout of the zoo keeps the convergence grid's records (``docs/results/reproduction/runs``)."""
    from zoo.compare import REPO_ROOT

    return REPO_ROOT / "docs" / "results" / "reproduction" / "runs"


def zoo_records_folder(against: str) -> Path:
    """``zoo``: the records committed in this checkout; else a folder of records."""
    folder = committed_records() if against == "zoo" else Path(against)
    if not folder.is_dir() or not any(folder.glob("*/*.json")):
        where = ("the zoo's records ship with its repository (docs/results/reproduction/runs): run from a clone, "
                 "or pass --against <folder of records>") if against == "zoo" else f"no records under {folder}"
        raise ConfigError(f"--against {against}: {where}")
    return folder


def against(methods: Sequence[str], datasets: Sequence[str], seeds: Sequence[int], zoo: str = "zoo",
            out: Path = Path("runs/against-zoo"), config_paths: Optional[dict] = None) -> str:
    """Train ``methods`` (zoo short names or class paths) on the anytime protocol, then place them in the zoo's
    plateau table and curves; returns the Markdown (also written to ``<out>/against.md``, figures beside it).
    ``config_paths``: ``{"<method>/<data>": path}``, a plug-in's per-dataset config (as ``zoo.compare``)."""
    from zoo.compare import resolve_methods
    from zoo.registry import class_path, resolve_model

    folder = zoo_records_folder(zoo)
    zoo_recs = load_records(folder)
    protos = {d: check_comparable(zoo_recs, d) for d in datasets}  # the records' own protocol, per dataset
    names = resolve_methods(methods)
    out = Path(out)
    for d in datasets:
        p = protos[d]
        for m in names:
            for s in seeds:
                mine_path = record_path(out / "records", d, m, s)
                if mine_path.exists() and json.loads(mine_path.read_text()).get("protocol") != p:
                    raise ConfigError(f"{mine_path} was made under another protocol than the zoo records' "
                                      f"({folder}): give this comparison another --out")
                run_anytime(m, d, s, out / "runs", out / "records", model=class_path(resolve_model(m)),
                            config_paths=config_paths, cap=p["cap"], every=p["every"], schedule=p["schedule"])
    mine = load_records(out / "records")
    zoo_names = [m for m in dict.fromkeys(r["method"] for r in zoo_recs) if m not in names]
    lines = [f"# Against the zoo: {', '.join(names)}", "",
             f"The zoo's records: `{folder}`; this comparison's: `{out / 'records'}`.", ""]
    for d in datasets:
        lines += [f"Protocol of {d} (the zoo records'): "
                  f"{json.dumps({k: v for k, v in protos[d].items() if k != 'data'})}.", ""]
    for d in datasets:
        recs = [r for r in zoo_recs if r["data"] == d and r["method"] in zoo_names] + \
               [r for r in mine if r["data"] == d]
        labels = {**{m: f"**{m}** (yours)" for m in names}, **{m: m for m in zoo_names}}
        lines += [f"## {d}", ""] + table(recs, d, labels)
        fig = plot(recs, d, out / f"against_{d}.png", labels={m: m for m in [*names, *zoo_names]})
        if fig is not None:
            lines += ["", f"![{d}]({fig.name})"]
        lines.append("")
    md = "\n".join(lines)
    (out / "against.md").write_text(md)
    return md

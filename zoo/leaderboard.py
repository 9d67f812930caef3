"""Leaderboard: method × dataset table of mean ± std over seeds, from local ``results.json`` files or a W&B project.

    python -m zoo.leaderboard [runs_dir] [--wandb entity/project] [--metric modes|hq|kl|fid|w2|wall_time]
                              [--out docs/leaderboard]

For every (dataset, method, budget) group of **complete** runs, each metric is summarised as

    mean = (1/n) Σ_i v_i,   std = sqrt( Σ_i (v_i − mean)² / (n − 1) )   (sample std over seeds; undefined for n = 1)

over the runs (seeds) that report it. Metrics (:data:`METRICS`): ``fid`` (``eval/fid``), ``modes``
(``eval/modes``), ``hq`` (``eval/hq``, a fraction, printed as a percentage), ``kl`` (``eval/kl``),
``w2`` (``eval/w2``) and ``wall_time`` (seconds of ``fit``). Lower is better for fid, kl, w2, wall_time; higher
for modes and hq. ``--metric`` sorts the methods of each dataset in that direction (runs without the metric last).

Sources, both reduced to :class:`Record` before the table is built:

* local: every ``results.json`` under ``runs_dir`` (written by ``callbacks/results.py``; the metrics are the
  values at the **end** of training);
* W&B: :func:`records_from_runs` takes any run-like objects with ``.name``, ``.config``, ``.summary`` (and
  optionally ``.state``), so it is testable offline; :func:`load_wandb` is the thin adapter over
  ``wandb.Api().runs(path)``. With the summaries of :mod:`callbacks.wandb_setup` (``{"min"|"max": best,
  "last": final}``) the ``last`` value is used by default (``--summary last``), the same as ``results.json``;
  ``--summary best`` takes the best value over training instead.

Outputs: Markdown (printed and written to ``<out>.md``), CSV (``<out>.csv``, raw values, HQ as a fraction) and a
bar chart (``<out>.png``, one panel per dataset, error bars = std).

**Curves.** ``--curves DIR`` reads anytime-curve records (``DIR/<data>/<method>-s<seed>.json`` with a ``curve`` of
evaluation rows ``{gen_step, wall_s, eval/modes, …}``, as ``experiments/reproduction.py run`` commits them under
``docs/results/reproduction/runs``, or any plug-in's records in that format) and ``--log_wandb PROJECT`` logs, per
dataset and metric, the median over seeds against generator steps and against wall-clock seconds as W&B line
plots (``wandb.plot.line_series``; one run named ``leaderboard-curves``; ``WANDB_MODE=offline`` works without a
server). :func:`median_curves` is the reduction: at each generator step evaluated by every seed of a method, the
median value and the median wall-clock seconds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from zoo.errors import ConfigError

__all__ = [
    "METRICS", "Record", "Row", "records_from_results", "records_from_runs", "load_local", "load_wandb",
    "aggregate", "sort_rows", "to_markdown", "to_csv", "plot_png", "build", "load_curves", "median_curves",
    "log_curves_wandb", "main",
]


@dataclass(frozen=True)
class Metric:
    key: str             # key in results.json "metrics" / the W&B summary (wall_time: top-level)
    higher_is_better: bool
    label: str
    percent: bool = False


#: leaderboard metric name -> source key, direction, column label.
METRICS: Dict[str, Metric] = {
    "fid": Metric("eval/fid", False, "FID"),
    "modes": Metric("eval/modes", True, "modes"),
    "hq": Metric("eval/hq", True, "HQ %", percent=True),
    "kl": Metric("eval/kl", False, "KL"),
    "w2": Metric("eval/w2", False, "W2"),
    "wall_time": Metric("wall_time_s", False, "wall time (s)"),
}


@dataclass
class Record:
    """One run, reduced to what the leaderboard needs."""

    method: str
    dataset: str
    seed: Optional[int]
    values: Dict[str, float]          # leaderboard metric name -> value
    complete: bool = True
    gen_steps: Optional[int] = None
    budget: str = ""
    name: str = ""
    source: str = ""


@dataclass
class Row:
    """One (dataset, method, budget) group: ``stats[metric] = (mean, std or None, n)``."""

    dataset: str
    method: str
    budget: str
    n_runs: int
    seeds: List[Any]
    stats: Dict[str, Tuple[float, Optional[float], int]] = field(default_factory=dict)
    gen_steps: Optional[float] = None
    rank: Optional[int] = None


# ---------------------------------------------------------------------------------------------- sources
def _finite(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _budget_from_config(cfg: Mapping[str, Any]) -> str:
    """``"<N> gen steps"`` / ``"<T> max_time"`` from a train.py config (results.json ``config``)."""
    model = cfg.get("model") or {}
    init = model.get("init_args", model) if isinstance(model, Mapping) else {}
    trainer = cfg.get("trainer") or {}
    parts = []
    steps = init.get("max_gen_steps") if isinstance(init, Mapping) else None
    steps = cfg.get("max_gen_steps") or steps  # train.py's --max_gen_steps (any module) wins over the model's
    if steps:
        parts.append(f"{int(steps)} gen steps")
    max_time = trainer.get("max_time") if isinstance(trainer, Mapping) else None
    if max_time:
        parts.append(f"max_time {max_time}")
    return ", ".join(parts)


def records_from_results(paths: Iterable[Path]) -> List[Record]:
    """Records from ``results.json`` files (see ``callbacks/results.py`` for the schema)."""
    out = []
    for path in paths:
        try:
            res = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"[zoo] leaderboard: skipped {path}: not a readable results.json ({type(err).__name__})",
                  file=sys.stderr)
            continue
        if not isinstance(res, dict):
            print(f"[zoo] leaderboard: skipped {path}: not a results.json object", file=sys.stderr)
            continue
        metrics = res.get("metrics") or {}
        values = {}
        for name, m in METRICS.items():
            v = _finite(res.get(m.key)) if name == "wall_time" else _finite(metrics.get(m.key))
            if v is not None:
                values[name] = v
        cfg = res.get("config") or {}
        out.append(Record(
            method=str(res.get("method") or "?"), dataset=str(res.get("data") or "?"),
            seed=res.get("seed"), values=values, complete=res.get("status") == "complete",
            gen_steps=(res.get("steps") or {}).get("gen_step"), budget=_budget_from_config(cfg),
            name=Path(path).parent.name, source=str(path)))
    return out


def load_local(runs_dir: Path) -> List[Record]:
    """Records from every ``results.json`` under ``runs_dir``."""
    runs_dir = Path(runs_dir)
    if not runs_dir.exists():
        raise ConfigError(f"runs directory {runs_dir} does not exist: pass the --trainer.default_root_dir of your runs")
    return records_from_results(sorted(runs_dir.rglob("results.json")))


_NAME = re.compile(r"^(?P<method>.+)-(?P<data>[^-]+)-s(?P<seed>\d+)$")


def _unwrap(v: Any) -> Any:
    """W&B configs may hold ``{"value": x, "desc": ...}`` entries."""
    if isinstance(v, Mapping) and "value" in v and set(v) <= {"value", "desc"}:
        return v["value"]
    return v


def _summary_value(v: Any, metric: Metric, summary: str) -> Optional[float]:
    """A summary entry: a number, or a define_metric dict ``{"min"|"max": best, "last": final}``."""
    if isinstance(v, Mapping):
        best = v.get("max" if metric.higher_is_better else "min")
        v = best if summary == "best" and best is not None else v.get("last", best)
    return _finite(v)


def records_from_runs(runs: Iterable[Any], summary: str = "last") -> List[Record]:
    """Records from run-like objects with ``.name``, ``.config``, ``.summary`` (and optionally ``.state``).

    ``method``/``dataset``/``seed`` come from the config written by :class:`callbacks.wandb_setup.WandbSetup`,
    else from a run name ``<method>-<data>-s<seed>`` (the names :mod:`zoo.compare` gives).
    """
    if summary not in ("last", "best"):
        raise ConfigError(f"summary must be last or best, got {summary!r}")
    out = []
    for run in runs:
        name = str(getattr(run, "name", "") or "")
        cfg = {k: _unwrap(v) for k, v in dict(getattr(run, "config", None) or {}).items()}
        summ = getattr(run, "summary", None) or {}
        summ = dict(getattr(summ, "_json_dict", summ))
        m = _NAME.match(name)
        method = cfg.get("method") or (m.group("method") if m else None)
        dataset = cfg.get("dataset") or (m.group("data") if m else None)
        if method is None or dataset is None:
            continue
        seed = cfg.get("seed", int(m.group("seed")) if m else None)
        values = {}
        for key, metric in METRICS.items():
            raw = summ.get(metric.key, summ.get("_runtime") if key == "wall_time" else None)
            v = _summary_value(raw, metric, summary)
            if v is not None:
                values[key] = v
        budget = cfg.get("budget") or {}
        btxt = []
        if isinstance(budget, Mapping):
            if budget.get("max_gen_steps"):
                btxt.append(f"{int(budget['max_gen_steps'])} gen steps")
            if budget.get("max_time_s"):
                btxt.append(f"max_time {budget['max_time_s']:g}s")
        state = getattr(run, "state", "finished")
        gen = _finite(summ.get("gen_steps", summ.get("trainer/gen_step")))
        out.append(Record(method=str(method), dataset=str(dataset), seed=seed, values=values,
                          complete=state in ("finished", None), gen_steps=int(gen) if gen is not None else None,
                          budget=", ".join(btxt), name=name, source="wandb"))
    return out


def load_wandb(path: str, summary: str = "last", api: Any = None) -> List[Record]:
    """Records of the runs of the W&B project ``entity/project`` (needs network and credentials)."""
    if api is None:
        import wandb

        api = wandb.Api()
    return records_from_runs(api.runs(path), summary=summary)


# ---------------------------------------------------------------------------------------------- table
def _mean_std(xs: Sequence[float]) -> Tuple[float, Optional[float]]:
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return mean, std


def aggregate(records: Iterable[Record]) -> List[Row]:
    """Mean ± sample std over the complete runs of each (dataset, method, budget) group."""
    groups: Dict[Tuple[str, str, str], List[Record]] = {}
    for r in records:
        if r.complete:
            groups.setdefault((r.dataset, r.method, r.budget), []).append(r)
    rows = []
    for (dataset, method, budget), rs in sorted(groups.items()):
        row = Row(dataset=dataset, method=method, budget=budget, n_runs=len(rs),
                  seeds=sorted((r.seed for r in rs), key=lambda s: (s is None, s)))
        for key in METRICS:
            xs = [r.values[key] for r in rs if key in r.values]
            if xs:
                mean, std = _mean_std(xs)
                row.stats[key] = (mean, std, len(xs))
        gens = [r.gen_steps for r in rs if r.gen_steps is not None]
        row.gen_steps = sum(gens) / len(gens) if gens else None
        rows.append(row)
    return rows


def sort_rows(rows: Iterable[Row], metric: str) -> List[Row]:
    """Rows grouped by dataset, each dataset sorted by ``metric`` (best first; rows without it last); sets rank."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    m = METRICS[metric]
    sign = -1.0 if m.higher_is_better else 1.0
    out: List[Row] = []
    for dataset in sorted({r.dataset for r in rows}):
        group = [r for r in rows if r.dataset == dataset]
        group.sort(key=lambda r: (metric not in r.stats, sign * r.stats[metric][0] if metric in r.stats else 0.0,
                                  r.method, r.budget))
        for i, r in enumerate(group):
            r.rank = i + 1 if metric in r.stats else None
        out += group
    return out


def _decimals(v: float) -> int:
    """Decimals for a value of this magnitude (3 below 10, 2 below 100, 1 below 1e5); -1 for scientific."""
    a = abs(v)
    if a == 0 or 1e-3 <= a < 10:
        return 3
    if 10 <= a < 100:
        return 2
    if 100 <= a < 1e5:
        return 1
    return -1


def _cell(row: Row, key: str) -> str:
    """``mean ± std`` with both numbers at the precision the mean's magnitude calls for (modes: 2 decimals)."""
    if key not in row.stats:
        return "–"
    mean, std, n = row.stats[key]
    k = 100.0 if METRICS[key].percent else 1.0
    d = 2 if key == "modes" else _decimals(mean * k)
    fmt = (lambda x: f"{x:.3g}") if d < 0 else (lambda x: f"{x:.{d}f}")
    txt = fmt(mean * k) + (f" ± {fmt(std * k)}" if std is not None else "")
    if n < row.n_runs:
        txt += f" (n={n})"
    return txt


def _columns(rows: Sequence[Row]) -> List[str]:
    present = [k for k in METRICS if any(k in r.stats for r in rows)]
    return present or ["wall_time"]


def to_markdown(rows: Sequence[Row], metric: str, title: str = "Leaderboard", note: str = "") -> str:
    """One Markdown table per dataset, methods sorted by ``metric`` (rows from :func:`sort_rows`)."""
    m = METRICS[metric]
    lines = [f"## {title}", "",
             f"Sorted by **{metric}** ({'higher' if m.higher_is_better else 'lower'} is better). "
             "Cells: mean ± sample std over seeds (complete runs only); HQ in %."]
    if note:
        lines += ["", note]
    if not rows:
        return "\n".join(lines + ["", "_No complete runs found._", ""])
    show_budget = len({r.budget for r in rows}) > 1
    for dataset in sorted({r.dataset for r in rows}, key=lambda d: [r.dataset for r in rows].index(d)):
        group = [r for r in rows if r.dataset == dataset]
        cols = _columns(group)
        head = ["rank", "method"] + (["budget"] if show_budget else []) + ["seeds", "gen steps"] + \
            [METRICS[k].label for k in cols]
        lines += ["", f"### {dataset}", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join(["---:" if h in ("rank", "seeds", "gen steps") else "---" for h in head]) + "|"]
        for r in group:
            cells = [str(r.rank) if r.rank is not None else "–", r.method] + ([r.budget or "?"] if show_budget else [])
            cells += [str(r.n_runs), f"{r.gen_steps:.0f}" if r.gen_steps is not None else "–"]
            cells += [_cell(r, k) for k in cols]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    """Long CSV: one line per (dataset, method, budget), ``<metric>_mean``, ``<metric>_std``, ``<metric>_n``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["dataset", "method", "budget", "rank", "n_runs", "seeds", "gen_steps"]
    for k in METRICS:
        head += [f"{k}_mean", f"{k}_std", f"{k}_n"]
    w.writerow(head)
    for r in rows:
        line = [r.dataset, r.method, r.budget, r.rank if r.rank is not None else "", r.n_runs,
                " ".join(str(s) for s in r.seeds), "" if r.gen_steps is None else f"{r.gen_steps:g}"]
        for k in METRICS:
            if k in r.stats:
                mean, std, n = r.stats[k]
                line += [repr(mean), "" if std is None else repr(std), n]
            else:
                line += ["", "", 0]
        w.writerow(line)
    return buf.getvalue()


def plot_png(rows: Sequence[Row], metric: str, path: Path) -> Optional[Path]:
    """Bar chart of ``metric`` (mean, std error bars), one panel per dataset; ``None`` when nothing to plot."""
    rows = [r for r in rows if metric in r.stats]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from callbacks._util import atomic_write_bytes

    m = METRICS[metric]
    k = 100.0 if m.percent else 1.0
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(4.0, 1.0 + 0.9 * max(
        sum(r.dataset == d for r in rows) for d in datasets)) * len(datasets), 3.6), squeeze=False, dpi=100)
    for ax, d in zip(axes[0], datasets):
        group = [r for r in rows if r.dataset == d]
        labels = [r.method + (f"\n{r.budget}" if len({g.budget for g in group}) > 1 else "") for r in group]
        means = [r.stats[metric][0] * k for r in group]
        errs = [(r.stats[metric][1] or 0.0) * k for r in group]
        ax.bar(range(len(group)), means, yerr=errs, capsize=3, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(group)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(d, fontsize=10)
        ax.set_ylabel(f"{m.label} ({'higher' if m.higher_is_better else 'lower'} is better)", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def build(records: Sequence[Record], metric: str = "modes", out: Optional[Path] = None,
          title: str = "Leaderboard", note: str = "") -> str:
    """Aggregate, sort and render; with ``out``, write ``<out>.md``, ``<out>.csv``, ``<out>.png``.

    Returns the Markdown.
    """
    rows = sort_rows(aggregate(records), metric)
    excluded = sum(not r.complete for r in records)
    if excluded:
        note = (note + " " if note else "") + f"{excluded} incomplete run(s) excluded."
    md = to_markdown(rows, metric, title=title, note=note)
    if out is not None:
        from callbacks._util import atomic_write_bytes

        out = Path(out)
        atomic_write_bytes(out.with_suffix(".md"), md.encode())
        atomic_write_bytes(out.with_suffix(".csv"), to_csv(rows).encode())
        plot_png(rows, metric, out.with_suffix(".png"))
        for suffix in (".md", ".csv", ".png"):  # atomic writes create 0600 temp files; these are shared outputs
            if out.with_suffix(suffix).exists():
                os.chmod(out.with_suffix(suffix), 0o644)
    return md


# ---------------------------------------------------------------------------------------------- curves
CURVE_METRICS = ("eval/modes", "eval/hq", "eval/kl", "eval/w2", "eval/fid")


def load_curves(folder: Path) -> Dict[Tuple[str, str], List[List[dict]]]:
    """``{(data, method): [curve of each seed]}`` from the records ``folder/<data>/<method>-s<seed>.json``
    (:func:`zoo.anytime.load_records`; each curve as a figure draws it, :func:`zoo.anytime.drawn_curve`)."""
    from zoo.anytime import drawn_curve, load_records

    out: Dict[Tuple[str, str], List[List[dict]]] = {}
    for rec in load_records(Path(folder)):
        if rec.get("method") and rec.get("data"):
            out.setdefault((str(rec["data"]), str(rec["method"])), []).append(drawn_curve(rec))
    return out


def median_curves(curves: Sequence[Sequence[dict]], key: str) -> Tuple[List[int], List[float], List[float]]:
    """(steps, median of ``key``, median wall-clock seconds) over the seeds' curves, at every generator step that
    all of them evaluated and that reports ``key`` (:func:`zoo.anytime.curve_band` without the band)."""
    from zoo.anytime import curve_band

    steps, med, _, _, wall = curve_band(curves, key)
    return steps, med, wall


def log_curves_wandb(curves: Mapping[Tuple[str, str], List[List[dict]]], project: str, *,
                     name: str = "leaderboard-curves", wandb_dir: Optional[str] = None) -> Dict[str, Any]:
    """Log one W&B line plot per (dataset, metric, x axis) of the median curves; returns the plots by key."""
    import wandb

    run = wandb.init(project=project, name=name, dir=wandb_dir, job_type="leaderboard",
                     config={"series": sorted(f"{d}/{m} ({len(c)} seeds)" for (d, m), c in curves.items())})
    plots: Dict[str, Any] = {}
    try:
        for data in sorted({d for d, _ in curves}):
            methods = sorted(m for d, m in curves if d == data)
            for key in CURVE_METRICS:
                series = [(m, *median_curves(curves[(data, m)], key)) for m in methods]
                series = [t for t in series if t[1]]
                if not series:
                    continue
                short = key.split("/", 1)[1]
                for xname, xi in (("generator steps", 1), ("wall-clock seconds", 3)):
                    tag = f"curves/{data}/{short}_vs_{'steps' if xi == 1 else 'seconds'}"
                    plots[tag] = wandb.plot.line_series(
                        xs=[t[xi] for t in series], ys=[t[2] for t in series], keys=[t[0] for t in series],
                        title=f"{data}: {short} (median over seeds) vs {xname}", xname=xname)
        run.log(plots)
    finally:
        run.finish()
    return plots


def main(argv: Optional[List[str]] = None) -> str:
    p = argparse.ArgumentParser(prog="python -m zoo.leaderboard", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder searched for results.json (default: runs)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None,
                   help="read the runs of this W&B project through wandb.Api() (online) instead of local files")
    p.add_argument("--metric", default="modes", choices=sorted(METRICS), help="sort key (default: modes)")
    p.add_argument("--summary", default="last", choices=("last", "best"),
                   help="W&B only: final value (default, as results.json) or best value over training")
    p.add_argument("--out", default="docs/leaderboard",
                   help="output prefix: writes <out>.md, <out>.csv, <out>.png (default: docs/leaderboard)")
    p.add_argument("--curves", metavar="DIR", default=None,
                   help="anytime-curve records (<DIR>/<data>/<method>-s<seed>.json, e.g. "
                        "docs/results/reproduction/runs) to log as W&B line plots with --log_wandb")
    p.add_argument("--log_wandb", metavar="PROJECT", default=None,
                   help="with --curves: log the median curves to this W&B project (WANDB_MODE=offline works)")
    args = p.parse_args(argv)
    if args.curves or args.log_wandb:
        if not (args.curves and args.log_wandb):
            print("error: --curves and --log_wandb go together: --curves DIR --log_wandb PROJECT", file=sys.stderr)
            raise SystemExit(2)
        curves = load_curves(Path(args.curves))
        if not curves:
            print(f"error: no curve records under {args.curves} (expected <data>/<method>-s<seed>.json)",
                  file=sys.stderr)
            raise SystemExit(2)
        plots = log_curves_wandb(curves, args.log_wandb)
        msg = f"[zoo] leaderboard: {len(plots)} line plots of {len(curves)} (dataset, method) curves logged to W&B"
        print(msg)
        return msg
    try:
        if args.out:
            folder = Path(args.out).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"cannot write the leaderboard under {folder} ({err.strerror or err}): "
                                  "set --out to a writable path prefix") from None
        if args.wandb:
            records = load_wandb(args.wandb, summary=args.summary)
            source = f"W&B project `{args.wandb}` ({args.summary} values)"
        else:
            records = load_local(Path(args.runs_dir))
            source = f"`{args.runs_dir}/**/results.json` (final values)"
        md = build(records, args.metric, Path(args.out) if args.out else None, note=f"Source: {source}.")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(md)
    if args.out:
        print(f"[zoo] leaderboard: {Path(args.out).with_suffix('.md')} .csv .png", file=sys.stderr)
    return md


if __name__ == "__main__":
    main()

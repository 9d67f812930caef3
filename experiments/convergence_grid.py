"""The convergence grid (issue 18): every method, every seed, trained to a budget where its curve has flattened,
with an anytime quality curve, recorded in small committed JSON files.

    OMP_NUM_THREADS=1 python experiments/reproduction.py run   [--data ring8 grid25] [--methods ...] [--seeds 0 1 2 3 4]
                                                               [--jobs 2]
    python experiments/reproduction.py write                  # the report, from the committed records alone

**Protocol** (one definition, :mod:`zoo.anytime`, shared with ``zoo.compare --against zoo``): each run is an ordinary
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

**Plateau.** Read on window medians (:func:`zoo.anytime.window_medians`): per seed the median of its evaluations
over the last doubling (cap/2, cap] against the one before (cap/4, cap/2]; the seeds' median mode count may move by
at most :data:`PLATEAU_MODES` and the median HQ by at most :data:`PLATEAU_HQ` points; a method that misses it is
marked "still moving at its cap" in the table. On this grid's log2 schedule each window holds one evaluation (8,000
and 16,000 steps), so the rule compares two snapshots.

**Probe and dense grid.** ``probe`` trains single seeds past the cap on the same protocol (records in ``probe/``).
``window`` is the dense grid: the same runs to :data:`WINDOW_CAP` generator steps with an evaluation every
:data:`WINDOW_EVERY` (``linear`` schedule), 5 seeds of every method on ring8 and grid25 (records in ``window/``,
resumable like the grid's), where the window medians hold 16 and 8 evaluations and single-evaluation dips no longer
decide the plateau.

**Before launching** (any of ``run``, ``probe``, ``window``): ``--dry-run`` prints the runs still to do and their cost
projected from the records already in the folder (:func:`plan`: median CPU seconds per cell, the wall-clock of
``--jobs`` runs at a time); every launch prints the same plan first.
"""

from __future__ import annotations

import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduction_grid import CONFIG_PATHS as _SHORT_GRID_CONFIGS, LABELS, METHODS  # noqa: E402  (one definition)
#: the protocol (caps 16,000 generator steps; evaluations at 250·2^k; plateau thresholds) is zoo.anytime's, shared
#: with ``python -m zoo.compare --against zoo``
from zoo.anytime import CAPS, EVERY, PLATEAU_HQ, PLATEAU_MODES, load_records, plot, record_path as _record_path  # noqa: E402,E501
from zoo.anytime import curve_band, drawn_curve, median_moves, range_cell, run_anytime, save_figure, summary  # noqa: E402,E501
from zoo.anytime import is_dense, protocol, table, window_medians, within_plateau  # noqa: E402

DATASETS = ["ring8", "grid25", "stacked_digits"]
SEEDS = [0, 1, 2, 3, 4]
SEEDS_BY_DATA = {"stacked_digits": [0, 1, 2]}  # the minimum there (each run costs 5-10x a 2-D run)


def seeds_for(data: str, seeds: Optional[Sequence[int]] = None) -> List[int]:
    """The seeds of ``data``: the given ones, else the grid's default for it."""
    return list(seeds) if seeds is not None else SEEDS_BY_DATA.get(data, SEEDS)


#: configs that are not at configs/<method>/<data>.yaml (stacked digits: SN/SR-GAN's fragile configs and AE-OT's
#: CPU config, as in the short grid)
CONFIG_PATHS: Dict[str, str] = dict(_SHORT_GRID_CONFIGS)

OUT = ROOT / "docs" / "results" / "reproduction"
RECORDS = OUT / "runs"
RUNS = ROOT / "runs" / "convergence"
#: the plateau probe: single seeds trained past the grid's cap (same protocol otherwise), to find where the curves
#: that are still moving at the cap flatten; its records are kept apart from the grid's
PROBE_RECORDS = OUT / "probe"
PROBE_RUNS = ROOT / "runs" / "probe"
PROBE_CAP = 64000
#: the dense grid: the grid's runs evaluated every WINDOW_EVERY generator steps (linear schedule) to WINDOW_CAP, so
#: that the plateau rule reads medians of many evaluations instead of two snapshots (cap/2, cap)
WINDOW_RECORDS = OUT / "window"
WINDOW_RUNS = ROOT / "runs" / "window"
WINDOW_CAP = 32000
WINDOW_EVERY = 1000
#: once a dataset's dense grid is complete it becomes the grid (``flip``): its dense records move to RECORDS and its
#: 16,000-step log2 records here, where the dense runs' same-trajectory check still reads them
LOG2_RECORDS = OUT / "log2"
#: the caps of the log2 grid (the plateau probe reads its doublings from them, whatever the grid is now)
LOG2_CAPS = {"ring8": 16000, "grid25": 16000, "stacked_digits": 8000}
#: methods whose training schedule depends on the cap, so that a run to another cap trains differently from its first
#: step and is not expected to repeat the log2 record of the same seed (why, in words)
CAP_DEPENDENT = {"aeot": "its autoencoder's learning rate decays (cosine) over max_gen_steps, the cap"}


def record_path(data: str, method: str, seed: int, records: Path = RECORDS) -> Path:
    return _record_path(records, data, method, seed)


def run_one(method: str, data: str, seed: int, runs: Path = RUNS, records: Path = RECORDS,
            cap: Optional[int] = None, every: Optional[int] = None, schedule: Optional[str] = None) -> Optional[Path]:
    """One grid run and its record (:func:`zoo.anytime.run_anytime`; ``cap`` None: the grid's cap of ``data``;
    ``every``/``schedule`` None: the grid's log2 evaluations)."""
    return run_anytime(method, data, seed, runs, records, cap=cap, config_paths=CONFIG_PATHS or None, root=ROOT,
                       every=every, schedule=schedule)


def run(datasets: Sequence[str], methods: Sequence[str], seeds: Optional[Sequence[int]], jobs: int = 2,
        runs: Path = RUNS, records: Path = RECORDS, cap: Optional[int] = None, every: Optional[int] = None,
        schedule: Optional[str] = None, dry_run: bool = False) -> None:
    """Every (seed, data, method) without a record, ``jobs`` at a time (seeds first: complete seeds land first;
    ``seeds=None``: each dataset's default, :func:`seeds_for`; ``cap`` None: each dataset's grid cap;
    ``every``/``schedule`` None: the grid's evaluation schedule). Prints :func:`plan` first; ``dry_run``: the plan
    and the runs to do, nothing trained."""
    all_seeds = sorted({s for d in datasets for s in seeds_for(d, seeds)})
    todo = [(m, d, s) for s in all_seeds for d in datasets for m in methods
            if s in seeds_for(d, seeds) and not record_path(d, m, s, records).exists()]
    print(f"[convergence] {len(todo)} runs to do{f' to {cap:,} generator steps' if cap else ''}, {jobs} at a time; "
          f"records in {records}", flush=True)
    for line in plan(todo, load_records(records), jobs):  # no folder yet: no records, nothing priced
        print(f"[convergence] {line}", flush=True)
    if dry_run:
        for m, d, s in todo:
            print(f"[convergence] to run: {d} {m} s{s}", flush=True)
        return
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        list(pool.map(lambda j: run_one(*j, runs=runs, records=records, cap=cap, every=every, schedule=schedule),
                      todo))


def plan_cost(todo: Sequence[Tuple[str, str, int]], recs: Sequence[dict], jobs: int = 2) -> dict:
    """The cost of the runs still to do, from the records already made under the same protocol (the same folder):
    each run is priced at the median ``fit`` CPU seconds of its (method, data) cell's records (one torch thread, so
    CPU seconds are machine time); a cell without a record at the same method's median on the other datasets of
    these records (on the 2-D sets the cost per run depends on the method, not the mixture); a method without any
    record is not priced. The wall-clock is that of ``jobs`` runs at a time taken in ``todo`` order, each started
    when a worker frees up (the pool's own order: the makespan of greedy list scheduling), on ≥ ``jobs`` free cores.

    Returns ``{"priced": n, "cpu_s": Σ, "wall_s": makespan, "notes": [the cells priced from another dataset and
    those not priced, in words]}``."""
    import heapq

    recs = list(recs)
    price, borrowed = {}, set()
    for m, d, _ in todo:
        if (m, d) not in price:
            xs = _cpu(recs, m, d)
            if not xs:
                xs = [c for other in sorted({r["data"] for r in recs} - {d}) for c in _cpu(recs, m, other)]
                if xs:
                    borrowed.add(f"{d} {LABELS.get(m, m)}")
            price[(m, d)] = statistics.median(xs) if xs else None
    known = [price[(m, d)] for m, d, _ in todo if price[(m, d)] is not None]
    workers = [0.0] * max(1, int(jobs))
    for c in known:  # greedy list scheduling: the next run goes to the first worker to free up
        heapq.heappush(workers, heapq.heappop(workers) + c)
    unknown = sorted({f"{d} {LABELS.get(m, m)}" for m, d, _ in todo if price[(m, d)] is None})
    notes = ([f"priced from the method's records on the other datasets: {', '.join(sorted(borrowed))}"]
             if borrowed else []) \
        + ([f"not priced (no record of the method yet): {len(todo) - len(known)} runs of {', '.join(unknown)}"]
           if unknown else [])
    return {"priced": len(known), "cpu_s": sum(known), "wall_s": max(workers), "notes": notes}


def plan(todo: Sequence[Tuple[str, str, int]], recs: Sequence[dict], jobs: int = 2) -> List[str]:
    """:func:`plan_cost` in words (what a launch prints before training)."""
    if not todo:
        return ["nothing to run: every run has its record"]
    c = plan_cost(todo, recs, jobs)
    line = (f"projected from the median CPU s per (method, data) of the {len(recs)} records here: {c['priced']} runs, "
            f"{c['cpu_s'] / 3600:.2f} CPU h, about {c['wall_s'] / 3600:.2f} h of wall-clock at {max(1, int(jobs))} "
            "at a time")
    return ["; ".join([line] + c["notes"])]


def probe(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], cap: int = PROBE_CAP, jobs: int = 2,
          runs: Path = PROBE_RUNS, records: Path = PROBE_RECORDS, dry_run: bool = False) -> None:
    """The plateau probe: :func:`run` to ``cap`` generator steps (the grid's protocol otherwise: log2 evaluations,
    the same configs and evaluation), its records and run folders kept apart from the grid's."""
    run(datasets, methods, seeds, jobs, runs, records, cap=cap, every=EVERY, schedule="log2", dry_run=dry_run)


def window(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], cap: int = WINDOW_CAP,
           every: int = WINDOW_EVERY, jobs: int = 2, runs: Path = WINDOW_RUNS, records: Path = WINDOW_RECORDS,
           dry_run: bool = False) -> None:
    """The dense grid: :func:`run` to ``cap`` with an evaluation every ``every`` generator steps (``linear``
    schedule; the grid's protocol otherwise), its records and run folders kept apart from the grid's. The
    evaluations draw from their own seeded generators, so the training trajectory is the grid's: at the grid's
    evaluation steps the dense curve repeats the grid's record of the same seed (:func:`window_lines` checks it)."""
    if cap % every:
        raise SystemExit(f"--cap {cap} is not a multiple of --every {every}: the last evaluation would miss the cap")
    flipped = [d for d in datasets if protocol(d, cap, every, "linear") == protocol(d)]
    if flipped:  # their dense records are the grid's now (flip): ``run`` finishes them, in RECORDS
        print(f"[convergence] {', '.join(flipped)}: the grid itself is dense now (records in {RECORDS}); "
              f"`reproduction.py run --data {' '.join(flipped)}` trains any missing run", flush=True)
    datasets = [d for d in datasets if d not in flipped]
    if datasets:
        run(datasets, methods, seeds, jobs, runs, records, cap=cap, every=every, schedule="linear", dry_run=dry_run)


def flip(data: str, records: Path = RECORDS, window_records: Path = WINDOW_RECORDS,
         log2_records: Path = LOG2_RECORDS) -> List[Tuple[Path, Path]]:
    """Make ``data``'s complete dense grid its grid: its log2 records move from ``records/<data>`` to
    ``log2_records/<data>``, then its dense records from ``window_records/<data>`` to ``records/<data>`` (each file
    by an atomic rename; nothing is deleted). Refused, in one line, unless :data:`zoo.anytime.CAPS`,
    ``EVERY_BY_DATA`` and ``SCHEDULE_BY_DATA`` already give ``data`` the dense records' protocol (so that ``run``
    and ``zoo.compare --against zoo`` then train on it) and every method × seed of the grid has a complete dense
    record. Returns the moves made (source, destination)."""
    want = protocol(data)
    if want["schedule"] != "linear":
        raise SystemExit(f"flip {data}: zoo.anytime still gives {data} the log2 protocol; set CAPS[{data!r}] = "
                         f"{WINDOW_CAP}, EVERY_BY_DATA[{data!r}] = {WINDOW_EVERY} and SCHEDULE_BY_DATA[{data!r}] = "
                         "'linear' first")
    dense = {(r["method"], int(r["seed"])): r for r in load_records(Path(window_records)) if r["data"] == data}
    missing = [f"{m} s{s}" for m in METHODS for s in seeds_for(data) if (m, s) not in dense]
    bad = [f"{m} s{s}" for (m, s), r in sorted(dense.items())
           if r.get("protocol") != want or r.get("status") != "complete"]
    if missing or bad:
        raise SystemExit(f"flip {data}: the dense grid is not complete ({len(missing)} runs without a record"
                         + (f": {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}" if missing else "")
                         + (f"; not complete or another protocol: {', '.join(bad)}" if bad else "")
                         + "): `reproduction.py window` finishes it")
    to_log2 = [(p, Path(log2_records) / data / p.name) for p in sorted((Path(records) / data).glob("*.json"))]
    to_grid = [(p, Path(records) / data / p.name) for p in sorted((Path(window_records) / data).glob("*.json"))]
    clash = [str(dst) for _, dst in to_log2 if dst.exists()]
    if clash:  # checked before anything moves (the dense records' destinations are the log2 ones' sources)
        raise SystemExit(f"flip {data}: {clash[0]} exists already; move it aside and flip again")
    moves = to_log2 + to_grid
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    return moves


def check_grid(recs: Sequence[dict]) -> None:
    """One-line refusal when the grid's records of a dataset were made under another protocol than the grid's
    (:func:`zoo.anytime.protocol`), e.g. after a dataset's protocol was switched to dense without ``flip``."""
    grid = {d: protocol(d) for d in CAPS}
    for r in recs:
        want = grid.get(r["data"])
        if r.get("protocol") and want is not None and r["protocol"] != want:
            raise SystemExit(f"the grid record {r['data']}/{r['method']}-s{r['seed']}.json was made to "
                             f"{r['protocol'].get('cap')} steps ({r['protocol'].get('schedule')}), the grid of "
                             f"{r['data']} is {want['cap']} ({want['schedule']}): `reproduction.py flip --data "
                             f"{r['data']}` moves the records, or restore zoo.anytime's protocol")


def _evaluations(rec: dict) -> Dict[int, dict]:
    """The record's evaluation rows (those with a mode count) up to its cap, by generator step."""
    return {int(r["gen_step"]): r for r in rec["curve"] if "eval/modes" in r and int(r["gen_step"]) <= rec["cap"]}


def flat_from(rec: dict) -> Optional[int]:
    """The first evaluation step s (≥ 1,000) from which the curve stays within the plateau rule: for every pair of
    evaluations (t, 2t) with t ≥ s up to the cap, |Δ modes| ≤ the dataset's threshold and |Δ HQ| ≤ PLATEAU_HQ;
    ``None`` when even the last pair (cap/2, cap) moves more."""
    rows = _evaluations(rec)
    steps = sorted(s for s in rows if s >= 1000 and 2 * s in rows)

    def ok(t: int) -> bool:
        a, b = rows[t], rows[2 * t]
        return within_plateau(rec["data"], b["eval/modes"] - a["eval/modes"],
                              b.get("eval/hq", 0.0) - a.get("eval/hq", 0.0))

    first = None
    for t in reversed(steps):  # the longest tail of pairs that all hold
        if not ok(t):
            break
        first = t
    return first


def probe_lines(recs: List[dict]) -> List[str]:
    """The plateau probe's table: per record the modes and HQ at each doubling from the grid's cap/4 to the probe's
    cap, and the step from which it is flat (:func:`flat_from`)."""
    if not recs:
        return []
    steps = sorted({int(r["gen_step"]) for rec in recs for r in rec["curve"]
                    if "eval/modes" in r and LOG2_CAPS.get(rec["data"], 0) // 4 <= int(r["gen_step"]) <= rec["cap"]})
    L = ["### Plateau probe: past the cap, one seed", "",
         "Single runs on the grid's protocol trained past its cap "
         "(`OMP_NUM_THREADS=1 python experiments/reproduction.py probe --data D --methods M --seeds 0`; records in "
         "`docs/results/reproduction/probe/`), to find where the curves still moving at the cap flatten. Cells: "
         "modes / HQ % at each evaluation; *flat from* s: every later doubling (t → 2t, t ≥ s) moves by ≤ "
         f"{PLATEAU_MODES:g} mode (stacked digits 10) and ≤ {PLATEAU_HQ * 100:g} HQ points.", "",
         "| data | method | seed | " + " | ".join(f"{s:,}" for s in steps) + " | flat from |",
         "|---" * (len(steps) + 4) + "|"]
    for rec in sorted(recs, key=_order):
        rows = {int(r["gen_step"]): r for r in rec["curve"] if "eval/modes" in r}
        cells = [(f"{rows[s]['eval/modes']:g} / {100 * rows[s].get('eval/hq', float('nan')):.0f}" if s in rows else "")
                 for s in steps]
        f = flat_from(rec)
        verdict = f"{f:,}" if f else f"not flat at {rec['cap']:,}"
        L.append(f"| {rec['data']} | {LABELS.get(rec['method'], rec['method'])} | {rec['seed']} | "
                 + " | ".join(cells) + f" | {verdict} |")
    flat = [rec for rec in recs if flat_from(rec)]
    L += ["", f"Flat by the probe's cap: **{len(flat)} of {len(recs)}** runs"
          + (f" ({', '.join(_who(r) for r in flat)})" if flat else "") + "."]
    moves = probe_moves(recs)
    if moves:
        def say(key: str, pick, unit: str) -> str:
            d, rec, t = pick(moves, key=lambda m: m[0][key])
            return f"{d[key]:+.0f} {unit} ({_who(rec)}, {t:,} → {2 * t:,})"
        L += ["Past the grid's cap, between consecutive evaluations of one run (t → 2t) HQ moved by "
              f"{say('hq', min, 'points')} to {say('hq', max, 'points')}, the mode count by "
              f"{say('modes', min, 'modes')} to {say('modes', max, 'modes')}."]
    return L + [""]


def _order(rec: dict) -> tuple:
    """Records in report order: dataset, method (the grid's order), seed."""
    return (DATASETS.index(rec["data"]) if rec["data"] in DATASETS else 9,
            METHODS.index(rec["method"]) if rec["method"] in METHODS else 99, rec["seed"])


def _who(rec: dict) -> str:
    return f"{LABELS.get(rec['method'], rec['method'])} {rec['data']} s{rec['seed']}"


def probe_moves(recs: List[dict]) -> List[tuple]:
    """Every doubling t → 2t past the log2 grid's cap (t ≥ LOG2_CAPS[data]) within each probe run:
    ``({"modes": Δ modes, "hq": Δ HQ points}, record, t)``."""
    out = []
    for rec in recs:
        rows = _evaluations(rec)
        for t in sorted(rows):
            if t >= LOG2_CAPS.get(rec["data"], 0) and 2 * t in rows:
                a, b = rows[t], rows[2 * t]
                out.append(({"modes": b["eval/modes"] - a["eval/modes"],
                             "hq": 100 * (b.get("eval/hq", 0.0) - a.get("eval/hq", 0.0))}, rec, t))
    return out


def window_spread(rec: dict) -> Optional[dict]:
    """A dense run's last half, the evaluations t with cap/2 ≤ t ≤ cap: their count ``n``, the min / median / max of
    the mode count and of HQ (points), and the doubling rule's two snapshots (cap/2 → cap) as ``d_modes``, ``d_hq``.
    Also the *window medians* (:func:`zoo.anytime.window_medians`): the median mode count and HQ over the last
    doubling (cap/2, cap] against the one before it (cap/4, cap/2], as ``median_moves`` = (Δ modes, Δ HQ points) —
    the plateau rule read on windows of evaluations instead of two snapshots. ``None`` without an evaluation at both
    cap/2 and the cap."""
    rows = _evaluations(rec)
    cap = int(rec["cap"])
    if cap not in rows or cap // 2 not in rows:
        return None
    last_half = [rows[t] for t in sorted(rows) if cap // 2 <= t <= cap]
    modes = [float(r["eval/modes"]) for r in last_half]
    hq = [100 * float(r.get("eval/hq", 0.0)) for r in last_half]

    moves = median_moves([window_medians(rec)])  # one seed: the medians' own difference
    return {"n": len(last_half), "modes": (min(modes), statistics.median(modes), max(modes)),
            "hq": (min(hq), statistics.median(hq), max(hq)),
            "d_modes": modes[-1] - modes[0], "d_hq": hq[-1] - hq[0],
            "median_moves": (moves[0], 100 * moves[1]) if moves else None}


def same_trajectory(dense: dict, others: Sequence[dict]) -> str:
    """Whether the dense run repeats the log2 records of the same (method, data, seed) at their common evaluation
    steps (mode count and HQ to the recorded 6 decimals): "equal at 1,000–16,000 (5 evaluations)", "differs from t
    (log2 record m / h %, dense m' / h' %)" at the first step where they part, or "no log2 record"."""
    mine = _evaluations(dense)
    theirs: Dict[int, dict] = {}
    for rec in others:
        if (rec["method"], rec["data"], rec["seed"]) == (dense["method"], dense["data"], dense["seed"]):
            theirs.update(_evaluations(rec))
    common = sorted(set(mine) & set(theirs))
    if not common:
        return "no log2 record"
    for t in common:
        a, b = theirs[t], mine[t]
        if a["eval/modes"] != b["eval/modes"] or a.get("eval/hq") != b.get("eval/hq"):
            return (f"differs from {t:,} (log2 record {a['eval/modes']:g} / {100 * a.get('eval/hq', 0):.2f} %, "
                    f"dense {b['eval/modes']:g} / {100 * b.get('eval/hq', 0):.2f} %)")
    return f"equal at {common[0]:,}–{common[-1]:,} ({len(common)} evaluations)"


def _power_of_two(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def _cells(recs: List[dict]) -> List[Tuple[str, str, List[dict]]]:
    """(data, method, its records) in report order."""
    out: Dict[Tuple[str, str], List[dict]] = {}
    for r in sorted(recs, key=_order):
        out.setdefault((r["data"], r["method"]), []).append(r)
    return [(d, m, rs) for (d, m), rs in out.items()]


def window_plot(recs: List[dict], path: Path) -> Optional[Path]:
    """Modes and HQ against generator steps (linear axis, one column per dataset): per method the median over its
    dense seeds with the min–max band, the log2 snapshots (250·2^k) marked; the last doubling shaded; atomic."""
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.anytime import PALETTE

    datasets = [d for d in DATASETS if any(r["data"] == d for r in recs)]
    fig, axes = plt.subplots(2, len(datasets), figsize=(6.5 * len(datasets), 7), squeeze=False)
    for j, data in enumerate(datasets):
        for data_, method, rs in _cells(recs):
            if data_ != data:
                continue
            color = PALETTE[METHODS.index(method) % len(PALETTE)] if method in METHODS else "black"
            label = f"{LABELS.get(method, method)} ({len(rs)} seed{'s' if len(rs) > 1 else ''})"
            for i, (key, scale) in enumerate((("eval/modes", 1.0), ("eval/hq", 100.0))):
                steps, med, lo, hi, _ = curve_band([drawn_curve(r) for r in rs], key)
                if not steps:
                    continue
                ax = axes[i][j]
                ax.plot(steps, [scale * v for v in med], lw=1.3, color=color, label=label)
                ax.fill_between(steps, [scale * v for v in lo], [scale * v for v in hi], color=color, alpha=0.12,
                                lw=0)
                snaps = [k for k, t in enumerate(steps) if t % EVERY == 0 and _power_of_two(t // EVERY)]
                ax.plot([steps[k] for k in snaps], [scale * med[k] for k in snaps], "o", ms=4, color=color)
        cap = max(r["cap"] for r in recs if r["data"] == data)
        every = next(r for r in recs if r["data"] == data).get("every", WINDOW_EVERY)
        for i in range(2):
            axes[i][j].axvspan(cap // 2, cap, color="0.93", zorder=0)
            axes[i][j].grid(alpha=0.3)
        axes[0][j].set_title(f"{data}: every {every:,} steps; median over seeds, band min–max; dots: log2 "
                             "snapshots", fontsize=9)
        axes[0][j].set_ylabel("modes covered")
        axes[1][j].set_ylabel("HQ %")
        axes[1][j].set_xlabel("generator steps (shaded: the last doubling, the plateau window)")
        axes[0][j].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def window_cell(rs: List[dict], log2_recs: Sequence[dict] = ()) -> Optional[dict]:
    """One (method, data) of the dense grid over its seeds: :func:`zoo.anytime.summary` (quality at the budget and
    the plateau check on window medians), the two-snapshot rule read on the same runs (median over seeds at the cap
    minus that at cap/2: ``snap`` = (Δ modes, Δ HQ points)), the median over seeds of each run's last-half spread
    (max − min: ``spread`` = (modes, HQ points), :func:`window_spread`), how many seeds repeat their log2 record
    (``same`` of ``compared``, :func:`same_trajectory`) and the median ``fit`` CPU seconds."""
    spreads = [window_spread(r) for r in rs]
    if not rs or any(w is None for w in spreads):
        return None
    method, data = rs[0]["method"], rs[0]["data"]
    s = summary(rs, method, data)
    snap = median_moves([(e[int(r["cap"])], e[int(r["cap"]) // 2]) for r, e in ((r, _evaluations(r)) for r in rs)])
    # a method whose schedule is set by the cap trains differently at another cap: nothing to compare
    trajectories = [] if method in CAP_DEPENDENT else [same_trajectory(r, log2_recs) for r in rs]
    cpu = _cpu(rs, method, data)
    return {"summary": s, "snap": (snap[0], 100 * snap[1]),
            "spread": (statistics.median(w["modes"][2] - w["modes"][0] for w in spreads),
                       statistics.median(w["hq"][2] - w["hq"][0] for w in spreads)),
            "same": sum(t.startswith("equal") for t in trajectories),
            "compared": sum(t != "no log2 record" for t in trajectories),
            "differs": [f"s{r['seed']}: {t}" for r, t in zip(rs, trajectories) if t.startswith("differs")],
            "cpu_s": statistics.median(cpu) if cpu else None}


def window_cost(recs: List[dict]) -> str:
    """What the dense grid has cost and what is left: the recorded ``fit`` CPU hours, and the runs of the full grid
    (every method × ring8, grid25 × seeds 0–4) without a record priced by :func:`plan` (median CPU seconds of each
    cell's records, the method's records on the other dataset for a cell without one; two runs at a time)."""
    spent = sum(float(r.get("cpu_s") or 0) for r in recs)
    have = {(r["method"], r["data"], int(r["seed"])) for r in recs}
    todo = [(m, d, s) for s in SEEDS for d in ("ring8", "grid25") for m in METHODS if (m, d, s) not in have]
    out = f"; {spent / 3600:.2f} CPU hours recorded"
    if not todo:
        return out
    c = plan_cost(todo, recs, 2)
    out += (f"; still to run: {len(todo)} runs, about {c['cpu_s'] / 3600:.1f} CPU hours = "
            f"{c['wall_s'] / 3600:.1f} h of the 2-core machine, two runs at a time (each run priced at the median "
            "CPU seconds of its cell's records" + "".join(f"; {n}" for n in c["notes"]) + ")")
    return out


def window_lines(recs: List[dict], log2_recs: Sequence[dict] = (), fig_dir: Optional[Path] = None,
                 report: Optional[Path] = None) -> List[str]:
    """The dense grid's section: per (method, data) over its seeds the quality at the budget, the plateau read on
    window medians, the two-snapshot rule and the last-half spread beside it, and whether the runs repeat the log2
    records of their seeds (:func:`window_cell`); the counts of cells flat by each reading; how many records of the
    grid exist; with ``fig_dir`` the figure (:func:`window_plot`)."""
    if not recs:
        return []
    total = len(METHODS) * 2 * len(SEEDS)
    L = [f"### The dense grid: an evaluation every {WINDOW_EVERY:,} steps to {WINDOW_CAP:,}", "",
         "The 16,000-step log2 grid reads the plateau from two snapshots (cap/2 and the cap). Its curves are far "
         "noisier between them than that rule assumes, and several methods still gain HQ at 16,000. The dense grid "
         f"trains the same runs (protocol, configs and seeds of the grid) to {WINDOW_CAP:,} generator steps with an "
         f"evaluation every {WINDOW_EVERY:,} (`OMP_NUM_THREADS=1 python experiments/reproduction.py window`, or "
         "`--data D --methods M --seeds S` for a part; records in `docs/results/reproduction/window/`, resumed "
         "across sessions like the grid's; once a dataset's are complete they are its grid's, in `runs/`). Its plateau rule reads **window medians**: per seed the median of the "
         f"evaluations over the last doubling ({WINDOW_CAP // 2:,}, {WINDOW_CAP:,}] and over the one before "
         f"({WINDOW_CAP // 4:,}, {WINDOW_CAP // 2:,}]; the seeds' median modes may move by ≤ {PLATEAU_MODES:g} and "
         f"median HQ by ≤ {PLATEAU_HQ * 100:g} points (the grid's thresholds; on the log2 schedule the same rule "
         "reads the two snapshots), and the median mode count may move by no more between the last two quarters "
         f"({WINDOW_CAP // 2:,}, {3 * WINDOW_CAP // 4:,}] and ({3 * WINDOW_CAP // 4:,}, {WINDOW_CAP:,}] (a run that "
         "takes off or collapses late is not flat; HQ over a quarter's 8 evaluations is too noisy to judge). "
         "Quality at the budget: per seed the median over the last doubling, then median (min–max) over seeds. "
         "Beside it: the two-snapshot rule on the same runs, and the median over seeds of a run's spread "
         "(max − min) over its last half. *Same as log2*: seeds whose dense run repeats, at the common steps, the "
         "log2 record of the same seed (the evaluations draw from their own seeded generators, so "
         "they should).", "",
         f"Records so far: {len(recs)} of {total} (7 methods × {len(SEEDS)} seeds of ring8 and grid25)"
         + window_cost(recs) + ".", "",
         "| data | method | seeds | modes (median, min–max) | HQ % | KL | window medians: Δ modes, Δ HQ | flat? | "
         "two snapshots: Δ modes, Δ HQ | last-half spread: modes, HQ pts | same as log2 | CPU s (median) |",
         "|---" * 12 + "|"]
    cells = []
    for data, method, rs in _cells(recs):
        c = window_cell(rs, log2_recs)
        if c is None:
            continue
        s = c["summary"]
        cells.append((c, data, method))

        if "plateau" in s:
            dm, dh = s["delta"]
            moves, flat = f"{dm:+g}, {100 * dh:+.1f} pts", "yes" if s["plateau"] else "**no**"
            if "delta_late" in s and not within_plateau(data, s["delta_late"][0], 0.0):
                flat += f" (last quarter: {s['delta_late'][0]:+g} modes)"
        else:
            moves, flat = "–", "n/a (generator made after the cap)" if s.get("after_cap") else "–"
        L.append(f"| {data} | {LABELS.get(method, method)} | {','.join(map(str, s['seeds']))} | "
                 f"{range_cell(s, 'eval/modes')} | {range_cell(s, 'eval/hq', True, unit='')} | "
                 f"{range_cell(s, 'eval/kl')} | {moves} | {flat} | "
                 + (f"{c['snap'][0]:+g}, {c['snap'][1]:+.1f} pts | {c['spread'][0]:g}, {c['spread'][1]:.0f} | "
                    if "plateau" in s else "– | – | ")  # no generator before the cap: nothing to read there
                 + (f"{c['same']} of {c['compared']}" if method not in CAP_DEPENDENT else "– (schedule set by the cap)")
                 + " | " + (f"{c['cpu_s']:.0f}" if c["cpu_s"] else "–") + " |")
    if cells:
        def who(sel: List[tuple]) -> str:
            return f" ({', '.join(f'{LABELS.get(m, m)} {d}' for _, d, m in sel)})" if sel else ""

        checked = [x for x in cells if "plateau" in x[0]["summary"]]
        flat = [x for x in checked if x[0]["summary"]["plateau"]]
        rule = [x for x in checked if within_plateau(x[1], x[0]["snap"][0], x[0]["snap"][1] / 100)]
        tight = [x for x in checked if within_plateau(x[1], x[0]["spread"][0], x[0]["spread"][1] / 100)]
        L += ["", f"Flat by the window medians: **{len(flat)} of {len(checked)}** cells{who(flat)}; by the "
                  f"two-snapshot rule: {len(rule)} of {len(checked)}{who(rule)}; within the thresholds over the whole "
                  f"last half (median max − min): {len(tight)} of {len(checked)}{who(tight)}."]
        differs = [f"{LABELS.get(m, m)} {d} {x}" for c, d, m in cells for x in c["differs"]]
        if differs:
            L += ["", "Dense runs that part from their seed's log2 record: " + "; ".join(differs) + "."]
        for m, why in CAP_DEPENDENT.items():
            if any(mm == m for _, _, mm in cells):
                L += ["", f"{LABELS.get(m, m)}'s dense runs are not expected to repeat its log2 records: {why}, so a "
                          f"run to {WINDOW_CAP:,} steps trains differently from its first step on."]
        late = sorted({LABELS.get(m, m) for c, d, m in cells if c["summary"].get("after_cap")})
        if late:
            L += ["", f"{', '.join(late)}: the generator is made after the cap, so the figure draws the evaluations "
                      "before it (AE-OT: its autoencoder with a Gaussian prior on the codes, the baseline the method "
                      "improves on) and the final generator at the cap (`zoo.anytime.drawn_curve`)."]
    if fig_dir is not None:
        p = window_plot([r for c, d, m in cells for r in recs if (r["data"], r["method"]) == (d, m)],
                        Path(fig_dir) / "window.png")
        if p is not None:
            link = os.path.relpath(p, Path(report).parent) if report is not None else str(p)
            L += ["", f"![dense evaluations: modes and HQ every {WINDOW_EVERY:,} generator steps, median over seeds]"
                      f"({link})"]
    return L + [""]


def as_runs(recs: List[dict]) -> list:
    """The records as the report's :class:`reproduction_grid.Run` rows: each run's quality at its budget
    (:func:`zoo.anytime.plateau_value`: the final evaluation on the log2 schedule; AE-OT's after its OT solve), the
    run's generator steps and ``fit`` wall seconds, so §1–§4 of the report
    (mode table, verdicts, per-run table) read the convergence grid wherever it has records."""
    from reproduction_grid import Run

    from zoo.anytime import plateau_value

    out = []
    for r in recs:
        end = r["curve"][-1]
        metrics = {k: float(v) for k, v in end.items() if k.startswith("eval/") and v is not None}
        metrics.update(plateau_value(r))  # the last doubling's medians (= the final evaluation on the log2 schedule)
        out.append(Run(method=r["method"], data=r["data"], seed=int(r["seed"]), status=str(r.get("status")),
                       metrics=metrics,
                       gen_steps=r.get("gen_step", end.get("gen_step")), wall_s=r.get("wall_s"),
                       versions=dict(r.get("versions") or {}, git_commit=str(r.get("commit") or "")),
                       device={"platform": str(r.get("machine", "")).split(" ")[0],
                               "cpu_count": (str(r.get("machine", "")).partition("cpus=")[2].split(" ") or [""])[0],
                               "torch_threads": str(r.get("machine", "")).partition("threads=")[2] or "1",
                               "accelerator": "CPUAccelerator"},
                       path=f"{r['data']}/{r['method']}-s{r['seed']}.json"))
    return out


def protocol_text(data: str) -> str:
    """The grid's protocol of ``data`` in words (cap and evaluation schedule, :func:`zoo.anytime.protocol`)."""
    p = protocol(data)
    if p["schedule"] == "linear":
        return f"{p['cap']:,} generator steps, an evaluation every {p['every']:,} (the dense grid)"
    return f"{p['cap']:,} generator steps, evaluations at {p['every']}·2^k and at the end"


def section(recs: List[dict], fig_dir: Optional[Path] = None, report: Optional[Path] = None,
            probe_recs: Sequence[dict] = (), window_recs: Sequence[dict] = (),
            log2_recs: Sequence[dict] = ()) -> List[str]:
    """The report's convergence section (Markdown lines), from the records alone; with ``fig_dir`` the figures are
    written there and linked relative to ``report``. ``recs``: the grid's records (``runs/``: per dataset its
    protocol, log2 or, once flipped, dense); ``window_recs``: the dense grid's records not yet flipped;
    ``log2_recs``: the log2 records of flipped datasets (``log2/``)."""
    check_grid(recs)
    by_protocol: Dict[str, List[str]] = {}  # datasets sharing a protocol are named together
    for d in DATASETS:
        by_protocol.setdefault(protocol_text(d), []).append(d)
    L = ["## Convergence grid (issue 18): anytime curves to the plateau", "",
         "Each run trains to its dataset's cap and is evaluated on its schedule — "
         + "; ".join(f"{' and '.join(ds)}: {text}" for text, ds in by_protocol.items())
         + " (stacked digits stops earlier: its 26,000-sample "
         "mode count and FID cost more). A dataset's grid moves from the log2 schedule to the dense one once its "
         "dense grid (below) is complete (`python experiments/reproduction.py flip --data D`; its log2 records are "
         "kept in `docs/results/reproduction/log2/`). Records in `docs/results/reproduction/runs/` "
         "(`OMP_NUM_THREADS=1 python experiments/reproduction.py run`; figures and this section: "
         "`python experiments/reproduction.py write`). Plateau, read on window medians: per seed the median of its "
         "evaluations over the last doubling (cap/2, cap] against the one before (cap/4, cap/2] (one evaluation each "
         "on the log2 schedule, the two snapshots cap/2 and the cap; 16 and 8 on the dense one); the seeds' median "
         f"modes move by ≤ {PLATEAU_MODES:g} (stacked digits: ≤ 10 of 1000) and median HQ by ≤ "
         f"{PLATEAU_HQ * 100:g} points. A run's quality at its budget is its last window's median. Each record "
         "holds wall-clock and CPU seconds and the machine's load when the run started and ended (runs made beside "
         "other jobs are slower in wall-clock).", ""]
    have = {(r["method"], r["data"]) for r in recs}
    total = len(METHODS) * sum(len(seeds_for(d)) for d in DATASETS)
    L += [f"Records so far: {len(recs)} of {total} (7 methods × ({' + '.join(str(len(seeds_for(d))) for d in DATASETS)}) "
          f"seeds of {', '.join(DATASETS)}).", ""]
    for data in DATASETS:
        if not any(d == data for _, d in have):
            continue
        L += [f"### {data}", ""] + table(recs, data, LABELS)
        if fig_dir is not None:
            p = plot(recs, data, Path(fig_dir) / f"convergence_{data}.png", labels=LABELS)
            if p is not None:
                link = os.path.relpath(p, Path(report).parent) if report is not None else str(p)
                L += ["", f"![{data}: modes, HQ and KL against generator steps and seconds]({link})"]
        L.append("")
    L += plateau_lines(recs)
    L += probe_lines(list(probe_recs))
    dense = list(window_recs) + [r for r in recs if is_dense(r)]
    L += window_lines(dense, [r for r in recs if not is_dense(r)] + list(log2_recs) + list(probe_recs), fig_dir,
                      report)
    L += cost_lines(recs)
    L += beside_published(recs)
    return L


def _cpu(recs: List[dict], method: str, data: str) -> List[float]:
    """The ``fit`` CPU seconds of the records of (method, data) that have them."""
    return [float(r["cpu_s"]) for r in recs if r["method"] == method and r["data"] == data and r.get("cpu_s")]


def projection(recs: List[dict]) -> tuple:
    """({data: projected CPU seconds of the full grid}, {data: labels of methods without a record}): Σ over the
    methods with records of median ``fit`` CPU seconds × the dataset's number of seeds."""
    import statistics

    proj, missing = {d: 0.0 for d in DATASETS}, {d: [] for d in DATASETS}
    for m in METHODS:
        for d in DATASETS:
            xs = _cpu(recs, m, d)
            if xs:
                proj[d] += statistics.median(xs) * len(seeds_for(d))
            else:
                missing[d].append(LABELS[m])
    return proj, missing


def plateau_lines(recs: List[dict]) -> List[str]:
    """Is the cap the plateau? Per dataset the methods flat at the cap and those still moving (signed median moves
    from cap/2 to the cap), the count over (method, dataset) cells, and what doubling the cap would cost."""
    from zoo.anytime import summary

    L = ["### Is the cap the plateau?", ""]
    flat = moving = 0
    for d in DATASETS:
        sums = [(LABELS[m], summary(recs, m, d)) for m in METHODS]
        sums = [(lab, s) for lab, s in sums if s is not None]
        if not sums:
            continue
        yes = [lab for lab, s in sums if s.get("plateau") is True]
        no = []
        for lab, s in sums:
            if s.get("plateau") is False:
                dm, dh = s["delta"]
                no.append(f"{lab} (modes {dm:+.1f}, HQ {100 * dh:+.1f} pts)")
        na = [lab for lab, s in sums if "plateau" not in s]
        flat, moving = flat + len(yes), moving + len(no)
        L.append(f"* **{d}** (cap {sums[0][1]['cap']:,} generator steps): flat at the cap: "
                 f"{', '.join(yes) or 'none'}; still moving: {', '.join(no) or 'none'}"
                 + (f"; no plateau check: {', '.join(na)} (no generator before the cap, or no mode count)" if na
                    else "") + ".")
    if not flat + moving:
        return []
    L += ["", f"**{flat} of {flat + moving}** method × dataset cells with a plateau check are flat at the cap. For "
              "the still-moving ones the tables give their quality at the cap, not at their plateau (most of them "
              "are still gaining HQ: samples tightening onto modes they already cover)."]
    log2_2d = [d for d in ("ring8", "grid25") if protocol(d)["schedule"] == "log2"]
    if log2_2d:
        proj, _ = projection([r for r in recs if r["data"] in log2_2d])
        cost = sum(proj[d] for d in log2_2d) / 7200
        L[-1] += (f" Doubling the cap of {' and '.join(log2_2d)} to {2 * LOG2_CAPS['ring8']:,} steps costs about "
                  f"{2 * cost:.1f} h of the 2-core machine for their 5 seeds (twice their projection below); the "
                  "records keep no checkpoints, so a longer cap is a new grid, not an extension: that grid, evaluated "
                  f"every {WINDOW_EVERY:,} steps so that the plateau is read on window medians, is the dense grid "
                  "below; a dataset's grid becomes it once it is complete.")
    return L + [""]


def cost_lines(recs: List[dict]) -> List[str]:
    """What the grid costs: per method and dataset the median ``fit`` CPU seconds of a run (one torch thread, so
    CPU seconds are the machine time a run needs, whatever else ran beside it), and the full grid's projection:
    Σ over methods and seeds of the medians, on the 2-core machine (two runs at a time)."""
    import statistics

    L = ["### What the grid costs", "",
         "Median `fit` CPU seconds per run (one torch thread: CPU seconds move much less with the machine's load "
         "than wall-clock; process start-up and the final evaluation add 10–30 s), and the full grid "
         "projected from the medians (methods × seeds, two runs at a time on the 2-core machine). The records come "
         "from several sessions, each on a fresh VM of the same nominal kind (2 CPUs, `machine` in each record); "
         "their per-core speed differed by up to about 2× (docs/PERFORMANCE.md §5), so the medians mix them.", "",
         "| method | " + " | ".join(f"{d} CPU s (runs)" for d in DATASETS) + " |", "|---" * (len(DATASETS) + 1) + "|"]
    for m in METHODS:
        cells = [f"{statistics.median(xs):.0f} ({len(xs)})" if xs else "–"
                 for xs in (_cpu(recs, m, d) for d in DATASETS)]
        L.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    proj, missing = projection(recs)
    two_d = proj["ring8"] + proj["grid25"]
    spent = sum(float(r.get("cpu_s") or 0) for r in recs)
    L += ["", f"Recorded so far: {spent / 3600:.2f} CPU hours in {len(recs)} runs. Projected full grid: ring8 + "
              f"grid25 ({len(seeds_for('ring8'))} seeds) {two_d / 3600:.2f} CPU hours = **{two_d / 7200:.2f} h of the "
              f"2-core machine** (target ≤ 3 h)"
          + (f", stacked digits ({len(seeds_for('stacked_digits'))} seeds) {proj['stacked_digits'] / 7200:.2f} h"
             if proj["stacked_digits"] else "")
          + "".join(f"; {d}: no run yet of {', '.join(ms)} (not in the projection)" for d, ms in missing.items() if ms)
          + ".", ""]
    return L


def beside_published(recs: List[dict]) -> List[str]:
    """Our medians at the plateau in the columns of PacGAN's Table 1 (and VEEGAN's), with the published rows."""
    from reproduction_published import PACGAN_T1, VEEGAN_T1
    from zoo.anytime import summary

    cols = [(d, k) for d in ("ring8", "grid25") for k in ("modes", "HQ %", "KL")]
    L = ["### Beside the published 2-D tables", "",
         f"Ours: median over seeds at the budget (a run's final evaluation on the log2 schedule, the median of its "
         "evaluations over the last doubling on a dense grid; mode count, HQ, reverse KL on 2,500 samples, 3-std "
         f"threshold: the protocol of both papers). Published: {PACGAN_T1.title}, {PACGAN_T1.source}; "
         f"{VEEGAN_T1.title}, {VEEGAN_T1.source}. The papers train their own architectures (PacGAN: "
         "MLP G 4×400 with BN, maxout D, Adam 1e-4, batch 100) far longer than our caps.", "",
         "| row | " + " | ".join(f"{d} {k}" for d, k in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in METHODS:
        sums = {d: summary(recs, m, d) for d in ("ring8", "grid25")}
        if not any(sums.values()):
            continue
        cells = []
        for d, k in cols:
            s = sums[d]
            key = {"modes": "eval/modes", "HQ %": "eval/hq", "KL": "eval/kl"}[k]
            if not s or key not in s:
                cells.append("–")
            else:
                v = s[key][0]
                cells.append(f"{100 * v:.1f}" if k == "HQ %" else f"{v:.3g}")
        n = len(next(x for x in sums.values() if x)["seeds"])
        L.append(f"| ours: {LABELS[m]} ({n} seed{'s' if n > 1 else ''}) | "
                 + " | ".join(cells) + " |")
    for pub, tag in ((PACGAN_T1, "PacGAN T1"), (VEEGAN_T1, "VEEGAN T1")):
        for name, row in pub.rows.items():
            L.append(f"| {tag}: {name} | " + " | ".join(row.get(f"{d} {k}", "–") for d, k in cols) + " |")
    van = {d: summary(recs, "vanilla", d) for d in ("ring8", "grid25")}
    gan = PACGAN_T1.rows["GAN"]
    parts = [f"{d}: modes {van[d]['eval/modes'][0]:.3g} vs {gan[f'{d} modes']}, HQ {100 * van[d]['eval/hq'][0]:.1f} % "
             f"vs {gan[f'{d} HQ %']} %, KL {van[d]['eval/kl'][0]:.3g} vs {gan[f'{d} KL']}"
             for d in ("ring8", "grid25") if van.get(d) and "eval/kl" in van[d]]
    if parts:
        L += ["", "Our VanillaGAN against PacGAN's GAN row (ours vs published): " + "; ".join(parts) + "."]
    return L + [""]

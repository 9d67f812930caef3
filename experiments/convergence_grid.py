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

**Plateau.** Between the last two evaluations (8,000 and 16,000 steps) the seeds' median mode count moves by at
most :data:`PLATEAU_MODES` and the median HQ by at most :data:`PLATEAU_HQ` points; a method that misses it is
marked "still moving at its cap" in the table.

**Probe and window.** ``probe`` trains single seeds past the cap on the same protocol (records in ``probe/``);
``window`` evaluates single seeds every :data:`WINDOW_EVERY` steps (``linear`` schedule) to :data:`WINDOW_CAP`
(records in ``window/``), to show what a curve does between the two snapshots the plateau rule compares.
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
from zoo.anytime import run_anytime, save_figure, table, within_plateau  # noqa: E402

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
#: the plateau window: single seeds on the grid's protocol but evaluated every WINDOW_EVERY generator steps (linear
#: schedule) to WINDOW_CAP, to see what a curve does between the two snapshots (cap/2, cap) the plateau rule compares
WINDOW_RECORDS = OUT / "window"
WINDOW_RUNS = ROOT / "runs" / "window"
WINDOW_CAP = 32000
WINDOW_EVERY = 1000


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
        schedule: Optional[str] = None) -> None:
    """Every (seed, data, method) without a record, ``jobs`` at a time (seeds first: complete seeds land first;
    ``seeds=None``: each dataset's default, :func:`seeds_for`; ``cap`` None: each dataset's grid cap;
    ``every``/``schedule`` None: the grid's evaluation schedule)."""
    all_seeds = sorted({s for d in datasets for s in seeds_for(d, seeds)})
    todo = [(m, d, s) for s in all_seeds for d in datasets for m in methods
            if s in seeds_for(d, seeds) and not record_path(d, m, s, records).exists()]
    print(f"[convergence] {len(todo)} runs to do{f' to {cap:,} generator steps' if cap else ''}, {jobs} at a time; "
          f"records in {records}", flush=True)
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        list(pool.map(lambda j: run_one(*j, runs=runs, records=records, cap=cap, every=every, schedule=schedule),
                      todo))


def probe(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], cap: int = PROBE_CAP, jobs: int = 2,
          runs: Path = PROBE_RUNS, records: Path = PROBE_RECORDS) -> None:
    """The plateau probe: :func:`run` to ``cap`` generator steps (the grid's protocol otherwise: log2 evaluations,
    the same configs and evaluation), its records and run folders kept apart from the grid's."""
    run(datasets, methods, seeds, jobs, runs, records, cap=cap)


def window(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], cap: int = WINDOW_CAP,
           every: int = WINDOW_EVERY, jobs: int = 2, runs: Path = WINDOW_RUNS, records: Path = WINDOW_RECORDS) -> None:
    """The plateau window: :func:`run` to ``cap`` with an evaluation every ``every`` generator steps (``linear``
    schedule; the grid's protocol otherwise), its records and run folders kept apart from the grid's. The
    evaluations draw from their own seeded generators, so the training trajectory is the grid's: at the grid's
    evaluation steps the dense curve repeats the grid's record of the same seed (:func:`window_lines` checks it)."""
    if cap % every:
        raise SystemExit(f"--cap {cap} is not a multiple of --every {every}: the last evaluation would miss the cap")
    run(datasets, methods, seeds, jobs, runs, records, cap=cap, every=every, schedule="linear")


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
                    if "eval/modes" in r and CAPS.get(rec["data"], 0) // 4 <= int(r["gen_step"]) <= rec["cap"]})
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
    """Every doubling t → 2t past the grid's cap (t ≥ CAPS[data]) within each probe run:
    ``({"modes": Δ modes, "hq": Δ HQ points}, record, t)``."""
    out = []
    for rec in recs:
        rows = _evaluations(rec)
        for t in sorted(rows):
            if t >= CAPS.get(rec["data"], 0) and 2 * t in rows:
                a, b = rows[t], rows[2 * t]
                out.append(({"modes": b["eval/modes"] - a["eval/modes"],
                             "hq": 100 * (b.get("eval/hq", 0.0) - a.get("eval/hq", 0.0))}, rec, t))
    return out


def window_spread(rec: dict) -> Optional[dict]:
    """A dense run's last half, the evaluations t with cap/2 ≤ t ≤ cap: their count ``n``, the min / median / max of
    the mode count and of HQ (points), and the doubling rule's two snapshots (cap/2 → cap) as ``d_modes``, ``d_hq``.
    Also the *window medians*: the median mode count and HQ over the last doubling (cap/2, cap] against the one
    before it (cap/4, cap/2], as ``median_moves`` = (Δ modes, Δ HQ points) — the plateau rule read on windows of
    evaluations instead of two snapshots. ``None`` without an evaluation at both cap/2 and the cap."""
    rows = _evaluations(rec)
    cap = int(rec["cap"])
    if cap not in rows or cap // 2 not in rows:
        return None
    last = [rows[t] for t in sorted(rows) if cap // 2 <= t <= cap]
    modes = [float(r["eval/modes"]) for r in last]
    hq = [100 * float(r.get("eval/hq", 0.0)) for r in last]

    def medians(lo: int, hi: int) -> Optional[Tuple[float, float]]:  # over the evaluations t, lo < t ≤ hi
        win = [rows[t] for t in rows if lo < t <= hi]
        if not win:
            return None
        return (statistics.median(float(r["eval/modes"]) for r in win),
                statistics.median(100 * float(r.get("eval/hq", 0.0)) for r in win))

    before, after = medians(cap // 4, cap // 2), medians(cap // 2, cap)
    return {"n": len(last), "modes": (min(modes), statistics.median(modes), max(modes)),
            "hq": (min(hq), statistics.median(hq), max(hq)),
            "d_modes": modes[-1] - modes[0], "d_hq": hq[-1] - hq[0],
            "median_moves": (after[0] - before[0], after[1] - before[1]) if before and after else None}


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
            return (f"differs from {t:,} (log2 record {a['eval/modes']:g} / {100 * a.get('eval/hq', 0):.1f} %, "
                    f"dense {b['eval/modes']:g} / {100 * b.get('eval/hq', 0):.1f} %)")
    return f"equal at {common[0]:,}–{common[-1]:,} ({len(common)} evaluations)"


PALETTE_WINDOW = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def _power_of_two(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def window_plot(recs: List[dict], path: Path) -> Optional[Path]:
    """Modes and HQ of every dense run against generator steps (one column per dataset), the log2 snapshots
    marked; written atomically."""
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in DATASETS if any(r["data"] == d for r in recs)]
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.5 * len(datasets), 6), squeeze=False)
    for j, data in enumerate(datasets):
        for k, rec in enumerate(r for r in recs if r["data"] == data):
            rows = _evaluations(rec)
            steps = sorted(rows)
            log2 = [t for t in steps if t % EVERY == 0 and _power_of_two(t // EVERY)]  # the grid's snapshots
            for i, (key, scale) in enumerate((("eval/modes", 1.0), ("eval/hq", 100.0))):
                ax = axes[i][j]
                line, = ax.plot(steps, [scale * rows[t].get(key, float("nan")) for t in steps], lw=1.2,
                                label=_who(rec), color=PALETTE_WINDOW[k % len(PALETTE_WINDOW)])
                ax.plot(log2, [scale * rows[t].get(key, float("nan")) for t in log2], "o", ms=5,
                        color=line.get_color())
                ax.axvspan(rec["cap"] // 2, rec["cap"], color="0.92", zorder=0)
        every = next(r for r in recs if r["data"] == data).get("every", WINDOW_EVERY)
        axes[0][j].set_title(f"{data}: every {every:,} steps (dots: log2 snapshots)", fontsize=10)
        axes[0][j].set_ylabel("modes covered")
        axes[1][j].set_ylabel("HQ %")
        axes[1][j].set_xlabel("generator steps (shaded: the last half)")
        axes[0][j].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def window_lines(recs: List[dict], log2_recs: Sequence[dict] = (), fig_dir: Optional[Path] = None,
                 report: Optional[Path] = None) -> List[str]:
    """The plateau window's table: per dense run the spread of modes and HQ over its last half, the one difference
    (cap/2 → cap) the plateau rule reads, the rule read on window medians (:func:`window_spread`), and whether the
    run repeats the grid's/probe's log2 record of the same seed (:func:`same_trajectory`); the counts of runs flat
    by each reading; with ``fig_dir`` the figure (:func:`window_plot`)."""
    if not recs:
        return []
    recs = sorted(recs, key=_order)
    L = [f"### Plateau window: every {WINDOW_EVERY:,} steps, one seed", "",
         "The plateau rule compares two snapshots, cap/2 and the cap. Single runs on the grid's protocol evaluated "
         "densely instead (`OMP_NUM_THREADS=1 python experiments/reproduction.py window --data D --methods M "
         f"--seeds 0`: an evaluation every {WINDOW_EVERY:,} generator steps to {WINDOW_CAP:,}; records in "
         "`docs/results/reproduction/window/`) show what a curve does between them. Spread: min / median / max over "
         "the evaluations of the last half (cap/2 to the cap); *rule*: the move from cap/2 to the cap that the "
         "doubling rule reads; *window medians*: the same rule read on the medians over the last doubling "
         "(cap/2, cap] against the one before (cap/4, cap/2]; *trajectory*: whether the dense run repeats the log2 "
         "record of the same seed at its evaluation steps (evaluation samples under a forked, seeded RNG, so it "
         "should).", "",
         "| data | method | seed | last half | modes min / median / max | HQ % min / median / max | rule: Δ modes, "
         "Δ HQ | window medians: Δ modes, Δ HQ | trajectory vs the log2 record |", "|---" * 9 + "|"]
    spreads = []
    for rec in recs:
        w = window_spread(rec)
        if w is None:
            continue
        spreads.append((w, rec))
        m, h, mm = w["modes"], w["hq"], w["median_moves"]
        L.append(f"| {rec['data']} | {LABELS.get(rec['method'], rec['method'])} | {rec['seed']} | "
                 f"{rec['cap'] // 2:,}–{rec['cap']:,} ({w['n']} evaluations) | {m[0]:g} / {m[1]:g} / {m[2]:g} | "
                 f"{h[0]:.0f} / {h[1]:.0f} / {h[2]:.0f} | {w['d_modes']:+g}, {w['d_hq']:+.0f} pts | "
                 + (f"{mm[0]:+g}, {mm[1]:+.0f} pts" if mm else "–") + f" | {same_trajectory(rec, log2_recs)} |")
    if spreads:
        def within(rec: dict, d_modes: float, d_hq: float) -> bool:  # HQ in points here
            return within_plateau(rec["data"], d_modes, d_hq / 100)

        flat = [rec for w, rec in spreads if within(rec, w["modes"][2] - w["modes"][0], w["hq"][2] - w["hq"][0])]
        ok_rule = [rec for w, rec in spreads if within(rec, w["d_modes"], w["d_hq"])]
        ok_med = [rec for w, rec in spreads if w["median_moves"] and within(rec, *w["median_moves"])]

        def who(rs: List[dict]) -> str:
            return f" ({', '.join(_who(r) for r in rs)})" if rs else ""

        L += ["", f"Within the plateau thresholds over the whole last half (max − min): **{len(flat)} of "
              f"{len(spreads)}** runs{who(flat)}; by the two-snapshot rule: {len(ok_rule)} of {len(spreads)}"
              f"{who(ok_rule)}; by the window medians: {len(ok_med)} of {len(spreads)}{who(ok_med)}."]
    if fig_dir is not None:
        p = window_plot([rec for _, rec in spreads], Path(fig_dir) / "window.png")
        if p is not None:
            link = os.path.relpath(p, Path(report).parent) if report is not None else str(p)
            L += ["", f"![dense evaluations: modes and HQ every {WINDOW_EVERY:,} generator steps]({link})"]
    return L + [""]


def as_runs(recs: List[dict]) -> list:
    """The records as the report's :class:`reproduction_grid.Run` rows: the metrics of the final evaluation (at the
    cap; AE-OT's after its OT solve), the run's generator steps and ``fit`` wall seconds, so §1–§4 of the report
    (mode table, verdicts, per-run table) read the convergence grid wherever it has records."""
    from reproduction_grid import Run

    out = []
    for r in recs:
        end = r["curve"][-1]
        out.append(Run(method=r["method"], data=r["data"], seed=int(r["seed"]), status=str(r.get("status")),
                       metrics={k: float(v) for k, v in end.items() if k.startswith("eval/") and v is not None},
                       gen_steps=r.get("gen_step", end.get("gen_step")), wall_s=r.get("wall_s"),
                       versions=dict(r.get("versions") or {}, git_commit=str(r.get("commit") or "")),
                       device={"platform": str(r.get("machine", "")).split(" ")[0],
                               "cpu_count": (str(r.get("machine", "")).partition("cpus=")[2].split(" ") or [""])[0],
                               "torch_threads": str(r.get("machine", "")).partition("threads=")[2] or "1",
                               "accelerator": "CPUAccelerator"},
                       path=f"{r['data']}/{r['method']}-s{r['seed']}.json"))
    return out


def section(recs: List[dict], fig_dir: Optional[Path] = None, report: Optional[Path] = None,
            probe_recs: Sequence[dict] = (), window_recs: Sequence[dict] = ()) -> List[str]:
    """The report's convergence section (Markdown lines), from the records alone; with ``fig_dir`` the figures are
    written there and linked relative to ``report``."""
    L = ["## Convergence grid (issue 18): anytime curves to the plateau", "",
         f"Each run trains to {CAPS['ring8']:,} generator steps on ring8 and grid25 ({CAPS['stacked_digits']:,} on "
         f"stacked digits: its 26,000-sample mode count and FID cost more) and is evaluated at {EVERY}·2^k steps "
         "(log-spaced) and at the end; records in `docs/results/reproduction/runs/` "
         "(`OMP_NUM_THREADS=1 python experiments/reproduction.py run`; figures and this section: "
         "`python experiments/reproduction.py write`). Plateau: between the last two evaluations "
         f"(cap/2 and the cap) the seeds' median modes move by ≤ {PLATEAU_MODES:g} (stacked digits: ≤ 10 of 1000) "
         f"and median HQ by ≤ {PLATEAU_HQ * 100:g} points. Each record holds wall-clock and CPU seconds and the "
         "machine's load when the run started and ended (runs made beside other jobs are slower in wall-clock).", ""]
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
    L += window_lines(list(window_recs), list(recs) + list(probe_recs), fig_dir, report)
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
    proj, _ = projection(recs)
    two_d = (proj["ring8"] + proj["grid25"]) / 7200
    L += ["", f"**{flat} of {flat + moving}** method × dataset cells with a plateau check are flat at the cap. For "
              "the still-moving ones the tables give their quality at the cap, not at their plateau (most of them "
              "are still gaining HQ: samples tightening onto modes they already cover). Doubling the 2-D cap to "
              f"{2 * CAPS['ring8']:,} steps would cost about {2 * two_d:.1f} h of the 2-core machine for the "
              "5-seed 2-D grid (twice the projection below), beyond the 3 h target; the records keep no "
              "checkpoints, so a longer cap is a new grid, not an extension.", ""]
    return L


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
         f"Ours: median over seeds at the final evaluation (mode count, HQ, reverse KL on 2,500 samples, 3-std "
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

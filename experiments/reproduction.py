"""Reproduction report (issue #10): run the mode-collapse grid and regenerate ``docs/REPRODUCTION.md``.

    OMP_NUM_THREADS=1 python experiments/reproduction.py run   [--data ring8 grid25] [--seeds 0 1 2 3 4] [--jobs 2]
    OMP_NUM_THREADS=1 python experiments/reproduction.py probe --methods wgan_gp srgan [--data ring8] [--cap 64000]
    OMP_NUM_THREADS=1 python experiments/reproduction.py window [--data ring8 grid25] [--methods ...] [--seeds 0 1 2 3 4]
    python experiments/reproduction.py flip --data ring8     # its complete dense grid becomes its grid
    OMP_NUM_THREADS=1 python experiments/reproduction.py run-short [--data ring8 grid25 stacked_digits] [--seeds 0 1 2]
                                                               [--budget ring8=1000steps ...] [--out runs/reproduction]
    python experiments/reproduction.py write [--runs runs/reproduction] [--out docs/REPRODUCTION.md]

``run`` trains the convergence grid of issue 18 (``convergence_grid.py``: every method to the plateau with
log-spaced evaluations, one committed record per finished run, runs with a record skipped). ``run-short``
trains every method (``vanilla wgan_gp sngan srgan icnn_w2 dual_flow aeot``) on every dataset for every
seed with :func:`zoo.compare.run_grid` (one grid folder per dataset, ``<out>/<data>``, since each dataset has its
own generator-step budget; resumable: finished runs are skipped). Every run is an ordinary ``train.py`` run with
the default evaluation callbacks: ``ModeCoverage`` on ring8/grid25 (2,500 samples, HQ = within 3 std, reverse
KL; VEEGAN/PacGAN protocol) and ``StackedModeCount`` on stacked digits (26,000 samples, modes of 1000, KL).
The method configs are ``configs/<method>/<data>.yaml`` except where :data:`CONFIG_PATHS` says otherwise.

``write`` reads the runs' ``results.json`` (and their ``compare.json`` manifests for the budgets; it saves what it
read to ``docs/results/reproduction/grid.json`` and reads that record back when the git-ignored run folders are
gone, e.g. in a fresh clone), the
machine-readable results the per-method experiments recorded under ``docs/results/`` (JSON, and the Markdown
tables those scripts generate), the published numbers held below as data (each with its source and the confidence
label of ``shared/reference/``), and writes the report. It never trains anything.

The pieces: ``reproduction_grid.py`` (the grid's definition and how its runs are read back),
``reproduction_published.py`` (the published tables, as data), ``reproduction_report.py`` (the report writer);
this file is the command line and the runner.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below

from reproduction_grid import (BUDGETS, CONFIG_PATHS, Cell, DATASETS, DOC, METHODS, RECORD, ROOT, RUNS_DIR, Run,
                               SEEDS, UNSUPPORTED, load_runs, mean_std, rel)
from reproduction_report import (_cells, budget_text, build, fmt_ms, md_table_with, write)


# ============================================================================================ run
def run(datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int], budgets: Mapping[str, str],
        out: Path, timeout: Optional[float] = None) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"        # one core per run (inherited by the train.py subprocesses)
    os.environ["MKL_NUM_THREADS"] = "1"
    os.environ.setdefault("WANDB_MODE", "disabled")
    from zoo.compare import run_grid

    for d in datasets:
        ms = [m for m in methods if (m, d) not in UNSUPPORTED]
        md = run_grid(ms, [d], list(seeds), budgets[d], Path(out) / d, accelerator="cpu", wandb=False,
                      timeout=timeout, config_paths={k: v for k, v in CONFIG_PATHS.items() if k.endswith("/" + d)})
        print(md, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/reproduction.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    import convergence_grid as cg

    c = sub.add_parser("run", help="the convergence grid (issue 18): every run without a record, to the plateau, "
                                   "log-spaced evaluations; each finished run writes its record")
    c.add_argument("--data", nargs="+", default=cg.DATASETS, choices=cg.DATASETS)
    c.add_argument("--methods", nargs="+", default=cg.METHODS, choices=cg.METHODS)
    c.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="default: 0-4 on the 2-D sets, 0-2 on stacked digits")
    c.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each (default 2)")
    c.add_argument("--runs", default=str(cg.RUNS), help="run folders (git-ignored; a killed run resumes there)")
    c.add_argument("--records", default=str(cg.RECORDS), help="where the records go (committed)")
    c.add_argument("--dry-run", action="store_true", help="print the runs to do and their projected cost; train "
                   "nothing")
    q = sub.add_parser("probe", help="the plateau probe: single seeds trained past the grid's cap (default "
                                     f"{cg.PROBE_CAP:,} steps), records in {rel(cg.PROBE_RECORDS)}")
    q.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=cg.DATASETS)
    q.add_argument("--methods", nargs="+", required=True, choices=cg.METHODS)
    q.add_argument("--seeds", nargs="+", type=int, default=[0])
    q.add_argument("--cap", type=int, default=cg.PROBE_CAP, help="generator steps (a power of two times 250 keeps "
                                                                   "the last evaluation on the log2 schedule)")
    q.add_argument("--jobs", type=int, default=2)
    q.add_argument("--runs", default=str(cg.PROBE_RUNS))
    q.add_argument("--records", default=str(cg.PROBE_RECORDS))
    q.add_argument("--dry-run", action="store_true", help="print the runs to do and their projected cost; train "
                   "nothing")
    v = sub.add_parser("window", help="the dense grid: every run without a record, evaluated every --every generator "
                                      f"steps to --cap (default {cg.WINDOW_EVERY:,} to {cg.WINDOW_CAP:,}), records in "
                                      f"{rel(cg.WINDOW_RECORDS)} (resumable)")
    v.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=cg.DATASETS)
    v.add_argument("--methods", nargs="+", default=cg.METHODS, choices=cg.METHODS)
    v.add_argument("--seeds", nargs="+", type=int, default=cg.SEEDS)
    v.add_argument("--cap", type=int, default=cg.WINDOW_CAP, help="generator steps (a multiple of --every)")
    v.add_argument("--every", type=int, default=cg.WINDOW_EVERY, help="generator steps between evaluations")
    v.add_argument("--jobs", type=int, default=2)
    v.add_argument("--runs", default=str(cg.WINDOW_RUNS))
    v.add_argument("--records", default=str(cg.WINDOW_RECORDS))
    v.add_argument("--dry-run", action="store_true", help="print the runs to do and their projected cost; train "
                   "nothing")
    f = sub.add_parser("flip", help="make a dataset's complete dense grid its grid: the dense records move to "
                                    f"{rel(cg.RECORDS)}, the log2 ones to {rel(cg.LOG2_RECORDS)} (after zoo.anytime "
                                    "gives the dataset the dense protocol)")
    f.add_argument("--data", required=True, choices=["ring8", "grid25"])
    r = sub.add_parser("run-short", help="the 2,000-step grid of issue 10 behind sections 1-3 (resumable)")
    r.add_argument("--data", nargs="+", default=DATASETS, choices=DATASETS)
    r.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    r.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    r.add_argument("--budget", nargs="+", default=[], metavar="DATA=BUDGET",
                   help=f"override a dataset's budget (default {BUDGETS})")
    r.add_argument("--out", default=str(RUNS_DIR))
    r.add_argument("--timeout", type=float, default=None, help="seconds per run (stopped runs resume next time)")
    w = sub.add_parser("write", help="regenerate docs/REPRODUCTION.md from the runs and docs/results")
    w.add_argument("--runs", default=str(RUNS_DIR))
    w.add_argument("--out", default=str(DOC))
    w.add_argument("--docs", default=str(ROOT / "docs"), help="folder holding results/<method>/ (default docs/)")
    w.add_argument("--date", default=None, help="date printed in the report (default today)")
    w.add_argument("--record", default=str(RECORD),
                   help="JSON record of the grid: written from the runs found, read when there are none "
                        f"(default {rel(RECORD)}; 'none' to skip)")
    a = p.parse_args(argv)
    if a.cmd == "run":
        cg.run(a.data, a.methods, a.seeds, a.jobs, Path(a.runs), Path(a.records), dry_run=a.dry_run)
        return 0
    if a.cmd == "probe":
        cg.probe(a.data, a.methods, a.seeds, a.cap, a.jobs, Path(a.runs), Path(a.records), dry_run=a.dry_run)
        return 0
    if a.cmd == "window":
        cg.window(a.data, a.methods, a.seeds, a.cap, a.every, a.jobs, Path(a.runs), Path(a.records),
                  dry_run=a.dry_run)
        return 0
    if a.cmd == "flip":
        moves = cg.flip(a.data)
        print(f"flipped {a.data}: {len(moves)} records moved ({rel(cg.RECORDS)}/{a.data} → {rel(cg.LOG2_RECORDS)}/"
              f"{a.data}, {rel(cg.WINDOW_RECORDS)}/{a.data} → {rel(cg.RECORDS)}/{a.data}); commit them and run write")
        return 0
    if a.cmd == "run-short":
        budgets = dict(BUDGETS)
        for item in a.budget:
            k, _, v = item.partition("=")
            if k not in DATASETS or not v:
                p.error(f"--budget {item!r}: use DATA=BUDGET with DATA in {DATASETS}")
            budgets[k] = v
        run(a.data, a.methods, a.seeds, budgets, Path(a.out), a.timeout)
        return 0
    text = write(Path(a.runs), Path(a.out), Path(a.docs), a.date,
                 None if a.record.lower() == "none" else Path(a.record))
    print(f"wrote {a.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

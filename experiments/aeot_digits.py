"""AE-OT beside VanillaGAN and WGAN-GP on digits and stacked digits at the same CPU budget (issue 8 evidence).

    OMP_NUM_THREADS=1 python experiments/aeot_digits.py [--datasets digits stacked_digits] [--seeds 0 1 2]
                                                        [--out runs/aeot_digits] [--write-only]

For each dataset:

1. **AE-OT** runs its own config (``configs/aeot/digits.yaml``: 5,000 autoencoder steps, all 1,437 training codes
   as OT targets; ``configs/aeot/stacked_digits_cpu.yaml``: 2,000 autoencoder steps, 2,048 targets, capped OT
   solve) through :func:`zoo.compare.run_grid` with a steps budget equal to the config's ``max_gen_steps``.
2. Its mean ``fit`` wall time T over the seeds (``results.json`` ``wall_time_s``: autoencoder + OT) becomes the
   **wall-clock budget** of VanillaGAN and WGAN-GP (``--budget <T>min``, rounded up to the next 0.1 min, their own
   ``configs/<method>/<data>.yaml``), so each baseline gets at least AE-OT's CPU time and trains as many generator
   steps as fit in it.
3. Every run evaluates once, at the end (periodic FID / mode counts / distances off, so that no method spends
   its budget on evaluation): FID on the features of the shipped digit classifier (``callbacks.FID``,
   extractor ``digits``; 5,000 generated against the held-out split, up to 10,000 images) and ``callbacks.StackedModeCount``
   (26,000 samples: modes of the 10 digit classes, or of the 1,000 triples, and KL to uniform).

Same data seed (0) for every run; one torch thread per run. Writes ``docs/results/aeot/digits.md`` and
``digits.json`` (the per-run rows). ``--write-only`` rebuilds the table from the runs already on disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.compare import run_grid  # noqa: E402

OUT = ROOT / "docs" / "results" / "aeot"
CONFIGS = {"digits": "configs/aeot/digits.yaml", "stacked_digits": "configs/aeot/stacked_digits_cpu.yaml"}
BASELINES = ("vanilla", "wgan_gp")
NAMES = {"aeot": "AE-OT", "vanilla": "VanillaGAN", "wgan_gp": "WGAN-GP"}
NUM_MODES = {"digits": 10, "stacked_digits": 1000}
# evaluate at the end only: no method spends its budget on periodic evaluation
EVAL_AT_END = ["--fid.every_n_gen_steps", "0", "--fid.extractor", "digits", "--stacked_modes.every_n_gen_steps", "0",
               "--distances.every_n_gen_steps", "0", "--trainer.enable_progress_bar", "false"]


def aeot_dir(out: Path, data: str) -> Path:
    return out / f"aeot_{data}"


def baseline_dir(out: Path, data: str, minutes: float) -> Path:
    return out / f"baselines_{data}_{minutes:g}min"


def results(run_root: Path, method: str, data: str, seeds) -> list:
    rows = []
    for s in seeds:
        p = run_root / f"{method}-{data}-s{s}" / "results.json"
        if not p.exists():
            continue
        r = json.loads(p.read_text())
        m = r.get("metrics", {})
        rows.append({"method": method, "data": data, "seed": s, "status": r.get("status"),
                     "gen_steps": r.get("steps", {}).get("gen_step"), "wall_s": r.get("wall_time_s"),
                     "fid": m.get("eval/fid"), "modes": m.get("eval/modes"), "kl": m.get("eval/kl"),
                     "fid_n_real": r.get("protocols", {}).get("FID", {}).get("n_real"),
                     "ot_certificate": r.get("details", {}).get("ot_certificate"),
                     "ot_message": r.get("details", {}).get("ot_message")})
    return rows


def budget_minutes(rows: list) -> float:
    """Mean AE-OT ``fit`` time in minutes, rounded up to 0.1 min."""
    t = statistics.mean(r["wall_s"] for r in rows)
    return math.ceil(t / 6.0) / 10.0


def run(datasets, seeds, out: Path) -> dict:
    budgets = {}
    for data in datasets:
        cfg = ROOT / CONFIGS[data]
        steps = int(yaml.safe_load(cfg.read_text())["model"]["init_args"]["max_gen_steps"])
        run_grid(["aeot"], [data], list(seeds), f"{steps}steps", aeot_dir(out, data), accelerator="cpu",
                 eval_every=steps + 1, wandb=False, extra_args=EVAL_AT_END, config_paths={f"aeot/{data}": cfg})
        ae = [r for r in results(aeot_dir(out, data), "aeot", data, seeds) if r["status"] == "complete"]
        if not ae:
            raise SystemExit(f"no complete AE-OT run on {data} under {out}: see the logs there")
        budgets[data] = budget_minutes(ae)
        print(f"[aeot_digits] {data}: AE-OT fit {statistics.mean(r['wall_s'] for r in ae):.1f} s → baselines get "
              f"{budgets[data]:g} min", flush=True)
        run_grid(list(BASELINES), [data], list(seeds), f"{budgets[data]:g}min", baseline_dir(out, data, budgets[data]),
                 accelerator="cpu", eval_every=10**9, wandb=False, extra_args=EVAL_AT_END)
    return budgets


def fmt(values, digits=1):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def write(datasets, seeds, out: Path) -> None:
    load = os.getloadavg()
    lines = ["# AE-OT, VanillaGAN and WGAN-GP on digits and stacked digits at the same CPU budget", "",
             "Command: `OMP_NUM_THREADS=1 python experiments/aeot_digits.py` (see its docstring for the protocol). "
             f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, no GPU, one torch thread per run; "
             f"load average when the table was written {load[0]:.1f}. Runs under `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}` "
             "(git-ignored).", "",
             "AE-OT trains its config's autoencoder steps, then solves the OT; the baselines get AE-OT's mean `fit` "
             "wall time (rounded up to 0.1 min) as a wall-clock budget. FID: features of the shipped digit "
             "classifier (5,000 generated vs the held-out images, as many as the split has, up to 10,000: see the "
             "column n_real; lower is better; not comparable to Inception FIDs). "
             "Modes/KL: `callbacks.StackedModeCount` on 26,000 samples (digit classes of 10, triples of 1000). "
             "Mean ± sample std over the seeds.", ""]
    rows_all = []
    for data in datasets:
        ae = results(aeot_dir(out, data), "aeot", data, seeds)
        if not ae:
            continue
        minutes = budget_minutes([r for r in ae if r["status"] == "complete"])
        base = [r for m in BASELINES for r in results(baseline_dir(out, data, minutes), m, data, seeds)]
        rows = ae + base
        rows_all += rows
        lines += [f"## {data} (modes of {NUM_MODES[data]}; wall-clock budget of the baselines: {minutes:g} min)", "",
                  "| method | seeds | generator steps | fit wall s | FID (digits) ↓ | modes | KL ↓ |",
                  "|---|---|---|---|---|---|---|"]
        for m in ("aeot",) + BASELINES:
            rs = [r for r in rows if r["method"] == m and r["status"] == "complete"]
            if not rs:
                continue
            lines.append(f"| {NAMES[m]} | {','.join(str(r['seed']) for r in rs)} | "
                         f"{fmt([r['gen_steps'] for r in rs], 0)} | {fmt([r['wall_s'] for r in rs], 0)} | "
                         f"{fmt([r['fid'] for r in rs], 2)} | {fmt([r['modes'] for r in rs], 1)} | "
                         f"{fmt([r['kl'] for r in rs], 3)} |")
        certs = [r for r in rows if r["method"] == "aeot" and r.get("ot_certificate")]
        if certs:
            lines += ["", "AE-OT's OT stage, certified on fresh source samples (`details.ot_certificate` of each "
                      "run's results.json): every cell's relative mass error is below the upper bound for all cells "
                      "at once with probability ≥ 95 %.", "",
                      "| seed | converged | Newton iterations | max rel (observed) | upper bound | tol_rel | TV | "
                      "fresh samples |", "|---|---|---|---|---|---|---|---|"]
            tol = yaml.safe_load((ROOT / CONFIGS[data]).read_text())["model"]["init_args"].get("ot_tol_rel")
            for r in certs:
                c = r["ot_certificate"]
                lines.append(f"| {r['seed']} | {'yes' if c.get('passed') else 'no'} | {c.get('iteration')} | "
                             f"{c['max_rel']:.3f} | {c['max_rel_upper']:.3f} | {tol} | {c['tv']:.4f} | "
                             f"{c.get('samples', 0):,} |")
        lines += ["", "AE-OT's generator steps count its autoencoder steps + 1 for the whole OT solve.", "",
                  "| method | seed | status | generator steps | fit wall s | FID | n_real | modes | KL |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            f = "–" if r["fid"] is None else f"{r['fid']:.2f}"
            lines.append(f"| {NAMES[r['method']]} | {r['seed']} | {r['status']} | {r['gen_steps']} | "
                         f"{r['wall_s'] or 0:.0f} | {f} | {r['fid_n_real']} | {r['modes']} | "
                         f"{'–' if r['kl'] is None else format(r['kl'], '.3f')} |")
        lines.append("")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "digits.md").write_text("\n".join(lines) + "\n")
    (OUT / "digits.json").write_text(json.dumps({"written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows_all},
                                                indent=1) + "\n")
    print(f"wrote {OUT / 'digits.md'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "runs" / "aeot_digits"))
    ap.add_argument("--write-only", action="store_true", help="only rebuild the table from finished runs")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if not args.write_only:
        run(args.datasets, args.seeds, out)
    write(args.datasets, args.seeds, out)


if __name__ == "__main__":
    main()

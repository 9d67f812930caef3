"""Soak test: one method trains for a long time on CPU with evaluation callbacks on; memory must stay flat.

    python benchmarks/soak.py --minutes 30 --out runs/soak        # the issue's 30-minute run
    python benchmarks/soak.py --minutes 2 --out /tmp/soak --quick  # smoke run

It runs ``train.py fit`` in a subprocess (one torch thread) — by default the DCGAN VanillaGAN on the embedded
8×8 digits with the FID callback (digits CNN), the sample plot and checkpoints every 200 generator steps, so every
evaluation path runs dozens of times — and samples the child's resident set size (``VmRSS`` from
``/proc/<pid>/status``) every ``--interval`` seconds into ``<out>/memory.csv`` and ``<out>/memory.png``.

**Flatness criterion.** Start-up (imports, data, first evaluations) grows memory, and every evaluation allocates
transiently (a spike of tens of MB that is freed again), so the verdict compares typical levels:
``growth = median RSS over the last quarter − median RSS over the second quarter``; it passes when growth ≤
max(``--tolerance_mb``, 5 % of the median). The peak (transient spikes included) and a least-squares slope
(MB/hour) over the second half are reported beside it. The run's ``results.json`` must say complete.
``--analyze DIR`` recomputes the verdict and the plot from an existing ``DIR/memory.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``VmRSS``), or NaN once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


def _duration(minutes: float) -> str:
    """``DD:HH:MM:SS`` for Lightning's ``max_time``."""
    s = int(round(minutes * 60))
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def command(minutes: float, out: Path, every: int) -> list:
    return [
        sys.executable, str(REPO / "train.py"), "fit", "--config", str(REPO / "configs/vanilla/digits.yaml"),
        "--model.max_gen_steps", "null", "--trainer.max_time", _duration(minutes),
        "--fid.every_n_gen_steps", str(every), "--sample_plot.every_n_gen_steps", str(every),
        "--checkpoint_every_n_steps", str(every), "--trainer.default_root_dir", str(out),
        "--run_name", "soak", "--wandb", "false",
    ]


def verdict(times, rss, tolerance_mb: float) -> dict:
    """Flatness statistics of an RSS curve (see the module docstring)."""
    import statistics

    n = len(rss)
    q2 = rss[n // 4: n // 2] or rss
    q4 = rss[3 * n // 4:] or rss
    base = statistics.median(q2)
    growth = statistics.median(q4) - base
    half_t, half_r = times[n // 2:], rss[n // 2:]
    slope = 0.0
    if len(half_t) >= 2:
        mt, mr = statistics.fmean(half_t), statistics.fmean(half_r)
        den = sum((t - mt) ** 2 for t in half_t)
        slope = sum((t - mt) * (r - mr) for t, r in zip(half_t, half_r)) / den * 3600.0 if den else 0.0
    limit = max(tolerance_mb, 0.05 * base)
    return {"samples": n, "median_rss_q2_mb": round(base, 1), "median_rss_q4_mb": round(statistics.median(q4), 1),
            "peak_rss_mb": round(max(rss), 1), "growth_mb": round(growth, 1), "limit_mb": round(limit, 1),
            "slope_mb_per_hour_second_half": round(slope, 2), "flat": growth <= limit}


def plot(times, rss, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([t / 60 for t in times], rss)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def analyze(out: Path, tolerance_mb: float) -> int:
    """Verdict and plot from a finished soak directory (keeps the run facts already in soak.json)."""
    rows = list(csv.reader(open(out / "memory.csv")))[1:]
    times, rss = [float(t) for t, _ in rows], [float(r) for _, r in rows]
    result = json.loads((out / "soak.json").read_text()) if (out / "soak.json").exists() else {}
    result = {k: v for k, v in result.items() if k not in ("max_rss_q4_mb",)}
    result.update(verdict(times, rss, tolerance_mb))
    plot(times, rss, out / "memory.png", "soak: VanillaGAN digits, evaluation every 200 G-steps")
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["flat"] else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "soak")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--every", type=int, default=200, help="evaluation/checkpoint cadence in generator steps")
    ap.add_argument("--tolerance_mb", type=float, default=50.0)
    ap.add_argument("--quick", action="store_true", help="1-second sampling (for short smoke runs)")
    ap.add_argument("--analyze", type=Path, default=None, help="recompute soak.json/memory.png from DIR/memory.csv")
    args = ap.parse_args(argv)
    if args.analyze is not None:
        return analyze(args.analyze, args.tolerance_mb)
    if args.quick:
        args.interval = 1.0
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    cmd = command(args.minutes, args.out, args.every)
    print("command:", " ".join(cmd), flush=True)
    t0 = time.time()
    log = open(args.out / "train.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    times, rss = [], []
    with open(args.out / "memory.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seconds", "rss_mb"])
        while proc.poll() is None:
            r = rss_mb(proc.pid)
            if r == r:  # not NaN
                t = time.time() - t0
                times.append(t)
                rss.append(r)
                w.writerow([round(t, 1), round(r, 1)])
                fh.flush()
            time.sleep(args.interval)
    log.close()
    result = {"returncode": proc.returncode, "wall_s": round(time.time() - t0, 1), "command": " ".join(cmd)}
    res_path = args.out / "soak" / "results.json"
    if res_path.exists():
        res = json.loads(res_path.read_text())
        result["status"] = res.get("status")
        result["gen_steps"] = res.get("steps", {}).get("gen_step")
        result["final_metrics"] = res.get("metrics")
    if rss:
        result.update(verdict(times, rss, args.tolerance_mb))
        plot(times, rss, args.out / "memory.png",
             f"soak: VanillaGAN digits, eval every {args.every} G-steps, {args.minutes:g} min")
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if proc.returncode == 0 and result.get("flat", False) else 1


if __name__ == "__main__":
    sys.exit(main())

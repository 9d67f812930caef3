"""SR-GAN against SN-GAN on the 2-D mixtures, where SN-GAN really collapses (issue #19).

    python experiments/srgan_grid.py run --jobs 2     # every (data, arm, seed) without a record, two at a time
    python experiments/srgan_grid.py write            # results.md and the figures, from the committed records alone

**Runs.** Each (data, arm, seed) is one ``train.py fit`` of the committed configs ``configs/sngan/<data>.yaml`` /
``configs/srgan/<data>.yaml`` (SN MLP discriminator 2→64→64→64→1, hinge loss, Adam 1e-3, β = (0.5, 0.999),
n_dis 1, batch 256) with ``--seed_everything <seed>`` and ``--model.max_gen_steps`` = ``--steps``, evaluated every
``--every`` generator steps by the zoo's own callbacks: ``ModeCoverage`` (modes, HQ, KL on 2,500 samples, the
VEEGAN/PacGAN protocol; W2 and energy distance) and ``SpectralMonitor`` (per discriminator layer: σ₁, the fraction
of σ_i/σ₁ > ½ and its collapse flag). The arms:

* ``sngan`` — SN-GAN;
* ``srgan_static`` — SR-GAN with static compensation from step 0 (the official CIFAR-10 code);
* ``srgan_dynamic`` — dynamic compensation from step 0 (reference spectrum = the random initialisation's);
* ``srgan_dynamic_late`` — the official ImageNet workflow: SN-GAN, then dynamic compensation from generator step
  ``--late-start`` on (with the same seed the run is SN-GAN's, bit for bit, until then);
* ``srgan_dynamic_peak`` — the same from generator step 500, where SN-GAN's mode count peaks on grid25 before it
  collapses (run on grid25 only: ``--data grid25 --arms srgan_dynamic_peak``; on ring8 SN-GAN has no healthy phase).

Each finished run writes ``docs/results/srgan/grid/runs/<data>/<arm>-s<seed>.json`` (its curve, the spectra every
``--spectra-every`` steps, the flags, wall and CPU seconds, the commit); ``run`` skips every run whose record
exists, so the study finishes over several sessions on fresh machines; ``write`` reads the records only.

**Definitions** (stated again in ``results.md``):

* *mode collapse* of a run: the first evaluation t at which the mode count, averaged over the evaluations of the
  next ``--collapse-window`` generator steps (1,000; the forward mean m̄), is ≤ 70 % of its running maximum
  (``m̄(t) ≤ 0.7 · max_{s ≤ t} m̄(s)``, i.e. at least 30 % below it), counted only once that maximum has reached half
  the modes (``≥ K/2``: a generator that never covered half the modes has no healthy phase to collapse from). The
  mean keeps the noise of single evaluations (±5 modes of 25 between neighbouring evaluations) from reading as a
  collapse, at any evaluation cadence. *Sustained* when the run ends below 70 % of its maximum too.
* *spectral-collapse flag* of a layer: ``SpectralMonitor``'s (the fraction of σ_i/σ₁ > ½ below half its
  running maximum, the maximum taken from the first evaluation on); and, proposed here, the *windowed* flag: the
  fraction below half its maximum over the preceding ``--flag-window`` generator steps (a fall within that time,
  as in the paper's figures, rather than a slow concentration since the random initialisation).
* *lag* = mode-collapse step − first flag step of the layer (positive: the flag came first).
* *plateau*: between the means over generator steps [T/2, 3T/4) and [3T/4, T] the seeds' median mode count moves
  by ≤ 1 and their median HQ by ≤ 5 points.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "srgan" / "grid"
RUNS = ROOT / "runs" / "srgan_grid"  # run folders (not committed; a killed run resumes from its last.ckpt)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # callbacks.spectral (the flag's definition)

DATASETS = {"grid25": 25, "ring8": 8}
ARMS: Dict[str, dict] = {
    "sngan": {"config": "sngan", "overrides": []},
    "srgan_static": {"config": "srgan", "overrides": ["--model.sr_mode", "static"]},
    "srgan_dynamic": {"config": "srgan", "overrides": ["--model.sr_mode", "dynamic"]},
    "srgan_dynamic_late": {"config": "srgan", "overrides": ["--model.sr_mode", "dynamic", "--model.sr_start", "{late}"]},
    "srgan_dynamic_peak": {"config": "srgan", "overrides": ["--model.sr_mode", "dynamic", "--model.sr_start", "500"]},
}
LABELS = {"sngan": "SN-GAN", "srgan_static": "SR-GAN static", "srgan_dynamic": "SR-GAN dynamic (step 0)",
          "srgan_dynamic_late": "SR-GAN dynamic (from SN-GAN at {late})",
          "srgan_dynamic_peak": "SR-GAN dynamic (from SN-GAN at 500, its peak)"}
COLORS = {"sngan": "tab:red", "srgan_static": "tab:blue", "srgan_dynamic": "tab:green",
          "srgan_dynamic_late": "tab:purple", "srgan_dynamic_peak": "tab:olive"}
LAYERS = ["net.0", "net.2", "net.4"]  # the hidden layers' weights (net.6, 64→1, has rank 1: nothing to collapse)
COLLAPSE_RATIO = 0.7
COLLAPSE_WINDOW = 1000  # generator steps of the forward mean of the mode count (module doc)
EVAL_KEYS = ("eval/modes", "eval/hq", "eval/kl", "eval/w2", "eval/energy")


def record_path(data: str, arm: str, seed: int, tag: str = "") -> Path:
    return OUT / "runs" / data / f"{arm}-s{seed}{'-' + tag if tag else ''}.json"


def _commit() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reproduction_grid import git_commit

    return git_commit()


def command(data: str, arm: str, seed: int, args) -> List[str]:
    spec = ARMS[arm]
    return [sys.executable, "train.py", "fit", "--config", f"configs/{spec['config']}/{data}.yaml",
            *[o.format(late=args.late_start) for o in spec["overrides"]],
            "--seed_everything", str(seed), "--model.max_gen_steps", str(args.steps),
            "--mode_coverage.every_n_gen_steps", str(args.every), "--spectral.every_n_gen_steps", str(args.every),
            "--spectral.plots", "end", "--sample_plot.every_n_gen_steps", "0", "--wandb", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(RUNS),
            "--run_name", f"{data}-{arm}-s{seed}{'-' + args.tag if args.tag else ''}"]


def read_curve(run_dir: Path) -> List[dict]:
    """The evaluation rows of ``metrics.csv`` merged per generator step (mode and spectral rows are separate)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_step: Dict[int, dict] = {}
    for r in rows:
        vals = {k: float(v) for k, v in r.items() if v and (k.startswith(("eval/", "spectral/", "time/")))}
        if not any(k.startswith(("eval/", "spectral/")) for k in vals):
            continue
        step = int(float(r["trainer/gen_step"]))
        by_step.setdefault(step, {"gen_step": step}).update(vals)
    return [by_step[s] for s in sorted(by_step)]


def run_one(data: str, arm: str, seed: int, args) -> Optional[Path]:
    path = record_path(data, arm, seed, args.tag)
    if path.exists():
        return None
    cmd = command(data, arm, seed, args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    run_dir = RUNS / f"{data}-{arm}-s{seed}{'-' + args.tag if args.tag else ''}"
    if out.returncode != 0:
        print(f"[srgan_grid] {data} {arm} s{seed} failed (exit {out.returncode}):\n{out.stderr[-2000:]}",
              file=sys.stderr, flush=True)
        return None
    import torch

    res = json.loads((run_dir / "results.json").read_text())
    spectra = torch.load(run_dir / "plots" / "spectral" / "spectra.pt", weights_only=True)
    keep = {}
    for layer in LAYERS:
        steps, sp = spectra[layer]["steps"], spectra[layer]["spectra"]
        idx = [i for i, s in enumerate(steps) if s % args.spectra_every == 0 or i == len(steps) - 1]
        keep[layer] = {"steps": [steps[i] for i in idx],
                       "spectra": [[round(float(v), 4) for v in sp[i]] for i in idx]}
    curve = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in read_curve(run_dir)]
    rec = {"data": data, "arm": arm, "seed": seed, "tag": args.tag, "steps": args.steps, "every": args.every,
           "late_start": args.late_start if arm == "srgan_dynamic_late" else None,
           "command": " ".join(["python"] + cmd[1:cmd.index("--trainer.default_root_dir")]),
           "commit": _commit(), "status": res.get("status"), "gen_step": res.get("gen_step"),
           "wall_s": res.get("wall_time_s"), "cpu_s": res.get("cpu_time_s"), "process_wall_s": time.time() - t0,
           "machine": f"{platform.machine()} cpus={os.cpu_count()} threads=1",
           "curve": curve, "spectra": keep}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rec, separators=(",", ":")))
    os.replace(tmp, path)
    print(f"[srgan_grid] {data} {arm} s{seed}: modes {curve[-1].get('eval/modes')} "
          f"hq {curve[-1].get('eval/hq')} in {rec['wall_s']:.0f} s -> {path}", flush=True)
    return path


# ------------------------------------------------------------------------------------------------ analysis
def smoothed(steps: Sequence[int], values: Sequence[float], window: int) -> List[float]:
    """Forward mean over the evaluations in [s, s + window) (fewer at the end of the run); ``window=0``: as is."""
    if window <= 0:
        return list(values)
    return [float(np.mean([v for t, v in zip(steps, values) if s <= t < s + window])) for s in steps]


def mode_collapse_step(steps: Sequence[int], modes: Sequence[float], k: int, window: int = 0) -> Optional[int]:
    """First step with modes ≤ 0.7 · running max, once that maximum reached K/2 (module doc); with ``window`` the
    mode count is first replaced by its forward mean over ``window`` generator steps, so that the noise of single
    evaluations (±5 modes of 25 between neighbouring evaluations of 2,500 samples) is not taken for a collapse."""
    best = 0.0
    for s, m in zip(steps, smoothed(steps, modes, window)):
        best = max(best, m)
        if best >= k / 2 and m <= COLLAPSE_RATIO * best:
            return int(s)
    return None


def first_flag(steps: Sequence[int], frac: Sequence[float], window: Optional[int] = None) -> Optional[int]:
    """First step where the fraction σ_i/σ₁ > ½ is below half its maximum — the running maximum since the first
    evaluation (``window=None``: SpectralMonitor's flag) or over the preceding ``window`` generator steps."""
    from callbacks.spectral import flag_reference

    history = list(zip(steps, frac))
    for s, f in history:
        if f < 0.5 * flag_reference(history, s, window):
            return int(s)
    return None


def load_records(tag: str = "", out: Optional[Path] = None) -> List[dict]:
    """The records of the main study (``tag=""``) or of a tagged side study (``fine``: SN-GAN's early training
    evaluated every 50 steps), under ``out`` (default: this study's folder in docs/results)."""
    recs = [json.loads(p.read_text()) for p in sorted(((out or OUT) / "runs").glob("*/*.json"))]
    recs = [r for r in recs if r.get("tag", "") == tag]
    order = {a: i for i, a in enumerate(ARMS)}
    return sorted(recs, key=lambda r: (list(DATASETS).index(r["data"]), order[r["arm"]], r["seed"]))


def summarize(rec: dict, flag_window: int) -> dict:
    c = rec["curve"]
    steps = [r["gen_step"] for r in c]
    modes = [r["eval/modes"] for r in c]
    hq = [r["eval/hq"] for r in c]
    k = DATASETS[rec["data"]]
    t = steps[-1]
    mc = mode_collapse_step(steps, modes, k, COLLAPSE_WINDOW)
    smooth = smoothed(steps, modes, COLLAPSE_WINDOW)
    best = max(modes)
    out = {"data": rec["data"], "arm": rec["arm"], "seed": rec["seed"], "final_modes": modes[-1],
           "final_hq": hq[-1], "final_kl": c[-1]["eval/kl"], "max_modes": best, "collapse": mc,
           "sustained": mc is not None and smooth[-1] <= COLLAPSE_RATIO * max(smooth), "wall_s": rec["wall_s"],
           "q3_modes": float(np.mean([m for s, m in zip(steps, modes) if t / 2 <= s < 3 * t / 4])),
           "q4_modes": float(np.mean([m for s, m in zip(steps, modes) if s >= 3 * t / 4])),
           "q3_hq": float(np.mean([h for s, h in zip(steps, hq) if t / 2 <= s < 3 * t / 4])),
           "q4_hq": float(np.mean([h for s, h in zip(steps, hq) if s >= 3 * t / 4])),
           "at": {s: m for s, m in zip(steps, modes)}}
    out["flags"], out["wflags"] = {}, {}
    for layer in LAYERS:
        key = f"spectral/{layer}/frac_above"
        ls = [r["gen_step"] for r in c if key in r]
        fr = [r[key] for r in c if key in r]
        recorded = [r["gen_step"] for r in c if r.get(f"spectral/{layer}/collapse", 0) > 0]
        out["flags"][layer] = recorded[0] if recorded else None
        out["wflags"][layer] = first_flag(ls, fr, flag_window)
    return out


def _fmt(x, nd=0) -> str:
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _first(flags: Dict[str, Optional[int]]) -> Optional[int]:
    vals = [v for v in flags.values() if v is not None]
    return min(vals) if vals else None


def write(args) -> None:
    recs = load_records()
    if not recs:
        raise SystemExit(f"error: no records in {OUT / 'runs'}: run `python experiments/srgan_grid.py run` first")
    sums = [summarize(r, args.flag_window) for r in recs]
    late = next((r["late_start"] for r in recs if r.get("late_start")), args.late_start)
    label = {a: LABELS[a].format(late=late) for a in ARMS}
    marks = [m for m in (2000, 4000, 6000, 8000, 10000, 12000, 16000, 20000, 24000, 30000)
             if m <= max(r["steps"] for r in recs)]
    lines = ["# SR-GAN vs SN-GAN on the 2-D mixtures: per-seed results", "",
             "Generated by `python experiments/srgan_grid.py write` from the records in `runs/` (one per data, arm "
             "and seed; each holds its command, commit and machine). Definitions: see the experiment's docstring and "
             "the page above (`../README.md`, section 2-D).", ""]
    for data, k in DATASETS.items():
        ds = [s for s in sums if s["data"] == data]
        if not ds:
            continue
        lines += [f"## {data} ({k} modes)", "",
                  "| arm | seed | modes at " + " / ".join(f"{m // 1000}k" for m in marks) + " | max | final HQ % | "
                  "final KL | mode collapse at | sustained | first flag net.0 / net.2 / net.4 | windowed flag "
                  "net.0 / net.2 / net.4 | wall s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in ds:
            at = " / ".join(_fmt(s["at"].get(m)) if s["at"].get(m) is None else f"{s['at'][m]:.0f}" for m in marks)
            lines.append(
                f"| {label[s['arm']]} | {s['seed']} | {at} | {s['max_modes']:.0f} | {100 * s['final_hq']:.1f} | "
                f"{s['final_kl']:.3f} | {_fmt(s['collapse'])} | {'yes' if s['sustained'] else 'no'} | "
                + " / ".join(_fmt(s["flags"][l]) for l in LAYERS) + " | "
                + " / ".join(_fmt(s["wflags"][l]) for l in LAYERS) + f" | {s['wall_s']:.0f} |")
        lines += ["", "| arm | seeds | final modes (median, range) | final HQ % (median) | runs that collapse "
                  "(sustained) | plateau: median modes Q3 → Q4 | median HQ % Q3 → Q4 | plateau met |",
                  "|---|---|---|---|---|---|---|---|"]
        for arm in ARMS:
            ss = [s for s in ds if s["arm"] == arm]
            if not ss:
                continue
            q3m, q4m = np.median([s["q3_modes"] for s in ss]), np.median([s["q4_modes"] for s in ss])
            q3h, q4h = 100 * np.median([s["q3_hq"] for s in ss]), 100 * np.median([s["q4_hq"] for s in ss])
            fm = [s["final_modes"] for s in ss]
            lines.append(
                f"| {label[arm]} | {len(ss)} | {np.median(fm):.0f} ({min(fm):.0f}–{max(fm):.0f}) | "
                f"{100 * np.median([s['final_hq'] for s in ss]):.1f} | {sum(s['collapse'] is not None for s in ss)} "
                f"({sum(s['sustained'] for s in ss)}) | {q3m:.1f} → {q4m:.1f} | {q3h:.1f} → {q4h:.1f} | "
                f"{'yes' if abs(q4m - q3m) <= 1 + 1e-9 and abs(q4h - q3h) <= 5 + 1e-9 else 'no'} |")
        sn = [s for s in ds if s["arm"] == "sngan"]
        if sn:
            lines += ["", "SN-GAN: does the flag precede the collapse? (lag = collapse − first flag of any hidden "
                      "layer, in generator steps; positive: the flag came first)", "",
                      "| seed | mode collapse at | first flag (any layer) | lag | first windowed flag | lag |",
                      "|---|---|---|---|---|---|"]
            for s in sn:
                f0, w0 = _first(s["flags"]), _first(s["wflags"])
                lag = None if s["collapse"] is None or f0 is None else s["collapse"] - f0
                wlag = None if s["collapse"] is None or w0 is None else s["collapse"] - w0
                lines.append(f"| {s['seed']} | {_fmt(s['collapse'])} | {_fmt(f0)} | {_fmt(lag)} | {_fmt(w0)} | "
                             f"{_fmt(wlag)} |")
        lines.append("")
    fine = load_records("fine")
    if fine:
        lines += ["## When does the flag fire? SN-GAN's first steps at a finer resolution", "",
                  f"`python experiments/srgan_grid.py run --arms sngan --steps {fine[0]['steps']} --every "
                  f"{fine[0]['every']} --tag fine`: the same runs as above (same seeds and configs, so bit for bit "
                  f"the same training up to {fine[0]['steps']} steps), evaluated every {fine[0]['every']} generator "
                  "steps.", "",
                  "| data | seed | max modes (at) | mode collapse at | first flag net.0 / net.2 / net.4 | lag (collapse − "
                  "first flag) | windowed flag net.0 / net.2 / net.4 |", "|---|---|---|---|---|---|---|"]
        for r in fine:
            s = summarize(r, args.flag_window)
            c = r["curve"]
            best = max(c, key=lambda x: x["eval/modes"])
            f0 = _first(s["flags"])
            lag = None if s["collapse"] is None or f0 is None else s["collapse"] - f0
            lines.append(f"| {r['data']} | {r['seed']} | {best['eval/modes']:.0f} ({best['gen_step']}) | "
                         f"{_fmt(s['collapse'])} | " + " / ".join(_fmt(s["flags"][l]) for l in LAYERS) +
                         f" | {_fmt(lag)} | " + " / ".join(_fmt(s["wflags"][l]) for l in LAYERS) + " |")
        lines.append("")
    lines += ["## Machine and cost", "", f"- {recs[0]['machine']}; commits {', '.join(sorted({r['commit'] for r in recs}))}",
              f"- {len(recs)} runs, {sum(r['wall_s'] for r in recs) / 60:.1f} min of run wall time in all "
              "(two runs side by side on the 2-core VM)", ""]
    (OUT / "results.md").write_text("\n".join(lines))
    plot(recs, sums, label)
    print("\n".join(lines))


def plot(recs: List[dict], sums: List[dict], label: Dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one figure per (data, seed): modes of every arm, SN-GAN's per-layer fraction σ_i/σ₁ > ½, flags marked
    for data in DATASETS:
        for seed in sorted({r["seed"] for r in recs if r["data"] == data}):
            rs = [r for r in recs if r["data"] == data and r["seed"] == seed]
            fig, (a0, a1) = plt.subplots(2, 1, figsize=(8, 5.6), sharex=True)
            for r in rs:
                c = r["curve"]
                a0.plot([x["gen_step"] for x in c], [x["eval/modes"] for x in c], color=COLORS[r["arm"]],
                        lw=1.2 if r["arm"] == "sngan" else 0.9, label=label[r["arm"]])
            s_sn = next((s for s in sums if s["data"] == data and s["seed"] == seed and s["arm"] == "sngan"), None)
            sn = next((r for r in rs if r["arm"] == "sngan"), None)
            if sn is not None:
                for li, layer in enumerate(LAYERS):
                    key = f"spectral/{layer}/frac_above"
                    pts = [(x["gen_step"], x[key]) for x in sn["curve"] if key in x]
                    color = ["0.2", "tab:orange", "tab:brown"][li]
                    a1.plot(*zip(*pts), color=color, lw=1, label=f"SN-GAN D {layer}")
                    if s_sn["flags"][layer] is not None:
                        a1.axvline(s_sn["flags"][layer], color=color, ls=":", lw=1)
                    if s_sn["wflags"][layer] is not None:
                        a1.plot([s_sn["wflags"][layer]], [0.02], marker="^", color=color, ms=7)
                if s_sn["collapse"] is not None:
                    for ax in (a0, a1):
                        ax.axvline(s_sn["collapse"], color="tab:red", ls="--", lw=1)
            a0.set_ylabel(f"modes (of {DATASETS[data]})")
            a0.legend(fontsize=7, loc="lower right")
            a1.set_ylabel("fraction of σ_i/σ_1 > ½")
            a1.set_ylim(0, 1.05)
            a1.set_xlabel("generator step")
            a1.legend(fontsize=7, loc="upper right")
            a0.set_title(f"{data}, seed {seed}: red dashed = SN-GAN's mode collapse; dotted = SpectralMonitor flag; "
                         "▲ = windowed flag", fontsize=8)
            fig.tight_layout()
            fig.savefig(OUT / f"{data}_s{seed}.png", dpi=90)
            plt.close(fig)
    # overview: median and range of modes / HQ over seeds, per arm and data
    fig, axes = plt.subplots(2, len(DATASETS), figsize=(5.2 * len(DATASETS), 6.4), squeeze=False)
    for j, data in enumerate(DATASETS):
        for arm in ARMS:
            rs = [r for r in recs if r["data"] == data and r["arm"] == arm]
            if not rs:
                continue
            steps = [x["gen_step"] for x in rs[0]["curve"]]
            for i, key in enumerate(("eval/modes", "eval/hq")):
                m = np.array([[x[key] for x in r["curve"]] for r in rs if len(r["curve"]) == len(steps)])
                ax = axes[i][j]
                ax.plot(steps, np.median(m, 0), color=COLORS[arm], lw=1.2, label=f"{label[arm]} ({len(m)} seeds)")
                ax.fill_between(steps, m.min(0), m.max(0), color=COLORS[arm], alpha=0.12)
        axes[0][j].set_title(f"{data}: modes (median, band = min–max over seeds)", fontsize=9)
        axes[1][j].set_title(f"{data}: HQ fraction", fontsize=9)
        axes[1][j].set_xlabel("generator step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "overview.png", dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["run", "write"])
    p.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--arms", nargs="+", default=[a for a in ARMS if a != "srgan_dynamic_peak"], choices=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=20000, help="generator steps per run")
    p.add_argument("--every", type=int, default=250, help="evaluation cadence in generator steps")
    p.add_argument("--spectra-every", type=int, default=1000, help="full spectra kept in the record every ... steps")
    p.add_argument("--late-start", type=int, default=2000, help="sr_start of srgan_dynamic_late")
    p.add_argument("--flag-window", type=int, default=2000, help="window of the proposed spectral-collapse flag")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one torch thread each)")
    p.add_argument("--tag", default="", help="a side study's records (e.g. fine): <arm>-s<seed>-<tag>.json")
    args = p.parse_args()
    if args.action == "write":
        write(args)
        return
    jobs = [(d, a, s) for s in args.seeds for d in args.data for a in args.arms
            if not record_path(d, a, s, args.tag).exists()]
    print(f"[srgan_grid] {len(jobs)} runs to do ({args.jobs} at a time)", flush=True)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(lambda j: run_one(*j, args), jobs))


if __name__ == "__main__":
    main()

"""WGAN-GP mode coverage on ring8 and grid25 (VEEGAN/PacGAN protocol) over several seeds.

Each run is ``train.py fit --config configs/wgan_gp/<data>.yaml`` (paper defaults: λ = 10, 5 critic steps,
betas (0, 0.9), two-sided GP, independent pairs; 3×128 MLPs, batch 256) with a short budget: ``--steps`` generator
steps and learning rate ``--lr`` for both nets (the configs use 1e-4 for 3000 steps; the short budget raises it).
Metrics (2,500 samples, HQ = within 3 std of a mode): modes captured, HQ %, reverse KL of the mode histogram
against uniform, and the final congested cost / W1 from the CongestionMonitor. Budget: with the defaults
(1000 generator steps = 5000 critic steps per run, 2 datasets × 5 seeds) about 15 min on one idle core.

    OMP_NUM_THREADS=1 python experiments/wgan_gp_modes.py [--steps 1000] [--lr 1e-3] [--seeds 0 1 2 3 4]

Writes docs/results/wgan_gp/<out>.md (default modes.md: table + the exact command of every run) and
<out>_<data>.png (final samples of seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")

from zoo.cli import main as cli_main  # noqa: E402

OUT = ROOT / "docs" / "results" / "wgan_gp"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    ap.add_argument("--root", default="/tmp/wgan_gp_modes")
    ap.add_argument("--out", default="modes", help="name of the Markdown table / figure prefix under docs/results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    header = [f"machine: {platform.node()} {platform.machine()} (torch threads 1)",
              f"versions: python {platform.python_version()}, torch {torch.__version__}",
              f"command: OMP_NUM_THREADS=1 python experiments/wgan_gp_modes.py {' '.join(sys.argv[1:])}".strip(),
              f"seeds: {args.seeds}; generator steps per run: {args.steps}; lr: {args.lr}"]
    print("\n".join(header), flush=True)
    rows, cmds = {}, []
    t_all = time.time()
    for data in args.data:
        rows[data] = []
        for seed in args.seeds:
            run = f"{data}_s{seed}"
            argv = ["fit", "--config", f"configs/wgan_gp/{data}.yaml", "--seed_everything", str(seed),
                    "--model.init_args.max_gen_steps", str(args.steps), "--model.init_args.lr_g", str(args.lr),
                    "--model.init_args.lr_d", str(args.lr), "--mode_coverage.every_n_gen_steps", "0",
                    "--sample_plot.every_n_gen_steps", "0", "--trainer.enable_progress_bar", "false",
                    "--trainer.default_root_dir", args.root, "--run_name", run, "--wandb", "false"]
            shutil.rmtree(Path(args.root) / run, ignore_errors=True)
            cmds.append("python train.py " + " ".join(argv))
            t0 = time.time()
            cli_main(argv)
            res = json.loads((Path(args.root) / run / "results.json").read_text())
            met = res["metrics"]
            r = dict(seed=seed, modes=met["eval/modes"], hq=met["eval/hq"], kl=met["eval/kl"],
                     cost=met.get("congestion/cost"), w1=met.get("congestion/w1"), s=time.time() - t0)
            rows[data].append(r)
            print(f"{data} seed {seed}: modes {r['modes']:.0f} HQ {100 * r['hq']:.1f}% KL {r['kl']:.3f} "
                  f"cost {r['cost']} W1 {r['w1']} ({r['s']:.0f} s)", flush=True)
            if seed == args.seeds[0]:
                src = Path(args.root) / run / "plots" / "samples_final.png"
                if src.exists():
                    shutil.copy(src, OUT / f"{args.out}_{data}.png")
            write(rows, cmds, header, args, time.time() - t_all)


def write(rows, cmds, header, args, total):
    k = {"ring8": 8, "grid25": 25}
    lines = ["# WGAN-GP mode coverage (ring8, grid25)", "", "```", *header, f"total wall time: {total:.0f} s", "```",
             "", "| data | seeds | modes (mean ± sd) | HQ % (mean ± sd) | reverse KL (mean ± sd) | congested cost | W1 |",
             "|---|---|---|---|---|---|---|"]

    def ms(v):
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    for data, rs in rows.items():
        if not rs:
            continue
        cost = [r["cost"] for r in rs if r["cost"] is not None]
        w1 = [r["w1"] for r in rs if r["w1"] is not None]
        lines.append(f"| {data} | {len(rs)} | {ms([r['modes'] for r in rs])} / {k.get(data, '?')} | "
                     f"{ms([100 * r['hq'] for r in rs])} | {ms([r['kl'] for r in rs])} | "
                     f"{ms(cost) if cost else '–'} | {ms(w1) if w1 else '–'} |")
    lines += ["", "Per run:", "", "| data | seed | modes | HQ % | KL | cost | W1 | wall s |", "|---|---|---|---|---|---|---|---|"]
    for data, rs in rows.items():
        for r in rs:
            lines.append(f"| {data} | {r['seed']} | {r['modes']:.0f} | {100 * r['hq']:.1f} | {r['kl']:.3f} | "
                         f"{r['cost'] if r['cost'] is None else round(r['cost'], 4)} | "
                         f"{r['w1'] if r['w1'] is None else round(r['w1'], 4)} | {r['s']:.0f} |")
    lines += ["", "Commands (run from the repository root, WANDB_MODE=disabled OMP_NUM_THREADS=1):", "", "```", *cmds, "```", ""]
    (OUT / f"{args.out}.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

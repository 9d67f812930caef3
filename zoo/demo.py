"""``make demo``: train the baseline GAN on the 8-Gaussian ring on CPU, print the mode-coverage metrics
and the path of the saved scatter plot; ``--committed`` instead prints what the methods reach at their plateau,
from the convergence grid's committed records (``make demo`` ends with it, after its 300-step comparison, which
is a plumbing check, not a ranking).

    python -m zoo.demo [--steps 3000]
    python -m zoo.demo --committed [--data ring8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from zoo.cli import main as train_main


def run_vanilla(steps: int, root: str = "runs/demo") -> dict:
    name = f"vanilla-ring8-{time.strftime('%Y%m%d-%H%M%S')}"
    config = Path(__file__).resolve().parent / "configs" / "vanilla" / "ring8.yaml"  # package data
    train_main(["fit", "--config", str(config), "--model.init_args.max_gen_steps", str(steps),
                "--trainer.default_root_dir", root, "--run_name", name])
    return json.loads((Path(root) / name / "results.json").read_text())


def show_committed(data: str = "ring8") -> str:
    """The plateau table of the convergence grid's committed records (``docs/results/reproduction/runs``)."""
    from zoo.anytime import committed_records, load_records, table

    folder = committed_records()
    recs = [r for r in load_records(folder) if r["data"] == data] if folder.is_dir() else []
    lines = ["", "=" * 72,
             "The comparison above ran 300 generator steps per method: a plumbing check (training, evaluation,",
             "leaderboard), not a ranking — most GANs are still warming up at 300 steps."]
    if not recs:
        lines += ["No convergence records in this installation (they are committed in the repository under",
                  "docs/results/reproduction/runs; `python experiments/reproduction.py run` makes them)."]
    else:
        methods = list(dict.fromkeys(r["method"] for r in sorted(recs, key=lambda r: r["method"])))
        lines += [f"After {recs[0]['cap']:,} generator steps (committed records, {len(recs)} runs; the plateau column "
                  f"says which methods have flattened there), {data}:", ""] + table(recs, data, {m: m for m in methods})
        fig = folder.parent / f"convergence_{data}.png"
        if fig.exists():
            lines += ["", f"Curves against generator steps and seconds: {fig}"]
    lines.append("=" * 72)
    text = "\n".join(lines)
    print(text)
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="generator steps")
    parser.add_argument("--committed", action="store_true",
                        help="print the methods at their plateau from the committed convergence records")
    parser.add_argument("--data", default="ring8", help="with --committed: ring8 or grid25")
    args = parser.parse_args(argv)
    if args.committed:
        show_committed(args.data)
        return
    t0 = time.perf_counter()
    res = run_vanilla(args.steps)
    m = res["metrics"]
    run_dir = Path(res["artifacts"]["run_dir"])
    print()
    print("=" * 72)
    print(f"VanillaGAN on ring8 (8 Gaussians, radius 1, std 0.01), {res['steps']['gen_step']} generator steps, "
          f"seed {res['seed']}, {time.perf_counter() - t0:.0f} s")
    print(f"  modes captured : {m.get('eval/modes'):.0f} / 8")
    print(f"  high quality   : {100 * m.get('eval/hq'):.1f} % of 2,500 samples within 3 std of a mode")
    print(f"  reverse KL     : {m.get('eval/kl'):.3f}  (0 = all modes equally covered, log 8 = 2.079 = one mode)")
    print(f"  scatter plot   : {run_dir / res['artifacts']['final_plot']}")
    print(f"  results.json   : {run_dir / 'results.json'}")
    print("=" * 72)


if __name__ == "__main__":
    main()

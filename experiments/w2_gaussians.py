"""fit_w2 on random Gaussian pairs, d = 2, 16, 64, every method, against the Bures closed form.

Claims checked (issue 6): W2² within 2 % of Bures and L2-UVP ≤ 1 % for each method; default fit_w2 at d = 16
under 2 minutes on 2 cores. W2² uses the cost |x − y|² (no ½). L2-UVP = 100 E|T̂(X) − T*(X)|² / tr S2 on
16,384 fresh source samples; T* = gaussian_map. Times are wall-clock on a shared machine (see header) and
CPU time of this process.

    OMP_NUM_THREADS=1 python experiments/w2_gaussians.py [--dims 2 16 64] [--methods w2gn minimax restricted]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _icnn_common import OUT, gaussian_pair, gaussian_sampler, header, md_table  # noqa: E402
from zoo.ot import bures_w2, fit_w2, gaussian_map  # noqa: E402
from zoo.ot.w2 import cosine_similarity, l2_uvp  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", default=[
        "16:w2gn", "2:w2gn", "2:minimax", "2:restricted", "64:w2gn", "16:minimax", "16:restricted",
        "64:minimax", "64:restricted"], help="d:method pairs, in order (the table is rewritten after each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="outer steps (default: fit_w2's default)")
    ap.add_argument("--tag", default="", help="suffix of the output file (w2_gaussians<tag>.md)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    head = header([args.seed])
    rows = []
    OUT.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        d, method = int(run.split(":")[0]), run.split(":")[1]
        (m1, S1), (m2, S2) = gaussian_pair(d, seed=100 + d)
        ref = bures_w2(m1, S1, m2, S2)
        T = gaussian_map(m1, S1, m2, S2)
        if True:
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_w2(gaussian_sampler(m1, S1), gaussian_sampler(m2, S2), method=method, seed=args.seed,
                         steps=args.steps)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            torch.manual_seed(999)
            x = gaussian_sampler(m1, S1)(16384)
            tx, tstar = fit.forward(x), T(x.double()).float()
            row = {
                "d": d, "method": method, "Bures W2²": f"{ref:.4f}", "fit W2² (dual)": f"{fit.w2_squared:.4f}",
                "rel. err %": f"{100 * (fit.w2_squared / ref - 1):+.2f}",
                "primal E|X−T̂X|²": f"{fit.w2_squared_primal:.4f}",
                "L2-UVP %": f"{l2_uvp(tx, tstar, float(torch.trace(S2))):.3f}",
                "cos": f"{cosine_similarity(x, tx, tstar):.4f}",
                "train s (wall)": f"{fit.seconds:.1f}", "total s (wall)": f"{wall:.1f}", "total s (CPU)": f"{cpu:.1f}",
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            table = md_table(rows, list(rows[0]))
            (OUT / f"w2_gaussians{args.tag}.md").write_text(
                f"# fit_w2 on Gaussian pairs (steps: {args.steps or 'default'})\n\n" + head + "\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()

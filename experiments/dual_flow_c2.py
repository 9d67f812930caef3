"""C2 — mode coverage against the time-scale ratio r and the scheme, beside VanillaGAN and WGAN-GP.

Every run: Lightning ``Trainer`` on ``Synthetic2D`` (batch 256), the same MLP widths for every method, the same
number of generator steps (``--steps``; WGAN-GP's critic takes its usual 5 batches per generator step), then
``callbacks.modes.mode_metrics`` on 2,500 samples (modes, % high quality, reverse KL; VEEGAN/PacGAN protocol).
Sized to fit ~15 minutes on one shared CPU core: short budgets, small nets, 3 seeds — a smoke-scale comparison,
not the 10-seed protocol of the reference notes.

    python experiments/dual_flow_c2.py [--steps 500] [--seeds 0 1 2] [--data ring8 grid25] [--implicit-r 1 5]
    (writes docs/results/dual_flow/c2_<data>.md / .json; the recorded runs used one process per dataset)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results", "dual_flow")
HIDDEN = (64, 64, 64)


def methods(tau_sgd: float, tau_imp: float, implicit_r=(1.0, 5.0)):
    from zoo.dual_flow import DualFlowGAN
    from zoo.vanilla import VanillaGAN

    out = {}
    for r in (1.0, 5.0):
        out[f"dual_flow mlp-D explicit SGD τ={tau_sgd} r={r:g}"] = (
            DualFlowGAN, dict(discriminator="mlp", scheme="explicit", tau=tau_sgd, ratio_r=r, hidden=HIDDEN))
    for r in implicit_r:
        out[f"dual_flow mlp-D implicit τ={tau_imp} r={r:g} K=2"] = (
            DualFlowGAN, dict(discriminator="mlp", scheme="implicit", tau=tau_imp, ratio_r=r, inner_steps=2,
                              hidden=HIDDEN))
    out["dual_flow energy best response (r=∞) explicit τ=0.05"] = (
        DualFlowGAN, dict(discriminator="energy", ratio_r=None, tau=0.05, hidden=HIDDEN))
    out["vanilla (Adam 1e-3)"] = (VanillaGAN, dict(hidden=HIDDEN, lr_g=1e-3, lr_d=1e-3))
    if os.path.exists(os.path.join(os.path.dirname(OUT), "..", "..", "zoo", "wgan_gp.py")):
        from zoo.wgan_gp import WGANGP

        out["wgan_gp (defaults: Adam 1e-4, n_critic 5)"] = (WGANGP, dict(hidden=HIDDEN))
    return out


def run(cls, kw, data: str, seed: int, steps: int):
    import pytorch_lightning as pl

    from callbacks.modes import mode_metrics
    from datamodules.synthetic import Synthetic2D

    pl.seed_everything(seed, verbose=False)
    dm = Synthetic2D(data, n_samples=50_000, val_samples=1000, batch_size=256, seed=seed)
    model = cls(max_gen_steps=steps, **kw)
    trainer = pl.Trainer(max_epochs=-1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=50)
    t0 = time.time()
    try:
        trainer.fit(model, dm)
        with torch.no_grad():
            s = model.sample(2500)
        res = mode_metrics(s, dm.modes, dm.mode_std)
        res["diverged"] = not bool(torch.isfinite(s).all())
    except FloatingPointError:
        res = {"modes": 0, "hq": 0.0, "kl": math.log(len(dm.modes)), "diverged": True}
    res["seconds"] = time.time() - t0
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    ap.add_argument("--tau-sgd", type=float, default=0.02)
    ap.add_argument("--tau-implicit", type=float, default=0.05)
    ap.add_argument("--implicit-r", type=float, nargs="+", default=[1.0, 5.0])
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    import pytorch_lightning as pl

    cmd = "python " + " ".join(sys.argv)
    print(f"machine: {platform.platform()} | python {platform.python_version()} | torch {torch.__version__} | "
          f"lightning {pl.__version__}\ncommand: {cmd}\nseeds: {args.seeds}", flush=True)
    table = {}
    t0 = time.time()
    for data in args.data:
        for name, (cls, kw) in methods(args.tau_sgd, args.tau_implicit, args.implicit_r).items():
            for seed in args.seeds:
                res = run(cls, kw, data, seed, args.steps)
                table.setdefault((data, name), []).append(res)
                print(f"  {data} | {name} | seed {seed}: {res}", flush=True)
    elapsed = time.time() - t0

    def ms(vals):
        n = len(vals)
        m = sum(vals) / n
        se = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1) / n) if n > 1 else float("nan")
        return m, se

    lines = ["# C2 — mode coverage vs r and scheme (smoke scale)", "",
             f"Command: `{cmd}` · machine: {platform.platform()} · torch {torch.__version__} · 1 thread · seeds "
             f"{args.seeds} · {args.steps} generator steps, batch 256, MLPs {HIDDEN} for every method · wall "
             f"{elapsed:.0f} s.", "",
             "Mean ± standard error over seeds; 2,500 samples; HQ = within 3σ of a mode.", "",
             "| data | method | modes | % HQ | reverse KL | diverged | s/run |", "|---|---|---|---|---|---|---|"]
    for (data, name), rs in table.items():
        m, se = ms([r["modes"] for r in rs])
        h, hse = ms([100 * r["hq"] for r in rs])
        k, kse = ms([r["kl"] for r in rs])
        dv = sum(r["diverged"] for r in rs)
        sec = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"| {data} | {name} | {m:.2f} ± {se:.2f} | {h:.1f} ± {hse:.1f} | {k:.2f} ± {kse:.2f} | "
                     f"{dv}/{len(rs)} | {sec:.0f} |")
    tag = "_".join(args.data)
    with open(os.path.join(OUT, f"c2_{tag}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, f"c2_{tag}.json"), "w") as f:
        json.dump({f"{d} | {n}": rs for (d, n), rs in table.items()}, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

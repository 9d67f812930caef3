"""ICNN W2-GAN on ring8, grid25 and two_squares (disconnected support), ≥ 3 seeds, with and without the
composite sampler ∇ψ∘G, plus scatter plots of the fitted map at the gaps between modes.

Metrics: mode_metrics (VEEGAN/PacGAN: modes, HQ fraction, reverse KL) for the mixtures on 2,500 samples; for
two_squares the off-support fraction (distance > 0.05) and the fraction of samples in the gap |x₁| < 1.
The budget is small (shared 2-core machine): see the header for steps; numbers are what was measured.

    OMP_NUM_THREADS=1 python experiments/icnn_gan_modes.py [--steps 300] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _icnn_common import OUT, header, md_table  # noqa: E402


def train_one(name, seed, steps, n_dis, composite_eval_n=2500):
    import pytorch_lightning as pl

    from callbacks.modes import mode_metrics, support_metrics
    from datamodules import Synthetic2D
    from zoo.icnn_w2gan import ICNNW2GAN

    pl.seed_everything(seed, verbose=False)
    dm = Synthetic2D(name=name, n_samples=20_000, val_samples=1000, batch_size=256, seed=seed)
    model = ICNNW2GAN(latent_dim=2, hidden=[64, 64, 64], icnn_hidden=[64, 64, 32], n_dis=n_dis,
                      lr_g=1e-3, lr_d=1e-3, max_gen_steps=steps, pretrain_steps=300)
    trainer = pl.Trainer(max_epochs=-1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    secs = time.perf_counter() - t0
    out = {}
    torch.manual_seed(1234)
    plain = model.sample(composite_eval_n, composite=False)
    torch.manual_seed(1234)
    comp = model.sample(composite_eval_n, composite=True)
    for tag, x in (("G", plain), ("∇ψ∘G", comp)):
        if dm.modes is not None:
            m = mode_metrics(x, dm.modes, dm.mode_std)
            out[tag] = {"modes": m["modes"], "hq": round(100 * m["hq"], 1), "kl": round(m["kl"], 3)}
        else:
            sm = support_metrics(x, dm.distance_to_support(x))
            gap = float((x[:, 0].abs() < 1).float().mean())
            out[tag] = {"off_support": round(100 * sm["off_support"], 1), "in_gap": round(100 * gap, 1)}
    return model, dm, out, secs, plain, comp


def scatter(model, dm, plain, comp, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = dm.sample(2500, torch.Generator().manual_seed(0))
    lo = torch.minimum(real.min(0).values, plain.min(0).values) - 0.5
    hi = torch.maximum(real.max(0).values, plain.max(0).values) + 0.5
    gx, gy = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), 25),
                            torch.linspace(float(lo[1]), float(hi[1]), 25), indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    tg = model.transport(grid)
    fig, ax = plt.subplots(1, 3, figsize=(15, 5))
    ax[0].scatter(real[:, 0], real[:, 1], s=2, c="k", alpha=0.4, label="data")
    ax[0].scatter(plain[:, 0], plain[:, 1], s=2, c="tab:blue", alpha=0.5, label="G(z)")
    ax[0].set_title("data vs G(z)")
    ax[1].scatter(real[:, 0], real[:, 1], s=2, c="k", alpha=0.4, label="data")
    ax[1].scatter(comp[:, 0], comp[:, 1], s=2, c="tab:red", alpha=0.5, label="∇ψ(G(z))")
    ax[1].set_title("data vs composite ∇ψ∘G")
    d = tg - grid
    ax[2].quiver(grid[:, 0], grid[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1, width=0.003,
                 color="tab:red", alpha=0.7)
    ax[2].scatter(real[:, 0], real[:, 1], s=1, c="k", alpha=0.3)
    ax[2].set_title("map x ↦ ∇ψ(x) − x on a grid (gaps between modes)")
    for a in ax:
        a.set_aspect("equal")
        a.legend(loc="upper right", fontsize=7, markerscale=4) if a is not ax[2] else None
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["ring8", "grid25", "two_squares"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200, help="generator steps per run")
    ap.add_argument("--n_dis", type=int, default=2)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    head = header(args.seeds) + f"\n- generator steps {args.steps}, n_dis {args.n_dis}, batch 256, solver w2gn, " \
        "ICNN [64, 64, 32], generator MLP [64, 64, 64], lr 1e-3"
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            model, dm, res, secs, plain, comp = train_one(name, seed, args.steps, args.n_dis)
            for tag, m in res.items():
                rows.append({"data": name, "seed": seed, "sampler": tag, **m, "train s": f"{secs:.0f}",
                             "steps": args.steps})
                print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
            if seed == args.seeds[0]:
                scatter(model, dm, plain, comp, OUT / f"gan_{name}_seed{seed}.png",
                        f"ICNN W2-GAN on {name}, seed {seed}, {args.steps} generator steps")
            (OUT / "icnn_gan_modes.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
            write_md(rows, head)


def write_md(rows, head):
    mix = [r for r in rows if "modes" in r]
    sup = [r for r in rows if "off_support" in r]
    text = "# ICNN W2-GAN: mode coverage with and without the composite map\n\n" + head + "\n\n"
    if mix:
        text += md_table(mix, ["data", "seed", "sampler", "modes", "hq", "kl", "train s"]) + "\n\n"
    if sup:
        text += md_table(sup, ["data", "seed", "sampler", "off_support", "in_gap", "train s"]) + "\n\n"
    text += "hq, off_support, in_gap in %. Scatter plots: gan_<data>_seed<first seed>.png.\n"
    (OUT / "icnn_gan_modes.md").write_text(text)


if __name__ == "__main__":
    main()

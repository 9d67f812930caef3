"""SN-GAN's spectral collapse vs SR-GAN (static / dynamic compensation) on stacked digits, over seeds.

    python experiments/srgan_collapse.py                     # the committed run (docs/results/srgan/): 4 arms x 3 seeds
    python experiments/srgan_collapse.py --jobs 2            # the same, two runs at a time (one thread each)
    python experiments/srgan_collapse.py --methods sngan --seeds 3 4 --tag more   # more seeds, merged below
    python experiments/srgan_collapse.py --merge             # only rebuild table + figures from <out>/runs/*.json

The configuration (the defaults) is SN-GAN's setting E of the SR-GAN paper with n_dis = 1 (srgan.md §2-3:
Adam lr 1e-3, β = (0.5, 0.999); few discriminator channels; n_dis = 1), on ``StackedDigits`` (three independent
8×8 digits as channels, 1000 modes): the SN-GAN "standard CNN" with D base width 8 (D = 3→8 conv3, 8→8 conv4/2,
8→16 conv3, linear), G base width 32, z = 32, hinge loss, batch 128, 20,000 generator steps. Arms: ``sngan``;
``srgan_static`` (official CIFAR-10 code: static compensation, fraction ½, from step 0); ``srgan_dynamic`` (the
zoo's default start: dynamic compensation from step 0, so the reference spectrum is the random initialisation's);
``srgan_dynamic_late`` (the official ImageNet workflow: SN-GAN's run resumed with dynamic SR at ``--late-start``;
with the same seed it is SN-GAN's run bit for bit until then, and the reference is SN-GAN's spectrum there).

Each (method, seed) trains on the CPU with one thread, through the module's own ``discriminator_step`` /
``generator_step`` (``train_plain``: the zoo's default loop without Lightning's per-batch machinery, which would
cost ~4 % on nets this small). Every ``--eval-every`` generator steps (and at step 0) it records, on
``--eval-samples`` samples drawn with a fixed seed:

* ``modes`` / ``kl``: :func:`callbacks.stacked.stacked_mode_metrics` (shipped digit CNN per channel; modes out
  of 1000, KL(p̂ ‖ U_1000) in nats) — the stacked-MNIST protocol of VEEGAN / PacGAN;
* ``fid``: Fréchet distance in the shipped digit CNN's features (:func:`callbacks.fid.fid_metric`) against
  ``--fid-real`` held-out stacked images (lower is better; not comparable to Inception FIDs);
* the discriminator's normalised spectra σ_i/σ₁ of every layer with :class:`callbacks.spectral.SpectralMonitor`
  (``frac_above`` = fraction of σ_i/σ₁ > 0.5, ``mean``, and its collapse flag).

Outputs in ``--out``: ``runs/<method>_s<seed><tag>.json`` (every curve and spectrum), ``results.md`` (configuration,
machine, commands, per-run and per-method tables, the collapse analysis), ``metrics.png`` (modes / FID /
``frac_above`` of ``--layer`` over generator steps, one line per run) and ``spectra.png`` (``--layer``'s normalised
spectrum over time, one panel per method and seed).

**Collapse analysis.** For a run whose flag fired on ``--layer`` at step t (first evaluation with
``frac_above < ½ · running max``), the table gives the mode count and FID averaged over the ``--window``
evaluations before t and over the ``--window`` evaluations from t on: the paper's claim is that spectral and mode
collapse happen together (modes drop and FID rises at t). ``frac ↔ modes`` is the Pearson correlation of
``frac_above`` and the mode count over the run's evaluations after the first 2,000 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

METHODS: Dict[str, dict] = {
    "sngan": {},
    "srgan_static": {"sr_mode": "static"},                          # official CIFAR-10 code: SR from step 0
    "srgan_dynamic": {"sr_mode": "dynamic"},                        # the zoo's default: reference = initial spectrum
    "srgan_dynamic_late": {"sr_mode": "dynamic", "late": True},     # official ImageNet workflow: SN-GAN's snapshot
}                                                                   # at --late-start resumed with SR on
COLORS = {"sngan": "tab:red", "srgan_static": "tab:blue", "srgan_dynamic": "tab:green",
          "srgan_dynamic_late": "tab:purple"}
WARMUP_STEPS = 2000  # evaluations before this step are left out of the frac/modes correlation


class StackedEvaluator:
    """Mode count / KL with the shipped digit CNN and FID in its features against ``n_real`` held-out images."""

    def __init__(self, dm, n_real: int):
        from callbacks.fid import feature_extractor, fid_metric, load_digits_classifier

        self.classifier = load_digits_classifier()
        real = dm.reference_samples(n_real, "val")
        self.fid = fid_metric(feature_extractor("digits", channels=3), tuple(real.shape[1:]))
        for i in range(0, len(real), 1000):
            self.fid.update(real[i:i + 1000].float(), real=True)
        self.n_real = len(real)

    def __call__(self, samples: torch.Tensor) -> dict:
        from callbacks.stacked import stacked_mode_metrics

        out = dict(stacked_mode_metrics(samples, self.classifier))
        self.fid.reset()  # fake statistics only: the real ones survive (reset_real_features=False)
        for i in range(0, len(samples), 1000):
            self.fid.update(samples[i:i + 1000], real=False)
        out["fid"] = float(self.fid.compute())
        return out


def train_plain(model, dm, steps: int, seed: int, on_eval, every: int) -> None:
    """The zoo's default training loop without a Lightning Trainer: one fresh real batch (uniform with replacement
    from the fixed training set) per :meth:`zoo.GANModule.train_batch` (a discriminator step; a generator step
    every ``n_dis``-th batch), with the optimizers of the module's ``configure_optimizers`` and plain
    ``backward``; ``on_eval(model)`` at step 0, every ``every`` generator steps and at the end."""
    dm.setup("fit")
    ds = dm.train_set
    model.ensure_built(dm.data_shape)
    opt_g, opt_d = model.configure_optimizers()
    model.optimizers = lambda: (opt_g, opt_d)
    model.manual_backward = lambda loss: loss.backward()
    model.train()
    g = torch.Generator().manual_seed(10_000 + seed)
    on_eval(model)
    while model.gen_step < steps:
        idx = torch.randint(len(ds), (dm.batch_size,), generator=g).tolist()
        before = model.gen_step
        logs = model.train_batch(model.real_from_batch(ds.__getitems__(idx)))
        if model.gen_step > before:
            if not all(bool(torch.isfinite(v).all()) for v in logs.values()):
                raise FloatingPointError(f"non-finite loss at gen_step {model.gen_step}: {logs}")
            if model.gen_step % every == 0 or model.gen_step == steps:
                on_eval(model)


def build(method: str, args):
    from zoo.srgan import SNGAN, SRGAN

    kw = dict(latent_dim=args.latent_dim, arch="cnn", g_channels=args.g_channels, d_channels=args.d_channels,
              loss=args.loss, lr_g=args.lr, lr_d=args.lr, betas=tuple(args.betas), n_dis=args.n_dis,
              max_gen_steps=args.steps)
    if method == "sngan":
        return SNGAN(**kw)
    extra = dict(METHODS[method])
    start = args.late_start if extra.pop("late", False) else args.sr_start
    return SRGAN(**kw, sr_every=args.sr_every, sr_fraction=args.sr_fraction, sr_start=start, sr_layers="conv",
                 **extra)


def run_one(method: str, seed: int, args) -> dict:
    """Train one (method, seed); returns its curves, spectra and wall time (also written to runs/)."""
    import pytorch_lightning as pl

    from callbacks.spectral import SpectralMonitor
    from datamodules import StackedDigits

    torch.set_num_threads(1)
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = StackedDigits(batch_size=args.batch_size, seed=0)
    dm.setup("fit")
    evaluate = StackedEvaluator(dm, args.fid_real)
    monitor = SpectralMonitor(every_n_gen_steps=args.eval_every, plots="none")
    model = build(method, args)
    rows: List[dict] = []

    def on_eval(m) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(12345)
            x = m.sample(args.eval_samples).float()
        row = {"step": m.gen_step, **evaluate(x)}
        with torch.no_grad():
            row.update(monitor.measure(m.discriminator, m.gen_step))
        rows.append(row)
        fr = " ".join(f"{k.split('/')[1]}={v:.2f}" for k, v in row.items() if k.endswith("frac_above"))
        print(f"  {method} s{seed} step {row['step']:6d} modes {row['modes']:4d} kl {row['kl']:.3f} "
              f"fid {row['fid']:8.2f} frac>0.5: {fr}", file=sys.stderr, flush=True)

    t0 = time.time()
    train_plain(model, dm, args.steps, seed, on_eval, args.eval_every)
    run = {"method": method, "seed": seed, "wall_s": time.time() - t0, "rows": rows,
           "collapsed_at": dict(monitor.collapsed_at), "fid_n_real": evaluate.n_real,
           "sr_calls": getattr(model, "sr_calls", 0),
           "spectra": {k: {"steps": s, "spectra": [t.tolist() for t in sp]} for k, (s, sp) in monitor.history.items()}}
    path = Path(args.out) / "runs" / f"{method}_s{seed}{'_' + args.tag if args.tag else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"header": header(args), "run": run}))
    os.replace(tmp, path)
    return run


def header(args) -> List[str]:
    import pytorch_lightning as pl

    return [
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} threads=1 per run, "
        f"jobs={args.jobs}",
        f"versions: python {platform.python_version()}, torch {torch.__version__}, pytorch_lightning {pl.__version__}",
        "command: python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "config: " + json.dumps({k: v for k, v in vars(args).items() if k not in ("out", "merge", "jobs", "tag")}),
    ]


def summarize(run: dict, layer: str, window: int) -> dict:
    rows = run["rows"]
    steps = np.array([r["step"] for r in rows])
    modes = np.array([r["modes"] for r in rows], float)
    fid = np.array([r["fid"] for r in rows])
    frac = np.array([r[f"spectral/{layer}/frac_above"] for r in rows])
    flag = [i for i, r in enumerate(rows) if r.get(f"spectral/{layer}/collapse", 0) > 0]
    i0 = flag[0] if flag else None
    late = steps >= WARMUP_STEPS
    corr = float(np.corrcoef(frac[late], modes[late])[0, 1]) if late.sum() > 2 and frac[late].std() > 0 else float("nan")
    tail = steps >= steps[-1] * 0.75
    early = (steps >= steps[-1] / 8) & (steps <= steps[-1] * 3 / 8)
    out = {"method": run["method"], "seed": run["seed"], "final_modes": int(modes[-1]), "final_fid": float(fid[-1]),
           "final_kl": float(rows[-1]["kl"]), "best_fid": float(fid.min()), "early_modes": float(modes[early].mean()),
           "early_fid": float(fid[early].mean()), "tail_modes": float(modes[tail].mean()),
           "tail_fid": float(fid[tail].mean()), "peak_frac": float(frac.max()), "final_frac": float(frac[-1]),
           "flag_step": None if i0 is None else int(steps[i0]), "corr": corr, "wall_s": run["wall_s"],
           "layers_flagged": len(run.get("collapsed_at", {}))}
    if i0 is not None:
        before, after = slice(max(0, i0 - window), i0), slice(i0, i0 + window)
        out.update(modes_before=float(modes[before].mean()) if i0 > 0 else float("nan"),
                   modes_after=float(modes[after].mean()), fid_before=float(fid[before].mean()) if i0 > 0 else
                   float("nan"), fid_after=float(fid[after].mean()))
    return out


def _ms(xs) -> str:
    xs = np.asarray([x for x in xs if x is not None and np.isfinite(x)], float)
    if not len(xs):
        return "–"
    return f"{xs.mean():.1f} ± {xs.std(ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def write_table(path: Path, headers: List[str], runs: List[dict], args) -> List[dict]:
    sums = [summarize(r, args.layer, args.window) for r in runs]
    lines = ["# SN-GAN spectral collapse vs SR-GAN on stacked digits — measured on this machine", "", "```",
             *headers, "```", "",
             f"Layer `{args.layer}` of D is the one analysed. `flag` = first evaluation where SpectralMonitor's "
             f"collapse flag fired on it (frac_above < ½ · its running maximum), `—` = never; before / after = mean "
             f"over the {args.window} evaluations before the flag / from the flag on (every {args.eval_every} "
             f"generator steps). `early` = mean over generator steps T/8 … 3T/8, `late` = mean over the last quarter "
             f"(3T/4 … T), T = the run's last step (means over evaluations, not extremes of a noisy curve). FID: "
             f"shipped digit-CNN features, {runs[0].get('fid_n_real', '?')} held-out real images, "
             f"{args.eval_samples} samples.", "",
             "| method | seed | modes early → late | final modes | FID early → late | final FID | best FID | "
             "frac>0.5 max → final | flag | modes before → after | FID before → after | frac↔modes r | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sums:
        flag = "—" if s["flag_step"] is None else str(s["flag_step"])
        ba = (f"{s['modes_before']:.0f} → {s['modes_after']:.0f}", f"{s['fid_before']:.0f} → {s['fid_after']:.0f}") \
            if s["flag_step"] is not None else ("–", "–")
        lines.append(f"| {s['method']} | {s['seed']} | {s['early_modes']:.0f} → {s['tail_modes']:.0f} | "
                     f"{s['final_modes']} | {s['early_fid']:.0f} → {s['tail_fid']:.0f} | {s['final_fid']:.0f} | "
                     f"{s['best_fid']:.0f} | {s['peak_frac']:.2f} → {s['final_frac']:.2f} | {flag} | {ba[0]} | "
                     f"{ba[1]} | {s['corr']:.2f} | {s['wall_s']:.0f} |")
    lines += ["", "| method | runs | modes early | modes late | final modes | FID early | FID late | final FID | "
              "best FID | final KL | runs flagged | mean frac↔modes r |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in dict.fromkeys(s["method"] for s in sums):
        ss = [s for s in sums if s["method"] == m]
        lines.append(f"| {m} | {len(ss)} | {_ms([s['early_modes'] for s in ss])} | "
                     f"{_ms([s['tail_modes'] for s in ss])} | {_ms([s['final_modes'] for s in ss])} | "
                     f"{_ms([s['early_fid'] for s in ss])} | {_ms([s['tail_fid'] for s in ss])} | "
                     f"{_ms([s['final_fid'] for s in ss])} | {_ms([s['best_fid'] for s in ss])} | "
                     f"{np.mean([s['final_kl'] for s in ss]):.3f} | {sum(s['flag_step'] is not None for s in ss)}/"
                     f"{len(ss)} | {np.nanmean([s['corr'] for s in ss]):.2f} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return sums


def plot(out: Path, runs: List[dict], layer: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("modes", "modes (of 1000)"), ("fid", "FID (digit-CNN features)"),
            (f"spectral/{layer}/frac_above", f"D layer {layer}: fraction of σ_i/σ_1 > 0.5")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6))
    for ax, (k, title) in zip(axes, keys):
        for r in runs:
            ax.plot([row["step"] for row in r["rows"]], [row[k] for row in r["rows"]],
                    color=COLORS.get(r["method"]), alpha=0.7, lw=1)
            flag = next((row["step"] for row in r["rows"] if row.get(f"spectral/{layer}/collapse", 0) > 0), None)
            if flag is not None:
                ax.axvline(flag, color=COLORS.get(r["method"]), ls=":", lw=0.8, alpha=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generator step")
    axes[1].set_yscale("log")
    handles = {m: plt.Line2D([], [], color=COLORS.get(m)) for m in dict.fromkeys(r["method"] for r in runs)}
    axes[0].legend(handles.values(), handles.keys(), fontsize=8)
    fig.text(0.01, 0.01, "dotted: SpectralMonitor's collapse flag on that layer", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=110)
    plt.close(fig)

    methods = list(dict.fromkeys(r["method"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    fig, axes = plt.subplots(len(methods), len(seeds), figsize=(3.6 * len(seeds) + 1.2, 2.6 * len(methods)),
                             squeeze=False, constrained_layout=True)
    for i, m in enumerate(methods):
        for j, sd in enumerate(seeds):
            ax = axes[i][j]
            r = next((r for r in runs if r["method"] == m and r["seed"] == sd), None)
            if r is None or layer not in r["spectra"]:
                ax.axis("off")
                continue
            hist = r["spectra"][layer]
            mat = np.array(hist["spectra"])
            im = ax.imshow(mat.T, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="magma",
                           extent=(hist["steps"][0], hist["steps"][-1], 0.5, mat.shape[1] + 0.5))
            ax.set_title(f"{m}, seed {sd}", fontsize=9)
            ax.set_xlabel("generator step", fontsize=8)
            ax.set_ylabel("index i", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"σ_i / σ_1 of D layer {layer}")
    fig.savefig(out / "spectra.png", dpi=100)
    plt.close(fig)


def _worker(job) -> dict:
    method, seed, args = job
    return run_one(method, seed, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--fid-real", type=int, default=5000, help="held-out real images for the FID statistics")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--g-channels", type=int, default=32)
    p.add_argument("--d-channels", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--betas", nargs=2, type=float, default=[0.5, 0.999])
    p.add_argument("--n-dis", type=int, default=1)
    p.add_argument("--loss", default="hinge", choices=["hinge", "ns"])
    p.add_argument("--sr-every", type=int, default=5)
    p.add_argument("--sr-fraction", type=float, default=0.5)
    p.add_argument("--sr-start", type=int, default=0, help="generator step from which SR-GAN rewrites D")
    p.add_argument("--late-start", type=int, default=4000,
                   help="sr_start of srgan_dynamic_late: until then the run is SN-GAN's, bit for bit (same seed)")
    p.add_argument("--layer", default="4", help="D layer analysed (index in the standard-CNN Sequential)")
    p.add_argument("--window", type=int, default=3, help="evaluations averaged before / after a flag")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument("--out", default="docs/results/srgan")
    p.add_argument("--tag", default="", help="suffix of the run files (e.g. for extra seeds)")
    p.add_argument("--merge", action="store_true", help="only rebuild results.md and the figures from runs/*.json")
    args = p.parse_args()
    out = Path(args.out)
    if not args.merge:
        jobs = [(m, s, args) for m in args.methods for s in args.seeds]
        print("\n".join(header(args)), flush=True)
        if args.jobs > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
                for run in pool.map(_worker, jobs):
                    print(json.dumps(summarize(run, args.layer, args.window)), flush=True)
        else:
            for job in jobs:
                print(json.dumps(summarize(_worker(job), args.layer, args.window)), flush=True)
    runs, headers = [], []
    order = {m: i for i, m in enumerate(METHODS)}
    for f in sorted((out / "runs").glob("*.json")):
        d = json.loads(f.read_text())
        headers += [h for h in d["header"] if h not in headers]
        runs.append(d["run"])
    runs.sort(key=lambda r: (order.get(r["method"], 99), r["seed"]))
    if not runs:
        raise SystemExit(f"error: no runs in {out / 'runs'}: run the experiment first (drop --merge)")
    write_table(out / "results.md", headers, runs, args)
    plot(out, runs, args.layer)


if __name__ == "__main__":
    main()

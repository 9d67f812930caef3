"""SN-GAN's spectral collapse vs SR-GAN (static / dynamic compensation) on an embedded dataset, over seeds.

    python experiments/srgan_collapse.py        # the committed run: stacked digits, fragile SN-GAN setting C, 3 seeds
    python experiments/srgan_collapse.py --data grid25 --hidden 64 64 64 --latent-dim 2 --batch-size 256 --lr 1e-3 \
        --layer net.2                           # the grid25 exploration (SN MLP discriminator)

Stacked digits (default): D = standard CNN with 8 base channels, n_dis 1, Adam 2e-4 (0.5, 0.999), hinge, batch 128,
2000 generator steps; see docs/results/srgan/README.md for what was measured.

For each (method, seed): train on CPU with one thread, with the zoo's default loop run directly (``train_plain``:
the module's own discriminator/generator steps, no Lightning Trainer, whose per-step overhead dominates these tiny
nets); every ``--eval-every`` generator steps record the mode
metrics (VEEGAN/PacGAN protocol: 2,500 samples, HQ radius 3σ; :func:`callbacks.modes.mode_metrics`) and the
discriminator's normalised spectra with :class:`callbacks.spectral.SpectralMonitor` (``frac_above`` of
σ_i/σ₁ > 0.5, mean, collapse flag = frac_above below half its running maximum). Writes to ``--out``:

* ``results.md``  — configuration, machine, versions, command, per-run and per-method tables;
* ``runs.json``   — every measured curve;
* ``metrics.png`` — modes / HQ / KL / frac_above over generator steps (one line per seed);
* ``spectra.png`` — the monitored layer's normalised spectrum over time, one panel per method (first seed with
  full spectra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from callbacks.modes import mode_metrics  # noqa: E402
from callbacks.spectral import SpectralMonitor  # noqa: E402
from datamodules import StackedDigits, Synthetic2D  # noqa: E402
from zoo.srgan import SNGAN, SRGAN  # noqa: E402

METHODS = {
    "sngan": (SNGAN, {}),
    "srgan_static": (SRGAN, {"sr_mode": "static"}),
    "srgan_dynamic": (SRGAN, {"sr_mode": "dynamic"}),
}


class DigitTriples:
    """Mode metrics for stacked digits (1000 modes = digit triples), PacGAN protocol with an independent classifier:
    a scikit-learn logistic regression fitted on the 8×8 digits of the datamodule's *train* split (held-out accuracy
    printed). A sample's mode is its triple of per-channel predictions; ``modes`` = number of distinct triples,
    ``kl`` = KL(p̂ ‖ U_1000) of the triple histogram, ``hq`` = fraction of samples whose three channels are all
    classified with probability > 0.9."""

    def __init__(self, seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        from datamodules.base import split_indices
        from datamodules.images import load_digits_tensor

        images, labels = load_digits_tensor()
        tr, va = split_indices(len(images), 0.2, seed)
        x = images.reshape(len(images), -1).numpy() / 16.0
        self.clf = LogisticRegression(max_iter=3000, C=10.0).fit(x[tr.numpy()], labels[tr].numpy())
        self.accuracy = float(self.clf.score(x[va.numpy()], labels[va].numpy()))
        self.modes, self.mode_std = None, None

    def metrics(self, samples: torch.Tensor) -> dict:
        x = ((samples.clamp(-1, 1) + 1) / 2).reshape(-1, 64).double().numpy()  # [-1, 1] -> [0, 1] = pixel/16
        prob = self.clf.predict_proba(x)
        pred = prob.argmax(1).reshape(-1, 3)
        conf = (prob.max(1) > 0.9).reshape(-1, 3).all(1)
        code = pred[:, 0] * 100 + pred[:, 1] * 10 + pred[:, 2]
        counts = np.bincount(code, minlength=1000).astype(float)
        p = counts[counts > 0] / counts.sum()
        return {"modes": int((counts > 0).sum()), "hq": float(conf.mean()), "kl": float((p * np.log(p * 1000)).sum())}


class Recorder(pl.Callback):
    """Mode metrics + SpectralMonitor measurements every ``every`` generator steps (and at step 0)."""

    def __init__(self, dm, every: int, n_samples: int = 2500, evaluator=None):
        self.dm, self.every, self.n, self.evaluator = dm, every, n_samples, evaluator
        self.monitor = SpectralMonitor(every_n_gen_steps=every, plots="none")
        self.rows: list = []
        self._last = -1

    def _record(self, module) -> None:
        step = module.gen_step
        if step == self._last:
            return
        self._last = step
        with torch.random.fork_rng():
            torch.manual_seed(12345)
            x = module.sample(self.n).float()
        if self.evaluator is not None:
            row = {"step": step, **self.evaluator.metrics(x)}
        else:
            row = {"step": step, **mode_metrics(x, self.dm.modes, self.dm.mode_std)}
        with torch.no_grad():
            spec = self.monitor.measure(module.discriminator, step)
        row.update(spec)
        self.rows.append(row)
        fr = " ".join(f"{k.split('/')[1]}={v:.2f}" for k, v in spec.items() if k.endswith("frac_above"))
        print(f"  step {step:6d} modes {row['modes']:2d} hq {row['hq']:.3f} kl {row['kl']:.3f} frac>0.5: {fr}",
              file=sys.stderr, flush=True)

    def on_train_start(self, trainer, module) -> None:
        self._record(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.gen_step % self.every == 0:
            self._record(module)

    def on_train_end(self, trainer, module) -> None:
        self._record(module)


_EVALUATOR = {}


def train_plain(model, dm, steps: int, rec: "Recorder", seed: int) -> None:
    """The zoo's default training loop (GANModule.training_step) without Lightning's per-step machinery, which
    dominates the cost of these tiny nets on a shared CPU: one fresh real batch (uniform with replacement from the
    fixed training set) per discriminator step, the module's own ``discriminator_step`` / ``generator_step``
    with Adam from its ``configure_optimizers`` and plain ``backward``."""
    dm.setup("fit")
    ds = dm.train_set
    model.ensure_built(dm.data_shape)
    opt_g, opt_d = model.configure_optimizers()
    model.optimizers = lambda: (opt_g, opt_d)
    model.manual_backward = lambda loss: loss.backward()
    model.train()
    g = torch.Generator().manual_seed(10_000 + seed)
    rec.on_train_start(None, model)
    while model.gen_step < steps:
        idx = torch.randint(len(ds), (dm.batch_size,), generator=g).tolist()
        real = model.real_from_batch(ds.__getitems__(idx))
        logs = model.discriminator_step(real)
        if model.is_generator_turn():
            logs.update(model.generator_step(real))
            model.count_gen_step()
            if not all(bool(torch.isfinite(v).all()) for v in logs.values()):
                raise FloatingPointError(f"non-finite loss at gen_step {model.gen_step}: {logs}")
            rec.on_train_batch_end(None, model, None, None, 0)
        model.batch_step_buf += 1
    rec.on_train_end(None, model)


def run_one(method: str, seed: int, args) -> dict:
    cls, extra = METHODS[method]
    pl.seed_everything(seed, workers=True, verbose=False)
    if args.data == "stacked_digits":
        dm = StackedDigits(batch_size=args.batch_size, seed=0)
        if "digits" not in _EVALUATOR:
            _EVALUATOR["digits"] = DigitTriples(seed=0)
            print(f"digit classifier held-out accuracy: {_EVALUATOR['digits'].accuracy:.4f}", flush=True)
        evaluator, arch, n_eval = _EVALUATOR["digits"], "cnn", args.eval_samples or 5000
    else:
        dm = Synthetic2D(name=args.data, batch_size=args.batch_size, seed=0)
        evaluator, arch, n_eval = None, "mlp", args.eval_samples or 2500
    kw = dict(latent_dim=args.latent_dim, arch=arch, hidden=tuple(args.hidden), g_channels=args.g_channels,
              d_channels=args.d_channels, loss=args.loss, lr_g=args.lr, lr_d=args.lr, betas=tuple(args.betas),
              n_dis=args.n_dis, max_gen_steps=args.steps)
    if cls is SRGAN:
        kw.update(sr_layers=args.sr_layers or ("all" if arch == "mlp" else "conv"), sr_every=args.sr_every,
                  sr_fraction=args.sr_fraction, **extra)
    model = cls(**kw)
    rec = Recorder(dm, args.eval_every, n_eval, evaluator)
    t0 = time.time()
    train_plain(model, dm, args.steps, rec, seed)
    wall = time.time() - t0
    return {"method": method, "seed": seed, "wall_s": wall, "rows": rec.rows,
            "collapsed_at": dict(rec.monitor.collapsed_at),
            "spectra": {k: {"steps": s, "spectra": [t.tolist() for t in sp]}
                        for k, (s, sp) in rec.monitor.history.items()}}


def runs_from_log(path: Path, header: list) -> list:
    """Rebuild runs (mode metrics and frac_above per layer, no full spectra) from a shard's console log: the
    per-evaluation lines this script prints. The collapse flag is recomputed with SpectralMonitor's rule
    (frac_above < ½ · its running maximum). Only complete runs (ending at the last step) are kept."""
    import re

    lines = path.read_text().splitlines()
    cmd = next(line for line in lines if line.startswith("command: "))
    for h in lines[:6]:
        if h.startswith(("machine:", "versions:", "command:", "seeds:", "config:")) and h not in header:
            header.append(h)
    argv = cmd.split()
    methods = argv[argv.index("--methods") + 1:]
    methods = methods[:next((i for i, a in enumerate(methods) if a.startswith("--")), len(methods))]
    seeds = argv[argv.index("--seeds") + 1:]
    seeds = [int(x) for x in seeds[:next((i for i, a in enumerate(seeds) if a.startswith("--")), len(seeds))]]
    steps = int(argv[argv.index("--steps") + 1])
    runs, rows = [], None
    pat = re.compile(r"^\s+step\s+(\d+) modes\s+(\d+) hq ([\d.]+) kl ([\d.]+) frac>0.5: (.*)$")
    for line in lines:
        m = pat.match(line)
        if not m:
            continue
        step = int(m.group(1))
        if step == 0:
            rows = []
            runs.append(rows)
        row = {"step": step, "modes": int(m.group(2)), "hq": float(m.group(3)), "kl": float(m.group(4))}
        for item in m.group(5).split():
            name, val = item.split("=")
            row[f"spectral/{name}/frac_above"] = float(val)
        rows.append(row)
    walls = {}
    for line in lines:
        if line.startswith("{") and '"wall_s"' in line:
            d = json.loads(line)
            walls[(d["method"], d["seed"])] = d["wall_s"]
    out = []
    pairs = [(mm, sd) for mm in methods for sd in seeds]
    for (method, seed), rows in zip(pairs, runs):
        if rows[-1]["step"] < steps:
            continue
        best: dict = {}
        for row in rows:
            for k in [k for k in row if k.endswith("frac_above")]:
                best[k] = max(best.get(k, row[k]), row[k])
                row[k.replace("frac_above", "collapse")] = float(row[k] < 0.5 * best[k])
        out.append({"method": method, "seed": seed, "wall_s": walls.get((method, seed), float("nan")), "rows": rows,
                    "spectra": {},
                    "source": str(path)})
    return out


def summarize(run: dict, layer: str) -> dict:
    rows = run["rows"]
    modes = [r["modes"] for r in rows]
    peak_i = int(np.argmax(modes))
    final = rows[-1]
    key = f"spectral/{layer}/frac_above"
    flag = f"spectral/{layer}/collapse"
    first_flag = next((r["step"] for r in rows if r.get(flag, 0) > 0), None)
    return {"method": run["method"], "seed": run["seed"], "peak_modes": modes[peak_i],
            "peak_step": rows[peak_i]["step"], "final_modes": final["modes"], "final_hq": final["hq"],
            "final_kl": final["kl"], "peak_frac": max(r[key] for r in rows), "final_frac": final[key],
            "collapse_step": first_flag, "wall_s": run["wall_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="stacked_digits", choices=["stacked_digits", "grid25"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", nargs="+", type=int, default=[64, 64, 64])
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--g-channels", type=int, default=32, help="conv G base width (stacked_digits)")
    p.add_argument("--d-channels", type=int, default=8, help="conv D base width (stacked_digits)")
    p.add_argument("--sr-layers", default=None, help="conv|all (default: all for MLP D, conv for conv D)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--betas", nargs=2, type=float, default=[0.5, 0.999])
    p.add_argument("--n-dis", type=int, default=1)
    p.add_argument("--loss", default="hinge")
    p.add_argument("--sr-every", type=int, default=5)
    p.add_argument("--sr-fraction", type=float, default=0.5)
    p.add_argument("--layer", default="4", help="D layer shown in the spectrum figure / table")
    p.add_argument("--out", default="docs/results/srgan")
    p.add_argument("--tag", default="", help="suffix of the output files (e.g. for exploration runs)")
    p.add_argument("--eval-samples", type=int, default=None, help="samples per evaluation (default 2500 grid25, 5000 stacked digits)")
    p.add_argument("--merge", nargs="+", default=None,
                   help="only merge runs_<tag>.json files from --out (parallel shards) into one table and figures")
    args = p.parse_args()
    if args.merge:
        out = Path(args.out)
        runs, header = [], []
        for t in args.merge:
            if t.endswith(".log"):  # a shard's console log (curves without full spectra)
                runs += runs_from_log(Path(t), header)
                continue
            d = json.loads((out / f"runs_{t}.json").read_text())
            header += [h for h in d["header"] if h not in header]
            runs += d["runs"]
        header.append("merged: python " + " ".join(sys.argv))
        tag = f"_{args.tag}" if args.tag else ""
        (out / f"runs{tag}.json").write_text(json.dumps({"header": header, "runs": runs}))
        write_table(out / f"results{tag}.md", header, runs, args)
        plot(out, tag, runs, args)
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = [
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} "
        f"cpus={os.cpu_count()} threads=1",
        f"versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"pytorch_lightning {pl.__version__}",
        "command: python " + " ".join([sys.argv[0].replace(str(Path.cwd()) + "/", "")] + sys.argv[1:]),
        f"seeds: {args.seeds}",
        f"config: {json.dumps({k: v for k, v in vars(args).items() if k not in ('out',)})}",
    ]
    print("\n".join(header), flush=True)
    runs = []
    tag = f"_{args.tag}" if args.tag else ""
    for method in args.methods:
        for seed in args.seeds:
            run = run_one(method, seed, args)
            runs.append(run)
            s = summarize(run, args.layer)
            print(json.dumps(s), flush=True)
            (out / f"runs{tag}.json").write_text(json.dumps({"header": header, "runs": runs}))  # after every run
    write_table(out / f"results{tag}.md", header, runs, args)
    plot(out, tag, runs, args)


def write_table(path: Path, header, runs, args) -> None:
    sums = [summarize(r, args.layer) for r in runs]
    lines = ["# SN-GAN spectral collapse vs SR-GAN — measured on this machine", "", "```", *header, "```", "",
             f"Spectral columns are for D layer `{args.layer}`; `collapse step` = first evaluation where "
             "SpectralMonitor's flag fired (frac_above < ½ · running max), `—` = never.", "",
             "| method | seed | peak modes (step) | final modes | final HQ % | final KL | frac>0.5 peak → final | "
             "collapse step | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for s in sums:
        lines.append(f"| {s['method']} | {s['seed']} | {s['peak_modes']} ({s['peak_step']}) | {s['final_modes']} | "
                     f"{100 * s['final_hq']:.1f} | {s['final_kl']:.3f} | {s['peak_frac']:.3f} → {s['final_frac']:.3f} "
                     f"| {s['collapse_step'] if s['collapse_step'] is not None else '—'} | {s['wall_s']:.0f} |")
    lines += ["", "| method | seeds | final modes mean ± sd | final HQ % mean | final KL mean | runs flagged |",
              "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(s["method"] for s in sums):
        ss = [s for s in sums if s["method"] == m]
        fm = np.array([s["final_modes"] for s in ss], float)
        lines.append(f"| {m} | {len(ss)} | {fm.mean():.1f} ± {fm.std(ddof=1) if len(fm) > 1 else 0:.1f} | "
                     f"{100 * np.mean([s['final_hq'] for s in ss]):.1f} | {np.mean([s['final_kl'] for s in ss]):.3f} | "
                     f"{sum(s['collapse_step'] is not None for s in ss)}/{len(ss)} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(out: Path, tag: str, runs, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in runs))
    colors = {"sngan": "tab:red", "srgan_static": "tab:blue", "srgan_dynamic": "tab:green"}
    keys = [("modes", "modes"), ("hq", "HQ fraction"), ("kl", "KL(p̂‖U)"),
            (f"spectral/{args.layer}/frac_above", f"{args.layer}: frac σ/σ₁ > 0.5")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    for ax, (k, title) in zip(axes, keys):
        for r in runs:
            xs = [row["step"] for row in r["rows"]]
            ys = [row[k] for row in r["rows"]]
            ax.plot(xs, ys, color=colors.get(r["method"], None), alpha=0.75,
                    label=r["method"] if r["seed"] == runs[0]["seed"] or k != keys[0][0] else None)
        ax.set_title(title)
        ax.set_xlabel("generator step")
    handles = {}
    for r in runs:
        handles.setdefault(r["method"], plt.Line2D([], [], color=colors.get(r["method"])))
    axes[0].legend(handles.values(), handles.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"metrics{tag}.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(methods), figsize=(4.4 * len(methods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], methods):
        r = next((r for r in runs if r["method"] == m and r["spectra"].get(args.layer)), None)
        if r is None:  # runs rebuilt from logs carry no full spectra
            continue
        hist, seed0 = r["spectra"][args.layer], r["seed"]
        steps, spectra = hist["steps"], hist["spectra"]
        cmap = plt.get_cmap("viridis")
        for i, (st, sp) in enumerate(zip(steps, spectra)):
            ax.plot(range(1, len(sp) + 1), sp, color=cmap(i / max(1, len(steps) - 1)), lw=0.9)
        ax.set_title(f"{m}, seed {seed0}: D {args.layer}")
        ax.set_xlabel("index i")
        ax.set_ylabel("σ_i / σ_1")
        ax.set_ylim(0, 1.05)
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(steps[0], steps[-1]))
        fig.colorbar(sm, ax=ax, label="generator step")
    fig.tight_layout()
    fig.savefig(out / f"spectra{tag}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

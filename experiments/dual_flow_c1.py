"""C1 — the small-step limit of the dual flow exists; the implicit scheme is stable where the explicit one is not.

Deterministic ("infinite batch" proxy) dual flows on ``ring8``: a fixed real set (256 points) and a fixed latent
batch (256 codes), the same initial networks (seed 0) and horizon T for every τ.

(a) Limit. τ ∈ {τ₀, τ₀/2, τ₀/4, τ₀/8} at fixed T; gap(τ) = ED(final samples at τ, final samples at τ/2) on
    1,000 fixed evaluation codes (energy distance, :func:`zoo.ot.kernels.energy_distance`), and the paired RMS
    |G_τ(z) − G_τ/2(z)|. A first-order scheme halves the RMS gap at each halving (ratio → 2); the ED of two
    nearby clouds is not a smooth function of the displacement, its ratio is reported as measured.
(b) Stability. Larger τ at the same horizon, explicit vs implicit, energy-kernel discriminator with r = 5
    (κ = rλτ; the explicit D step is unstable for κ > 2) and the neural (MLP) discriminator with r = 1.

    python experiments/dual_flow_c1.py            # writes docs/results/dual_flow/c1.md, c1.png
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from datamodules.synthetic import Synthetic2D  # noqa: E402
from zoo.dual_flow import DualFlowGAN  # noqa: E402
from zoo.ot.kernels import energy_distance  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results", "dual_flow")
HIDDEN = (64, 64)
SEED = 0


def fixed_sets():
    dm = Synthetic2D("ring8")
    g = torch.Generator().manual_seed(123)
    real = dm.sample(256, g)
    z = torch.randn(256, 2, generator=g)
    z_eval = torch.randn(1000, 2, generator=g)
    eval_real = dm.sample(1000, g)
    return real, z, z_eval, eval_real


def run_flow(tau: float, horizon: float, real, z, z_eval, **kw):
    torch.manual_seed(SEED)
    m = DualFlowGAN(data_shape=(2,), hidden=HIDDEN, tau=tau, **kw)
    m.ensure_built()
    steps = int(round(horizon / tau))
    ok = True
    for _ in range(steps):
        m.flow_step(real, z)
        x = m.generate(z[:8]).detach()
        if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > 100.0:  # data lie in |x| ≤ 1.1
            ok = False
            break
    with torch.no_grad():
        out = m.generate(z_eval)
    return out, ok, steps


def part_a(real, z, z_eval, rows, curves):
    taus = [0.08, 0.04, 0.02, 0.01]
    horizon = 4.0
    families = {
        "neural D (mlp, gp 1 fixed x̂), r=1, explicit SGD": dict(discriminator="mlp", ratio_r=1.0, gp_random=False),
        "neural D (mlp, gp 1 fixed x̂), r=1, implicit (w2 prox, K=3)": dict(
            discriminator="mlp", ratio_r=1.0, gp_random=False, scheme="implicit", inner_steps=3),
        "energy best response (r=inf), explicit": dict(discriminator="energy", ratio_r=None),
    }
    for name, kw in families.items():
        finals = []
        for tau in taus:
            t0 = time.time()
            out, ok, steps = run_flow(tau, horizon, real, z, z_eval, **kw)
            finals.append(out)
            print(f"  [a] {name} tau={tau} steps={steps} ok={ok} {time.time() - t0:.1f}s", flush=True)
        gaps = []
        for i in range(len(taus) - 1):
            ed = float(energy_distance(finals[i], finals[i + 1]))
            rms = float((finals[i] - finals[i + 1]).pow(2).sum(1).mean().sqrt())
            gaps.append((taus[i], ed, rms))
            rows.append((name, taus[i], taus[i + 1], ed, rms))
        curves[name] = gaps


def part_b(real, z, z_eval, eval_real, rows):
    horizon = 6.4
    taus = [0.2, 0.4, 0.8, 1.6]
    families = {
        "energy D, r=5": dict(discriminator="energy", ratio_r=5.0, memory=64),
        "neural D (mlp, gp 1 fixed x̂), r=1": dict(discriminator="mlp", ratio_r=1.0, gp_random=False),
    }
    for name, kw in families.items():
        for scheme in ("explicit", "implicit"):
            for tau in taus:
                extra = dict(scheme="implicit", inner_steps=5) if scheme == "implicit" else {}
                t0 = time.time()
                torch.manual_seed(SEED)
                out, ok, steps = run_flow(tau, horizon, real, z, z_eval, **kw, **extra)
                ed = float(energy_distance(out, eval_real)) if ok and bool(torch.isfinite(out).all()) else math.inf
                rows.append((name, scheme, tau, steps, ok and math.isfinite(ed), ed))
                print(f"  [b] {name} {scheme} tau={tau} ok={ok} ED={ed:.4g} {time.time() - t0:.1f}s", flush=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    cmd = "python " + " ".join(sys.argv)
    print(f"machine: {platform.platform()} {platform.processor()} | python {platform.python_version()} | "
          f"torch {torch.__version__} | threads {torch.get_num_threads()}\ncommand: {cmd}\nseed: {SEED}", flush=True)
    real, z, z_eval, eval_real = fixed_sets()
    rows_a, curves, rows_b = [], {}, []
    t0 = time.time()
    part_a(real, z, z_eval, rows_a, curves)
    part_b(real, z, z_eval, eval_real, rows_b)
    elapsed = time.time() - t0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for name, gaps in curves.items():
        t = [g[0] for g in gaps]
        ax[0].loglog(t, [g[2] for g in gaps], "o-", label=name)
        ax[1].loglog(t, [g[1] for g in gaps], "o-", label=name)
    t = [0.08, 0.04, 0.02]
    ref = list(curves.values())[0]
    ax[0].loglog(t, [ref[0][2] * (x / t[0]) for x in t], "k--", label="slope 1")
    ax[1].loglog(t, [ref[0][1] * (x / t[0]) for x in t], "k:", label="slope 1")
    ax[0].set(xlabel="τ", ylabel="RMS |G_τ(z) − G_τ/2(z)|", title="C1a paired gap at T=4")
    ax[1].set(xlabel="τ", ylabel="ED(final_τ, final_τ/2)", title="C1a energy-distance gap at T=4")
    ax[0].legend(fontsize=7)
    for name in sorted({r[0] for r in rows_b}):
        for scheme, style in (("explicit", "o-"), ("implicit", "s--")):
            pts = [(r[2], r[5] if r[4] else float("nan")) for r in rows_b if r[0] == name and r[1] == scheme]
            ax[2].semilogx([p[0] for p in pts], [min(p[1], 5.0) for p in pts], style, label=f"{name}, {scheme}")
    ax[2].set(xlabel="τ", ylabel="ED(final, data) (diverged runs missing)", title="C1b stability at T=6.4")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "c1.png"), dpi=110)

    lines = [
        "# C1 — small-step limit and stability (ring8, deterministic full-batch flows)",
        "",
        f"Command: `{cmd}` · machine: {platform.platform()} · torch {torch.__version__} · 1 thread · "
        f"seed {SEED} · wall {elapsed:.0f} s.",
        "",
        "Fixed real set (256), fixed latent batch (256), 1,000 evaluation codes, generator MLP (64, 64), "
        "same initial networks for all τ.",
        "",
        "## (a) Gap between successive halvings of τ at horizon T = 4",
        "",
        "| family | τ | τ/2 | ED(final_τ, final_τ/2) | RMS paired gap | RMS ratio to previous |",
        "|---|---|---|---|---|---|",
    ]
    prev = {}
    for name, t1, t2, ed, rms in rows_a:
        ratio = f"{prev[name] / rms:.2f}" if name in prev and rms > 0 else ""
        prev[name] = rms
        lines.append(f"| {name} | {t1} | {t2} | {ed:.3g} | {rms:.3g} | {ratio} |")
    lines += ["", "## (b) Stability at horizon T = 6.4 (steps = T/τ)", "",
              "| family | scheme | τ | steps | stable | ED(final, data) |", "|---|---|---|---|---|---|"]
    for name, scheme, tau, steps, ok, ed in rows_b:
        lines.append(f"| {name} | {scheme} | {tau} | {steps} | {'yes' if ok else 'DIVERGED'} | "
                     f"{ed:.3g} |" if ok else f"| {name} | {scheme} | {tau} | {steps} | DIVERGED | — |")
    lines += ["", "![C1](c1.png)", ""]
    with open(os.path.join(OUT, "c1.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

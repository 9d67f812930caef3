"""C3 — with the energy-kernel discriminator and large r, the generator follows the energy-distance particle flow.

Reference: the direct W2 gradient flow of ED(μ, ν)/(2λ) for N particles, explicit Euler,
x ← x − τ (N/(2λ)) ∂ED/∂x, with ED written out with ``torch.cdist`` and differentiated by autograd (independent
of :mod:`zoo.ot.kernels`). Compared: ``DualFlowGAN(discriminator=energy, generator=particles)`` with r = ∞
(best response each step) and finite r (explicit D step where κ = rλτ < 2, implicit otherwise), from the same
initial particles, on a fixed ``ring8`` real set. Also an MLP generator with the best-response discriminator,
compared on the particles G_θ(z) of its fixed latent batch (how far the parametrisation moves it off the flow).

    python experiments/dual_flow_c3.py            # writes docs/results/dual_flow/c3.md, c3.png
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

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results", "dual_flow")
N, M, TAU, STEPS, SEED = 128, 256, 0.05, 100, 0


def direct_ed_flow(x0: torch.Tensor, y: torch.Tensor, tau: float, steps: int, lam: float = 1.0):
    x = x0.double().clone()
    y = y.double()
    traj = [x.clone()]
    for _ in range(steps):
        xr = x.clone().requires_grad_(True)
        dxy = torch.cdist(xr, y).mean()
        dxx = torch.sqrt(((xr[:, None] - xr[None]) ** 2).sum(-1) + 1e-30).mean()
        (g,) = torch.autograd.grad(2 * dxy - dxx, xr)  # ED minus its x-independent term
        x = x - tau * len(x) / (2 * lam) * g
        traj.append(x.clone())
    return traj


def ed(x, y):
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def run_particles(y, **kw):
    torch.manual_seed(SEED)
    m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="particles", n_particles=N, tau=TAU, **kw)
    m.ensure_built()
    traj = [m.generator.points.detach().clone()]
    for _ in range(STEPS):
        m.flow_step(y)
        traj.append(m.generator.points.detach().clone())
    return traj


def run_mlp(y, z, **kw):
    torch.manual_seed(SEED)
    m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="mlp", hidden=(64, 64), tau=TAU, **kw)
    m.ensure_built()
    with torch.no_grad():
        traj = [m.generate(z).clone()]
    for _ in range(STEPS):
        m.flow_step(y, z)
        with torch.no_grad():
            traj.append(m.generate(z).clone())
    return traj


def main():
    os.makedirs(OUT, exist_ok=True)
    cmd = "python " + " ".join(sys.argv)
    print(f"machine: {platform.platform()} | python {platform.python_version()} | torch {torch.__version__}\n"
          f"command: {cmd}\nseed: {SEED}", flush=True)
    y = Synthetic2D("ring8").sample(M, torch.Generator().manual_seed(5))
    t0 = time.time()
    rows, trajs = [], {}

    ref_p = None
    configs = [("r = ∞ (best response)", dict(ratio_r=None))]
    for r in (1.0, 4.0, 16.0, 36.0):  # explicit D step: κ = rλτ < 2
        configs.append((f"r = {r:g}, explicit (κ = {r * TAU:g})", dict(ratio_r=r, memory=128)))
    for r in (64.0, 1024.0):  # κ > 2: only the implicit D step is stable
        configs.append((f"r = {r:g}, implicit (κ = {r * TAU:g}, K = 3)",
                        dict(ratio_r=r, scheme="implicit", inner_steps=3, memory=32)))
    for name, kw in configs:
        t1 = time.time()
        tr = run_particles(y, **kw)
        if ref_p is None:
            ref_p = direct_ed_flow(tr[0], y, TAU, STEPS)
        gap = [float((a.double() - b).norm(dim=1).max()) for a, b in zip(tr, ref_p)]
        rows.append(("particles", name, max(gap), gap[-1], ed(tr[-1], y)))
        trajs[name] = gap
        print(f"  {name}: max gap {max(gap):.3g}, final ED {ed(tr[-1], y):.4g} ({time.time() - t1:.1f}s)", flush=True)
    rows.append(("direct ED flow", "reference", 0.0, 0.0, ed(ref_p[-1], y)))
    # the r = ∞ run again in float64: separates the scheme from float32 rounding
    torch.manual_seed(SEED)
    m = DualFlowGAN(data_shape=(2,), discriminator="energy", generator="particles", n_particles=N, tau=TAU,
                    ratio_r=None)
    m.ensure_built()
    m.double()
    tr = [m.generator.points.detach().clone()]
    for _ in range(STEPS):
        m.flow_step(y.double())
        tr.append(m.generator.points.detach().clone())
    gap = [float((a - b).norm(dim=1).max()) for a, b in zip(tr, ref_p)]
    rows.insert(1, ("particles (float64)", "r = ∞ (best response)", max(gap), gap[-1], ed(tr[-1], y)))
    print(f"  r = ∞ float64: max gap {max(gap):.3g}", flush=True)

    z = torch.randn(N, 2, generator=torch.Generator().manual_seed(7))
    for name, kw in (("MLP generator, r = ∞, explicit SGD", dict(ratio_r=None)),
                     ("MLP generator, r = ∞, implicit w2 prox (K = 3)", dict(ratio_r=None, scheme="implicit",
                                                                               inner_steps=3))):
        t1 = time.time()
        tr = run_mlp(y, z, **kw)
        ref = direct_ed_flow(tr[0], y, TAU, STEPS)
        gap = [float((a.double() - b).norm(dim=1).max()) for a, b in zip(tr, ref)]
        rows.append(("mlp (64, 64)", name, max(gap), gap[-1], ed(tr[-1], y)))
        trajs[name] = gap
        print(f"  {name}: max gap {max(gap):.3g} ({time.time() - t1:.1f}s)", flush=True)
    elapsed = time.time() - t0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    t = [TAU * k for k in range(STEPS + 1)]
    for name, gap in trajs.items():
        ax[0].semilogy(t, [max(g, 1e-9) for g in gap], label=name)
    ax[0].set(xlabel="flow time t", ylabel="max_i |x_i(t) − x_i^ED(t)|", title="C3: distance to the direct ED flow")
    ax[0].legend(fontsize=6)
    ax[1].scatter(y[:, 0], y[:, 1], s=4, c="lightgray", label="data")
    ax[1].scatter(ref_p[-1][:, 0], ref_p[-1][:, 1], s=10, marker="x", label="direct ED flow, t = 5")
    ax[1].legend(fontsize=7)
    ax[1].set_aspect("equal")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "c3.png"), dpi=110)

    lines = ["# C3 — kernel best response + large r vs the direct energy-distance particle flow", "",
             f"Command: `{cmd}` · machine: {platform.platform()} · torch {torch.__version__} · 1 thread · seed "
             f"{SEED} · wall {elapsed:.0f} s.", "",
             f"{N} particles (init N(0, I), seed {SEED}), fixed ring8 real set of {M} points, τ = {TAU}, "
             f"{STEPS} steps (T = {TAU * STEPS:g}), λ = 1. Gap = max over particles of |x_i − x_i^ED| "
             "(the reference is explicit Euler of the W2 flow of ED/(2λ)).", "",
             "| generator | discriminator / scheme | max gap over t ≤ T | gap at T | ED(final, data) |",
             "|---|---|---|---|---|"]
    for gen, name, mg, fg, e in rows:
        lines.append(f"| {gen} | {name} | {mg:.3g} | {fg:.3g} | {e:.4g} |")
    lines += ["", "![C3](c3.png)", ""]
    with open(os.path.join(OUT, "c3.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

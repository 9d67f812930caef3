"""Constructed ground truth (the W2-benchmark principle of Korotin et al. 2021), d = 2, 8, 32, 64.

Source P: a random 3-component Gaussian mixture (random centres, random linear map per component),
standardised so that E|X|² = d. Brenier potential built by hand (convex, NOT an ICNN, so the truth is not in
the solvers' own architecture):

    ψ*(x) = ½xᵀAx + (β/γ) LSE_k(γ⟨u_k, x⟩ + c_k),   T*(x) = ∇ψ*(x) = Ax + β Σ_k softmax_k(γUx + c) u_k,

A SPD with eigenvalues in [0.5, 2], K = max(10, 2d) random unit directions u_k, γ = 4, β = 3√d. ψ* is
convex (quadratic + a log-sum-exp of affine maps), so by Brenier T* is the OT map P → Q := T*♯P. Every solver
gets samplers of P and Q only. Metrics on 16,384 fresh source samples (Korotin et al.'s definitions):
L2-UVP = 100 E|T̂ − T*|²/Var(Q), cos = E⟨T* − id, T̂ − id⟩/(‖T* − id‖‖T̂ − id‖). Baselines: [L] the Bures map
between moment-matched Gaussians (100k samples), [ID] identity, [C] constant (mean of Q). The published
Mix3→Mix10 table (W2B poster) is printed beside ours; the pairs differ (our ψ* is built differently), so only the
qualitative ordering is comparable. W2² uses the cost |x − y|²; its true value is E|X − T*(X)|².

Two pairs (``--pair``):

* ``lse`` (default; reproduces w2_benchmark.md / w2_benchmark_long.md): the hand-built ψ* above.
* ``w2b`` (W2B's construction, reference icnn_w2.md section 6; writes w2_benchmark_w2b.md): see
  :class:`W2BPair` — ψ* = a(ψ₁ + ψ₂) + ⟨b, x⟩, ψᵢ DenseICNN-type ICNNs (strong convexity 10⁻²) each fitted
  (:func:`fit_dense_potential`, minibatch-OT regression by default) from the Mix3 source towards its own random
  10-component mixture Mix10ᵢ, then a > 0, b chosen so that Q := ∇ψ*♯P has mean 0 and E|Y|² = d. Rebuilt
  deterministically from ``--seed`` (the ψᵢ optionally cached under runs/, git-ignored). Here the table's
  [L] / [ID] rows measure how nonlinear the pair is, next to the published ones.

    OMP_NUM_THREADS=1 python experiments/w2_benchmark.py [--pair lse|w2b] [--runs 2:w2gn 64:minimax 8:w2gn:5 ...]
        [--steps-scale 1.0] [--mix10-spread 10] [--fit-steps 600] [--fit mbot|w2gn] [--append] [--tag _x]

``d:none`` in ``--runs`` records the baselines only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _icnn_common import OUT, header, md_table  # noqa: E402
from zoo.ot import fit_w2, gaussian_map  # noqa: E402
from zoo.ot.icnn import ICNN, potential_grad, pretrain_identity  # noqa: E402
from zoo.ot.w2 import cosine_similarity, default_hidden, l2_uvp, w2gn_loss  # noqa: E402

#: forward L2-UVP (%) on Mix3→Mix10 from the W2B poster (reference icnn_w2.md, section 6)
PUBLISHED = {
    "[MMv1] ≈ Taghvaei–Jalali": {2: 0.2, 8: 1.8, 32: 6.9, 64: 8.1},
    "[MMv2] ≈ Makkuva": {2: 0.1, 8: 2.2, 32: 5.3, 64: 10.1},
    "[W2] W2GN": {2: 0.1, 8: 2.6, 32: 6.0, 64: 7.2},
    "[L] linear (Bures)": {2: 14.1, 8: 27.3, 32: 55.3, 64: 63.9},
    "[ID] identity": {2: 32.7, 8: 58.6, 32: 121, 64: 137},
}


class Problem:
    """Mix3 source and the hand-built convex ψ* (see module docstring)."""

    def __init__(self, d: int, seed: int = 0, K: int = 0, gamma: float = 4.0):
        g = torch.Generator().manual_seed(seed)
        self.d = d
        self.centres = 2.0 * torch.randn(3, d, generator=g)
        self.mats = [torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(3)]
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
        eig = 0.5 * 4.0 ** torch.rand(d, generator=g)  # in [0.5, 2]
        self.A = (Q * eig) @ Q.T
        K = K or max(10, 2 * d)
        U = torch.randn(K, d, generator=g)
        self.U = U / U.norm(dim=1, keepdim=True)
        self.c = torch.randn(K, generator=g)
        self.gamma, self.beta = gamma, 3.0 * math.sqrt(d)
        # standardise the mixture: E|X|² = d
        x = self._raw(100_000, torch.Generator().manual_seed(seed + 1))
        self.shift = x.mean(0)
        self.scale = math.sqrt(d / float((x - self.shift).pow(2).sum(-1).mean()))

    def _raw(self, n, g=None):
        k = torch.randint(3, (n,), generator=g)
        z = torch.randn(n, self.d, generator=g)
        out = torch.empty(n, self.d)
        for j in range(3):
            m = k == j
            out[m] = self.centres[j] + z[m] @ self.mats[j].T
        return out

    def source(self, n):
        return (self._raw(n) - self.shift) * self.scale

    def T(self, x):
        w = torch.softmax(self.gamma * x @ self.U.T + self.c, dim=-1)
        return x @ self.A + self.beta * w @ self.U

    def target(self, n):
        return self.T(self.source(n))


class RandomMixture:
    """Random k-component Gaussian mixture in R^d, standardised to mean 0 and E|X|² = d.

    Raw law: X = c_J + M_J Z with J uniform on {1, …, k}, Z ~ N(0, I_d), centres c_j ~ N(0, spread²·I_d) and
    M_j with i.i.d. N(0, 1/d) entries (all drawn from ``torch.Generator().manual_seed(seed)``). Standardised
    law: (X − m)·s, with m and s estimated once from ``n_std`` raw samples of the same generator, so that the
    empirical mean is 0 and the empirical E|X|² is exactly d on that sample (≈ d on fresh samples).
    ``spread`` sets how separated the components are (before standardisation a component has E|M Z|² ≈ d).
    """

    def __init__(self, d: int, k: int, spread: float, seed: int, n_std: int = 100_000):
        g = torch.Generator().manual_seed(seed)
        self.d, self.k = d, k
        self.centres = spread * torch.randn(k, d, generator=g)
        self.mats = torch.randn(k, d, d, generator=g) / math.sqrt(d)
        x = self._raw(n_std, g)
        self.shift = x.mean(0)
        self.scale = math.sqrt(d / float((x - self.shift).pow(2).sum(-1).mean()))

    def _raw(self, n, g=None):
        j = torch.randint(self.k, (n,), generator=g)
        z = torch.randn(n, self.d, generator=g)
        out = torch.empty(n, self.d)
        for c in range(self.k):
            m = j == c
            out[m] = self.centres[c] + z[m] @ self.mats[c].T
        return out

    def sample(self, n: int, generator: torch.Generator = None) -> torch.Tensor:
        """n i.i.d. samples (float32, shape (n, d)) of the standardised mixture."""
        return (self._raw(n, generator) - self.shift) * self.scale


def fit_dense_potential(source, target, d: int, steps: int, seed: int, hidden=None, objective: str = "mbot",
                        batch_size: int = 512, lr: float = 1e-2, pretrain_steps: int = 200):
    """A short fit of a DenseICNN-type convex potential ψ with ∇ψ♯source ≈ target (accuracy irrelevant).

    ψ: :class:`zoo.ot.ICNN` with widths [max(2d,64), max(2d,64), max(d,32)] (or ``hidden``), rank-1 quadratic
    skips, CELU, **no** full quadratic head (as W2B's DenseICNN) and strong convexity α = 10⁻² (W2B's benchmark
    potentials); identity pre-training (``pretrain_identity``: ∇ψ(x) ≈ x on N(0, 2²I), ≤ ``pretrain_steps``), then
    ``steps`` Adam(lr, betas (0.5, 0.9)) steps of

    * ``objective="mbot"`` (default): minibatch-OT regression — draw x₁..x_n ~ source, y₁..y_n ~ target, solve the
      discrete OT problem min_σ Σᵢ |xᵢ − y_σ(i)|² exactly (POT ``ot.emd``, cost |x − y|², uniform weights; the
      optimum is a permutation), minimise (1/n)Σᵢ |∇ψ(xᵢ) − y_σ(i)|²;
    * ``objective="w2gn"``: the W2GN loss :func:`zoo.ot.w2.w2gn_loss` with a second ICNN ψ̄ and λ = d
      (Korotin et al. 2021) — kept for the record: within 1000 steps it stays almost affine (see README).

    W⁺ ← max(W, 0) after every step, so the returned ψ is convex for every parameter value reached. Both laws
    are assumed standardised already (mean 0, E|X|² = d). Returns (ψ in eval mode, last loss).
    """
    import ot  # POT

    torch.manual_seed(seed)
    hid = list(hidden) if hidden is not None else default_hidden(d)
    nets = [ICNN(d, hidden=hid, quadratic_head=False, strong_convexity=1e-2)
            for _ in range(2 if objective == "w2gn" else 1)]
    for net in nets:
        pretrain_identity(net, std=2.0, steps=pretrain_steps, lr=1e-2, batch_size=batch_size, tol=1e-3)
    psi = nets[0]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=lr, betas=(0.5, 0.9))
    w = torch.full((batch_size,), 1.0 / batch_size, dtype=torch.float64).numpy()
    loss = torch.zeros(())
    for _ in range(int(steps)):
        x, y = source(batch_size), target(batch_size)
        if objective == "w2gn":
            loss = w2gn_loss(psi, nets[1], x, y, float(d))
        else:
            plan = ot.emd(w, w, torch.cdist(x, y).pow(2).double().numpy())
            y_matched = y[torch.from_numpy(plan.argmax(1))]
            loss = (potential_grad(psi, x, create_graph=True) - y_matched).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for net in nets:
            net.convexify()
    return psi.eval(), float(loss.detach())


class W2BPair:
    """W2B-style constructed pair (Korotin et al. 2021, reference icnn_w2.md section 6): P = Mix3, Q = ∇ψ*♯P.

        ψ*(x) = a·(ψ₁(x) + ψ₂(x)) + ⟨b, x⟩,      T*(x) = ∇ψ*(x) = a·(∇ψ₁(x) + ∇ψ₂(x)) + b,

    * P: :class:`RandomMixture` with k = 3, spread 2 (mean 0, E|X|² = d).
    * ψᵢ (i = 1, 2): a DenseICNN-type :class:`zoo.ot.ICNN` (widths [max(2d,64), max(2d,64), max(d,32)], rank-1
      quadratic skips, CELU, no full quadratic head, strong convexity α = 10⁻², clamp positivity) fitted by
      :func:`fit_dense_potential` (``fit_steps`` steps of ``objective``) to transport P onto its own random
      Mix10ᵢ (:class:`RandomMixture`, k = 10, centre spread ``mix10_spread``). The fit's accuracy is irrelevant:
      ψᵢ is convex for every parameter value, so whatever comes out, T* = ∇ψ* is by Brenier's theorem exactly
      the OT map (cost |x − y|²) from P to Q := T*♯P.
    * Standardisation (an affine map folded into ψ*, so ψ* stays convex — indeed 2aα-strongly convex): with
      g = ∇ψ₁ + ∇ψ₂ evaluated on ``n_std`` samples of P from a fixed generator, m = mean g, v = E|g − m|²,
      a = √(d / v) > 0 and b = −a·m. Then Q has mean 0 and E|Y|² = d — exactly on that sample, up to
      Monte-Carlo error otherwise — the same normalisation as P. (The reference only says W2B's potentials are
      "then standardised"; we use this isotropic rescaling + shift, because a general affine whitening W·∇ψ is
      not the gradient of a convex function, so the Brenier guarantee would be lost.)

    Everything is rebuilt deterministically from ``seed`` (torch seeds fixed, one thread); ``cache_dir`` (under
    runs/, git-ignored) only saves re-fitting the two ψᵢ. Metrics on the pair (Korotin et al.):
    L2-UVP(T̂) = 100·E_P|T̂(X) − T*(X)|² / Var(Q) with Var(Q) = E|Y − EY|², and the cosine of T̂ − id with T* − id.
    """

    def __init__(self, d: int, seed: int = 0, mix10_spread: float = 10.0, fit_steps: int = 600,
                 hidden=None, objective: str = "mbot", n_std: int = 100_000, cache_dir=None, verbose: bool = False):
        base = 1000 * seed
        self.d, self.seed = d, seed
        self.mix3 = RandomMixture(d, 3, 2.0, seed=base + 3)
        self.mix10 = [RandomMixture(d, 10, mix10_spread, seed=base + 10 + i) for i in (1, 2)]
        self.info = {"d": d, "seed": seed, "mix10 spread": mix10_spread, "fit": objective, "fit steps": fit_steps}
        c0 = time.process_time()
        path = None
        if cache_dir is not None:
            hid = "x".join(map(str, hidden)) if hidden else "default"
            path = Path(cache_dir) / f"d{d}_seed{seed}_spread{mix10_spread:g}_{objective}{fit_steps}_h{hid}.pt"
        if path is not None and path.exists():
            self.psis = torch.load(path, weights_only=False)
            self.info["cached"] = True
        else:
            self.psis = []
            for i, q in enumerate(self.mix10, start=1):
                c1 = time.process_time()
                psi, loss = fit_dense_potential(self.mix3.sample, q.sample, d, fit_steps, seed=base + 20 + i,
                                                hidden=hidden, objective=objective)
                self.psis.append(psi)
                self.info[f"psi{i} last loss"] = round(loss, 3)
                if verbose:
                    print(f"d={d}: ψ{i} fitted ({fit_steps} {objective} steps, {time.process_time() - c1:.1f} CPU s)",
                          flush=True)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.psis, path)
            self.info["cached"] = False
        for p in self.psis:
            p.eval()
            p.requires_grad_(False)
        self.n_std, self.std_seed = n_std, base + 30  # the standardisation sample (for tests)
        x = self.mix3.sample(n_std, generator=torch.Generator().manual_seed(self.std_seed))
        g = self.raw_map(x).double()
        m = g.mean(0)
        self.a = math.sqrt(d / float((g - m).pow(2).sum(-1).mean()))
        self.b = -self.a * m
        self.info["a"] = round(self.a, 4)
        self.info["|b|"] = round(float(self.b.norm()), 4)
        self.info["construction CPU s"] = round(time.process_time() - c0, 1)

    def double(self) -> "W2BPair":
        """Cast the potentials to float64 (for finite-difference checks); returns self."""
        for p in self.psis:
            p.double()
        return self

    def raw_map(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """g(x) = ∇ψ₁(x) + ∇ψ₂(x) (batched, autograd)."""
        out = [sum(potential_grad(p, x[i:i + chunk]) for p in self.psis) for i in range(0, x.shape[0], chunk)]
        return torch.cat(out)

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """ψ*(x) = a(ψ₁(x) + ψ₂(x)) + ⟨b, x⟩, shape (n,)."""
        with torch.no_grad():
            return self.a * sum(p(x) for p in self.psis) + x @ self.b.to(x)

    def T(self, x: torch.Tensor) -> torch.Tensor:
        """T*(x) = ∇ψ*(x) = a·g(x) + b: the exact OT map P → Q (cost |x − y|²)."""
        return self.a * self.raw_map(x) + self.b.to(x)

    def source(self, n: int, generator: torch.Generator = None) -> torch.Tensor:
        """n samples of P (Mix3)."""
        return self.mix3.sample(n, generator)

    def target(self, n: int, generator: torch.Generator = None) -> torch.Tensor:
        """n samples of Q = T*♯P (in the potentials' dtype)."""
        return self.T(self.source(n, generator).to(next(self.psis[0].parameters()).dtype))


def main():
    """CLI: build the pairs, record the [L]/[ID]/[C] baselines and the requested fit_w2 runs (L2-UVP, cos)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", choices=["lse", "w2b"], default="lse",
                    help="lse: hand-built ψ* (the recorded w2_benchmark.md); w2b: W2B's ψ₁ + ψ₂ ICNN construction")
    ap.add_argument("--runs", nargs="+", default=[
        "2:w2gn", "8:w2gn", "32:w2gn", "64:w2gn", "2:minimax", "2:restricted", "8:minimax", "8:restricted",
        "32:minimax", "32:restricted", "64:minimax", "64:restricted"],
        help="d:method[:scale] in order (scale overrides --steps-scale for that run; method 'none' = baselines "
             "only); the tables are rewritten after each")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiple of fit_w2's default steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default=None, help="suffix of the output files (w2_benchmark<tag>.md/.json); "
                    "default '' for lse, '_w2b' for w2b")
    ap.add_argument("--mix10-spread", type=float, default=10.0, help="w2b: std of the Mix10 centres (raw units)")
    ap.add_argument("--fit-steps", type=int, default=600, help="w2b: steps of each ψᵢ fit")
    ap.add_argument("--fit", choices=["mbot", "w2gn"], default="mbot", help="w2b: objective of the ψᵢ fits")
    ap.add_argument("--cache", default="runs/w2b_pairs", help="w2b: cache folder of the fitted ψᵢ ('' = none)")
    ap.add_argument("--append", action="store_true", help="w2b: add rows to an existing w2_benchmark<tag>.json "
                    "(baselines of dims already there are not recorded again)")
    args = ap.parse_args()
    tag = args.tag if args.tag is not None else ("" if args.pair == "lse" else "_w2b")
    torch.set_num_threads(1)
    load0, t_start = os.getloadavg(), time.time()
    head = header([args.seed]) + f"\n- steps: {args.steps_scale} × fit_w2 defaults (w2gn 600, minimax 200×5, " \
        "restricted 300), batch 512, lr 5e-3 cosine-decayed, ICNN widths [max(2d,64), max(2d,64), max(d,32)]"
    if args.pair == "w2b":
        head += f"\n- pair: W2B construction (W2BPair), ψ₁, ψ₂ each {args.fit_steps} {args.fit} steps " \
            "(DenseICNN-type ICNN, strong convexity 1e-2, identity pre-training), Mix10 centre spread " \
            f"{args.mix10_spread:g}; Q standardised to mean 0, E|Y|² = d by ψ* = a(ψ₁ + ψ₂) + ⟨b, x⟩"
    head += f"\n- load average at start (1/5/15 min): {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}" \
        f"; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    base = {"w2gn": 600, "minimax": 200, "restricted": 300}
    rows, pair_info = [], []
    prev = OUT / f"w2_benchmark{tag}.json"
    if args.append and args.pair == "w2b" and prev.exists():
        blob = json.loads(prev.read_text())
        rows, pair_info = blob["rows"], blob["pairs"]
        head = blob["header"] + "\n- earlier invocation " + blob["tail"].lstrip("- ") + "\n- then (--append):\n" + head
    done = {r["d"] for r in rows}
    dims = sorted({int(r.split(":")[0]) for r in args.runs} | done)
    OUT.mkdir(parents=True, exist_ok=True)
    probs = {}

    def cpu_total():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def write(final=False):
        ours = md_table(sorted(rows, key=lambda r: (r["d"], r["solver"])),
                        ["d", "solver", "L2-UVP %", "cos", "fit W2²", "true W2²", "train s", "train CPU s"])
        pub_rows = [{"solver": k, **{f"d={d}": v.get(d, "") for d in dims}} for k, v in PUBLISHED.items()]
        pub = md_table(pub_rows, ["solver"] + [f"d={d}" for d in dims])
        la = os.getloadavg()
        tail = f"- {'finished' if final else 'so far'}: {time.time() - t_start:.0f} s wall, {cpu_total():.0f} s CPU " \
            f"(this process); load average now {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}"
        title = "Mix3 → ∇ψ*♯Mix3" if args.pair == "lse" else "W2B construction, Mix3 → ∇(ψ₁+ψ₂)♯Mix3"
        text = f"# Constructed-ground-truth benchmark ({title})\n\n" + head + "\n" + tail + "\n\n## Measured here\n\n" \
            + ours
        if pair_info:
            text += "\n\n## Constructed pairs\n\n" + md_table(pair_info, list(pair_info[0]))
        text += "\n\n## Published forward L2-UVP (%), W2B Mix3→Mix10 (different pairs; for orientation)\n\n" \
            + pub + "\n"
        (OUT / f"w2_benchmark{tag}.md").write_text(text)
        blob = rows if args.pair == "lse" else {"rows": rows, "pairs": pair_info, "header": head, "tail": tail}
        (OUT / f"w2_benchmark{tag}.json").write_text(json.dumps(blob, indent=1, ensure_ascii=False))
        return text

    def run_solver(P, d, method, scale):
        if method == "none":
            return
        x, tstar, var_q, true_w2 = probs[d][1:]
        record = _recorder(rows, d, x, tstar, var_q, true_w2)
        steps = int(scale * base[method])
        fit = fit_w2(P.source, P.target, method=method, steps=steps, seed=args.seed)
        name = f"fit_w2 {method}" + ("" if scale == 1.0 else f", {steps} steps")
        record(name, fit.forward(x), fit.seconds, fit.w2_squared, fit.cpu_seconds)

    for run in args.runs:
        parts = run.split(":")
        d, method = int(parts[0]), parts[1]
        scale = float(parts[2]) if len(parts) > 2 else args.steps_scale
        if d not in probs:
            torch.manual_seed(args.seed)
            if args.pair == "lse":
                P = Problem(d, seed=args.seed)
            else:
                P = W2BPair(d, seed=args.seed, mix10_spread=args.mix10_spread, fit_steps=args.fit_steps,
                            objective=args.fit, cache_dir=args.cache or None, verbose=True)
                if d not in done:
                    pair_info.append(P.info)
            torch.manual_seed(10_000 + d)
            x = P.source(16384)
            tstar = P.T(x)
            var_q = float(P.target(100_000).var(0, unbiased=False).sum())
            true_w2 = float((tstar - x).pow(2).sum(-1).mean())
            probs[d] = (P, x, tstar, var_q, true_w2)
            record = _recorder(rows, d, x, tstar, var_q, true_w2)
            xs, ys = P.source(100_000).double(), P.target(100_000).double()
            Tl = gaussian_map(xs.mean(0), torch.cov(xs.T), ys.mean(0), torch.cov(ys.T))
            if d not in done:
                record("[L] linear (Bures)", Tl(x.double()).float())
                record("[ID] identity", x)
                record("[C] constant", P.target(100_000).mean(0).expand_as(x))
        run_solver(probs[d][0], d, method, scale)
        write()
    print(write(final=True))


def _recorder(rows, d, x, tstar, var_q, true_w2):
    def record(name, tx, secs=None, w2=None, cpu=None):
        row = {"d": d, "solver": name, "L2-UVP %": f"{l2_uvp(tx, tstar, var_q):.2f}",
               "cos": f"{cosine_similarity(x, tx, tstar):.3f}", "true W2²": f"{true_w2:.3f}",
               "fit W2²": "" if w2 is None else f"{w2:.3f}", "train s": "" if secs is None else f"{secs:.0f}",
               "train CPU s": "" if cpu is None else f"{cpu:.0f}"}
        rows.append(row)
        print(json.dumps(row), flush=True)

    return record


if __name__ == "__main__":
    main()

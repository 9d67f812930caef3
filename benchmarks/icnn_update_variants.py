"""Issue #20, routes that did not pay: one ICNN W2-GAN potential update (the ring8 config's shapes: d = 2, ICNN
64-64-32, batch 256, one fused Adam over ψ and ψ̄) timed three ways, each in its own process, one torch thread:

* ``module`` — what ``ICNNW2GAN.discriminator_step`` does without Lightning: the W2GN loss through
  ``torch.compile`` (:func:`zoo.ot.w2.w2gn_loss`, closed-form ∇ψ), ``loss.backward()``, the fused Adam step,
  ``convexify``;
* ``compiled_autograd`` — loss *and* backward in one compiled function (``torch._dynamo.config.compiled_autograd``),
  the "hand-fused update" route of docs/PERFORMANCE.md §5, then the same Adam step;
* ``compiled_adam`` — the module's update with ``torch.compile(opt.step)``;
* ``max_autotune`` — the module's update with the loss compiled in ``mode="max-autotune-no-cudagraphs"`` (inductor
  benchmarks its C++ GEMM templates against the ATen matmuls and keeps the faster);
* ``func_update`` — the whole update as one compiled pure function of plain tensors: the parameter gradient by
  ``torch.func.grad_and_value`` over ``functional_call`` (no autograd graph at run time), Adam's update written out
  (m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr·m̂/(√v̂ + ε)) and the clamp of the z-weights, all in one
  ``torch.compile``d call.

    OMP_NUM_THREADS=1 python benchmarks/icnn_update_variants.py [--rounds 3] [--updates 300] [--variants ...]

Prints the process CPU milliseconds per update after a warm-up of 30 updates (compilation included there), the
variants interleaved round by round; only ratios within a round mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("module", "compiled_autograd", "compiled_adam", "max_autotune", "func_update")


def one(variant: str, updates: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from zoo.ot import w2 as _w2
    from zoo.ot.icnn import ICNN

    torch.set_num_threads(1)
    torch.manual_seed(0)
    d, batch = 2, 256
    psi, bar = ICNN(d, hidden=[64, 64, 32]), ICNN(d, hidden=[64, 64, 32])
    opt = torch.optim.Adam([{"params": psi.parameters()}, {"params": bar.parameters()}], lr=1e-3, betas=(0.5, 0.9),
                           fused=True)
    x, y = torch.randn(batch, d), torch.randn(batch, d)
    if variant == "func_update":
        update = _func_update(psi, bar, x, y, lr=1e-3, betas=(0.5, 0.9))
    elif variant == "compiled_autograd":
        torch._dynamo.config.compiled_autograd = True

        @torch.compile
        def loss_and_backward():
            loss = _w2.w2gn_loss(psi, bar, x, y, 2.0)
            loss.backward()
            return loss

        def update():
            opt.zero_grad(set_to_none=True)
            loss_and_backward()
            opt.step()
            psi.convexify()
            bar.convexify()
    else:
        loss_fn = torch.compile(_w2.w2gn_loss, **({"mode": "max-autotune-no-cudagraphs"} if variant == "max_autotune"
                                                   else {}))
        step = torch.compile(opt.step) if variant == "compiled_adam" else opt.step

        def update():
            loss = loss_fn(psi, bar, x, y, 2.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step()
            psi.convexify()
            bar.convexify()
    t0 = time.time()
    for _ in range(30):
        update()
    warm = time.time() - t0
    c0 = time.process_time()
    for _ in range(updates):
        update()
    return {"variant": variant, "ms_cpu_per_update": 1e3 * (time.process_time() - c0) / updates, "warmup_s": warm}


def _func_update(psi, bar, x, y, lr: float, betas: tuple, eps: float = 1e-8):
    """One compiled call per update: gradient by torch.func, Adam written out, convexify (see the module docstring)."""
    import torch
    from torch import nn

    from zoo.ot import w2 as _w2

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.psi, self.bar = psi, bar

        def forward(self, x, y):
            return _w2.w2gn_loss(self.psi, self.bar, x, y, 2.0)

    lm = Loss()
    names = [n for n, _ in lm.named_parameters()]
    z_ids = {id(w) for net in (psi, bar) for w in [*net.z_weights, net.w_out]}
    clamp = [id(p) in z_ids for _, p in lm.named_parameters()]
    P = [p.detach().clone() for _, p in lm.named_parameters()]
    M = [torch.zeros_like(p) for p in P]
    V = [torch.zeros_like(p) for p in P]
    t = torch.zeros(())
    b1, b2 = betas

    def loss_of(params, x, y):
        return torch.func.functional_call(lm, dict(zip(names, params)), (x, y))

    @torch.compile
    def step(P, M, V, t, x, y):
        g, loss = torch.func.grad_and_value(loss_of)(P, x, y)
        t.add_(1)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        for p, m, v, gi, c in zip(P, M, V, g, clamp):
            m.mul_(b1).add_(gi, alpha=1 - b1)
            v.mul_(b2).addcmul_(gi, gi, value=1 - b2)
            p.sub_(lr * (m / bc1) / ((v / bc2).sqrt() + eps))
            if c:
                p.clamp_(min=0)
        return loss

    def update():
        return step(P, M, V, t, x, y)

    update.params = P  # the potentials' parameters, in lm.named_parameters() order (for the equivalence check)
    return update


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="the variants to time against 'module' (always timed)")
    p.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one, a.updates)))
        return
    rows, variants = [], ["module"] + [v for v in a.variants if v != "module"]
    for r in range(a.rounds):
        for v in variants:
            out = subprocess.run([sys.executable, __file__, "--one", v, "--updates", str(a.updates)],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            row = dict(json.loads(out.stdout.strip().splitlines()[-1]), round=r)
            rows.append(row)
            print(f"round {r} {v:18s} {row['ms_cpu_per_update']:6.2f} ms CPU per update "
                  f"(warm-up {row['warmup_s']:.0f} s)", flush=True)
    for v in variants[1:]:
        ratios = [next(x for x in rows if x["round"] == r and x["variant"] == v)["ms_cpu_per_update"]
                  / next(x for x in rows if x["round"] == r and x["variant"] == "module")["ms_cpu_per_update"]
                  for r in range(a.rounds)]
        print(f"{v} / module: " + ", ".join(f"{q:.2f}" for q in ratios))


if __name__ == "__main__":
    main()

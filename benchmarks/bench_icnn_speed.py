#!/usr/bin/env python
"""ICNN W2-GAN per generator step, before and after the closed-form gradient, side by side in one run.

    python benchmarks/bench_icnn_speed.py --before 17136aa            # ring8 + digits, 3 rounds
    python benchmarks/bench_icnn_speed.py --before 17136aa --quick    # smoke run (one round, few steps)
    python benchmarks/bench_icnn_speed.py --profile                   # per-op tables of one discriminator update
    python benchmarks/bench_icnn_speed.py --breakdown --warmup 300     # where a generator step's time goes

Every measurement is a real ``pl.Trainer.fit`` of the committed config (``configs/icnn_w2gan/<data>.yaml``,
VanillaGAN's ``configs/vanilla/<data>.yaml`` as the yardstick) in its own process with one torch thread, the process
environment of train.py (``zoo.cli.skip_nvml_cuda_check``), a CSV logger as train.py has (so the logged-only W2 estimate is paid on its logging batches), no evaluation callbacks,
no checkpoints. The clock starts at generator step ``--warmup`` (so the ICNNs' identity pre-training and a
compilation are excluded; both are reported separately) and stops ``--steps`` generator steps later. Variants:

* ``before``   — the code at ``--before`` (a ``git worktree`` of that revision): ∇ψ by autograd with
  ``create_graph``, the double backward, plain Adam;
* ``eager``    — this tree, ``model.compile false``: closed-form ∇ψ (:meth:`zoo.ot.ICNN.value_and_grad`), fused Adam
  (since e199349: ψ at x and ∇ψ̄(y) in one stacked pass, one Adam over ψ and ψ̄);
* ``compiled`` — this tree, ``model.compile true``: the same with the W2GN loss through ``torch.compile``;
* ``vanilla``  — VanillaGAN's config on the same data (this tree).

The variants run interleaved (round-robin, ``--rounds`` rounds), so a slow phase of the machine hits all of them;
the table gives medians over rounds of ms per generator step (wall and process CPU) and the ratios
before / variant and variant / vanilla, each computed within a round and then the median taken.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "ring8": ("configs/icnn_w2gan/ring8.yaml", "configs/vanilla/ring8.yaml"),
    "digits": ("configs/icnn_w2gan/digits.yaml", "configs/vanilla/digits.yaml"),
}


# ------------------------------------------------------------------------------------------- worker
def worker(tree: str, config: str, overrides: dict, warmup: int, steps: int, seed: int,
           breakdown: bool = False) -> dict:
    """One fit in this process with the code of ``tree``; returns the timing record (printed as JSON). With
    ``breakdown``: also the wall ms per generator step inside each of the module's parts (its discriminator and
    generator steps, the W2GN loss's forward, ``manual_backward``, each optimizer's step, ``generate``,
    ``transport``, ``convexify``), timed by wrappers around them over the clocked steps (nested parts overlap)."""
    sys.path.insert(0, tree)
    os.chdir(tree)
    import importlib
    import logging
    import warnings

    import pytorch_lightning as pl
    import torch
    import yaml
    from pytorch_lightning.loggers import CSVLogger

    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)
    try:  # the process setting train.py's entry point applies (before a0b2bbe importing zoo.base applied it)
        from zoo.cli import skip_nvml_cuda_check
    except ImportError:
        import zoo.base  # noqa: F401
    else:
        skip_nvml_cuda_check()
    cfg = yaml.safe_load(open(config))

    def make(section, extra=None):
        mod, _, cls = cfg[section]["class_path"].rpartition(".")
        kw = dict(cfg[section].get("init_args") or {})
        kw.update(extra or {})
        return getattr(importlib.import_module(mod), cls)(**kw)

    t_build = time.perf_counter()
    dm = make("data")
    pl.seed_everything(seed, verbose=False)
    model = make("model", dict(overrides, max_gen_steps=warmup + steps))
    model.ensure_built(dm.data_shape)
    build_s = time.perf_counter() - t_build
    marks = {}
    parts: dict = {}

    def clocked(fn, key):  # fn, adding its wall time to parts[key] while the clock runs
        def wrapper(*args, **kw):
            if "w0" not in marks or "w1" in marks:
                return fn(*args, **kw)
            t = time.perf_counter()
            out = fn(*args, **kw)
            parts[key] = parts.get(key, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    def timed(obj, name, key):
        setattr(obj, name, clocked(getattr(obj, name), key))

    if breakdown:
        icnn_mod = importlib.import_module("zoo.icnn_w2gan")
        for name in ("discriminator_step", "generator_step", "manual_backward", "generate", "transport"):
            timed(model, name, name)
        for net in ("psi", "psi_bar"):
            if getattr(model, net, None) is not None:
                timed(getattr(model, net), "convexify", f"{net}.convexify")
        if hasattr(icnn_mod, "_w2gn_loss"):
            make_loss = icnn_mod._w2gn_loss
            icnn_mod._w2gn_loss = lambda compiled: clocked(make_loss(compiled), "W2GN loss forward")

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            g = int(module.gen_step)
            if "w0" not in marks and g >= warmup:
                marks.update(w0=time.perf_counter(), c0=time.process_time(), g0=g)
            if "w1" not in marks and g >= warmup + steps:
                marks.update(w1=time.perf_counter(), c1=time.process_time(), g1=g)

        def on_train_start(self, trainer, module):
            marks["start"] = time.perf_counter()
            if breakdown:
                opts = module.optimizers()
                for i, opt in enumerate(opts if isinstance(opts, list) else [opts]):
                    timed(opt, "step", f"optimizer {i} step")

    tcfg = cfg.get("trainer") or {}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=CSVLogger(tmp),
                             log_every_n_steps=int(tcfg.get("log_every_n_steps", 50)), enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[Timer()])
        trainer.fit(model, datamodule=dm)
    n = marks["g1"] - marks["g0"]
    rec = dict(ms_wall=1e3 * (marks["w1"] - marks["w0"]) / n, ms_cpu=1e3 * (marks["c1"] - marks["c0"]) / n,
               gen_steps=n, warmup_s=marks["w0"] - marks["start"], build_s=build_s)
    if breakdown:
        rec["parts_ms"] = {k: round(1e3 * v / n, 3) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    return rec


# ------------------------------------------------------------------------------------------- profile
def profile_step(data: str, reps: int = 30) -> None:
    """Per-op CPU table of the W2GN discriminator update (loss, backward, two Adam steps, convexify) at the config's
    ICNN shapes and batch, for the autograd reference (``w2gn_loss(grad="autograd")``, plain Adam — the code before),
    the closed form (fused Adam) and the closed form through ``torch.compile``."""
    import torch
    import yaml
    from torch.profiler import ProfilerActivity, profile

    from zoo.ot.icnn import ICNN
    from zoo.ot.w2 import w2gn_loss

    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(ROOT / CONFIGS[data][0]))
    init, dinit = cfg["model"]["init_args"], cfg["data"]["init_args"]
    d = 2 if data == "ring8" else int(dinit.get("image_size", 8)) ** 2
    n, hidden = int(dinit["batch_size"]), list(init["icnn_hidden"])
    for variant in ("autograd", "closed_form", "compiled"):
        torch.manual_seed(0)
        psi, bar = ICNN(d, hidden=hidden), ICNN(d, hidden=hidden)
        kw = {} if variant == "autograd" else {"fused": True}
        o1 = torch.optim.Adam(psi.parameters(), 1e-3, betas=(0.5, 0.9), **kw)
        o2 = torch.optim.Adam(bar.parameters(), 1e-3, betas=(0.5, 0.9), **kw)
        x, y = torch.randn(n, d), torch.randn(n, d) + 1.0
        fn = torch.compile(w2gn_loss) if variant == "compiled" else w2gn_loss
        grad = "autograd" if variant == "autograd" else "closed_form"

        def step():
            loss = fn(psi, bar, x, y, float(d), grad)
            o1.zero_grad(set_to_none=True)
            o2.zero_grad(set_to_none=True)
            loss.backward()
            o1.step()
            o2.step()
            psi.convexify()
            bar.convexify()

        for _ in range(10):
            step()
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        ms = 1e3 * (time.perf_counter() - t0) / reps
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                step()
        ev = prof.key_averages()
        if variant == "closed_form":  # matmul FLOPs of one update (loss + backward), and what they cost at this machine's
            from torch.utils.flop_counter import FlopCounterMode  # single-thread matmul rate at the batch × width

            with FlopCounterMode(display=False) as fc:
                fn(psi, bar, x, y, float(d), grad).backward()
            psi.zero_grad(set_to_none=True)
            bar.zero_grad(set_to_none=True)
            a, b = torch.randn(2 * n, hidden[0]), torch.randn(hidden[0], hidden[0])
            for _ in range(20):
                a @ b
            t1 = time.perf_counter()
            for _ in range(500):
                a @ b
            rate = 2 * a.shape[0] * hidden[0] ** 2 * 500 / (time.perf_counter() - t1)
            flops = fc.get_total_flops()
            print(f"\n#### {data}: matmul FLOPs per update {flops / 1e6:.1f} M (torch.utils.flop_counter); "
                  f"a ({2 * n}×{hidden[0]}) @ ({hidden[0]}×{hidden[0]}) matmul runs at {rate / 1e9:.1f} GFLOP/s on "
                  f"this thread, so the update's matmuls would take {1e3 * flops / rate:.2f} ms at that rate")
        total = sum(e.self_cpu_time_total for e in ev)
        share = lambda pred: 100 * sum(e.self_cpu_time_total for e in ev if pred(e.key)) / total  # noqa: E731
        mm = share(lambda k: k in ("aten::mm", "aten::addmm", "aten::bmm"))
        eng = share(lambda k: k.startswith("autograd::engine") or k.endswith("Backward0") or k.endswith("Backward1"))
        adam = share(lambda k: "Adam" in k or "_fused_adam" in k or k.startswith("aten::_foreach"))
        print(f"\n#### {data}: {variant} — {ms:.2f} ms per discriminator update unprofiled (d = {d}, batch {n}, "
              f"ICNN {hidden}); profiled: matmul (mm/addmm) {mm:.0f} %, autograd engine nodes {eng:.0f} %, "
              f"Adam {adam:.0f} % of self CPU\n")
        print("| op | self CPU % | calls per update |")
        print("|---|---|---|")
        for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:12]:
            print(f"| `{e.key[:60]}` | {100 * e.self_cpu_time_total / total:.1f} | {e.count / reps:.0f} |")


# ------------------------------------------------------------------------------------------- parent
def run_variant(tree: Path, config: str, overrides: dict, warmup: int, steps: int, seed: int,
                breakdown: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--tree", str(tree), "--config", config,
           "--overrides", json.dumps(overrides), "--warmup", str(warmup), "--steps", str(steps), "--seed", str(seed)]
    cmd += ["--breakdown"] if breakdown else []
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tree)))
    if out.returncode != 0:
        raise SystemExit(f"worker failed ({config}, {overrides}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="git revision of the 'before' code (a worktree of it is made in a temp dir)")
    ap.add_argument("--data", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=50, help="generator steps before the clock starts")
    ap.add_argument("--steps", type=int, default=300, help="timed generator steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="one round, 10 + 40 steps")
    ap.add_argument("--json", help="also write the raw records here")
    ap.add_argument("--profile", action="store_true",
                    help="only print per-op profiles of the discriminator update (autograd / closed form / compiled)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only time the parts of a generator step of this tree's compiled config (one fit per data)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.tree, a.config, json.loads(a.overrides), a.warmup, a.steps, a.seed, a.breakdown)))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import _common

    if a.profile:
        sys.path.insert(0, str(ROOT))
        print(_common.header("per-op profiles (torch.profiler, 30 updates each)"))
        for data in a.data:
            profile_step(data)
        return

    if a.quick:
        a.rounds, a.warmup, a.steps = 1, 10, 40
    if a.breakdown:
        print(_common.header(f"parts of a generator step, warm-up {a.warmup} generator steps, timed {a.steps}"))
        print("| data | ms per generator step (wall) | part: ms per generator step (share) |")
        print("|---|---|---|")
        for data in a.data:
            rec = run_variant(ROOT, CONFIGS[data][0], {"compile": True}, a.warmup, a.steps, a.seed, breakdown=True)
            parts = ", ".join(f"{k} {v:.2f} ({100 * v / rec['ms_wall']:.0f} %)" for k, v in rec["parts_ms"].items())
            print(f"| {data} | {rec['ms_wall']:.2f} | {parts} |", flush=True)
        return
    print(_common.header(f"rounds {a.rounds}, warm-up {a.warmup} generator steps, timed {a.steps}"))
    tmp = tempfile.mkdtemp(prefix="icnn-before-")
    variants = {}
    if a.before:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), a.before], check=True,
                       capture_output=True)
        variants["before"] = (before, {})
    variants["eager"] = (ROOT, {"compile": False})
    variants["compiled"] = (ROOT, {"compile": True})
    records = []
    try:
        for r in range(a.rounds):
            for data in a.data:
                icnn_cfg, van_cfg = CONFIGS[data]
                jobs = list(variants.items()) + [("vanilla", (ROOT, {}))]
                for name, (tree, ov) in (jobs if r % 2 == 0 else jobs[::-1]):
                    cfg = van_cfg if name == "vanilla" else icnn_cfg
                    rec = run_variant(tree, cfg, ov, a.warmup, a.steps, a.seed)
                    rec.update(round=r, data=data, variant=name)
                    records.append(rec)
                    print(json.dumps(rec), flush=True)
    finally:
        if a.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "before")],
                           capture_output=True)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))
    print()
    print("| data | variant | ms / gen step, wall (median) | CPU | before / variant | variant / vanilla | warm-up s "
          "(to step {}) |".format(a.warmup))
    print("|---|---|---|---|---|---|---|")
    for data in a.data:
        by = {(x["variant"], x["round"]): x for x in records if x["data"] == data}
        for name in list(variants) + ["vanilla"]:
            rows = [by[(name, r)] for r in range(a.rounds)]
            ratio_b = [by[("before", r)]["ms_wall"] / by[(name, r)]["ms_wall"] for r in range(a.rounds)] \
                if "before" in variants else []
            ratio_v = [by[(name, r)]["ms_wall"] / by[("vanilla", r)]["ms_wall"] for r in range(a.rounds)]
            med = lambda k: statistics.median(x[k] for x in rows)  # noqa: E731
            print(f"| {data} | {name} | {med('ms_wall'):.2f} | {med('ms_cpu'):.2f} | "
                  f"{statistics.median(ratio_b):.2f}× | " if ratio_b else f"| {data} | {name} | "
                  f"{med('ms_wall'):.2f} | {med('ms_cpu'):.2f} | — | ", end="")
            print(f"{statistics.median(ratio_v):.2f} | {med('warmup_s'):.1f} |")


if __name__ == "__main__":
    main()

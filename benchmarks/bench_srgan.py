"""SR overhead: an SR-GAN training step averaged over the 5-step cadence, relative to SN-GAN's (target ≤ 1.10).

    python benchmarks/bench_srgan.py                      # 32×32 ResNet (G ch 256, D ch 128), n_dis 5, batch 4
    python benchmarks/bench_srgan.py --batch-size 64 --reps 3

Both modules get identical initial weights; each timed unit is one SR cadence: 5 generator iterations
(n_dis = 5 → 25 discriminator steps + 5 generator steps), starting at a generator step divisible by 5, so SR-GAN
runs its rewrite after each of the 5 D steps of the first iteration, exactly as in training. The module's own
``train_batch`` runs (Lightning's optimizer plumbing replaced by plain Adam and ``backward``). A/B interleaved in one process (order alternating per repetition), one thread, after a warm-up
step each; reported: median cadence time of each and the ratio of medians, plus the time of one SR call.
A small batch makes the ratio pessimistic: the rewrite's cost does not depend on the batch size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from zoo.srgan import SNGAN, SRGAN  # noqa: E402


def make(cls, args, **extra):
    torch.manual_seed(0)
    m = cls(latent_dim=128, arch="resnet", g_channels=args.g_channels, d_channels=args.d_channels, n_dis=5,
            data_shape=(3, 32, 32), **extra)
    m.ensure_built()
    opt_g, opt_d = m.configure_optimizers()
    m.optimizers = lambda: (opt_g, opt_d)  # the module's steps, without a Trainer
    m.manual_backward = lambda loss: loss.backward()
    m.train()
    return m


def cadence(m, real: torch.Tensor) -> float:
    """One SR cadence (5 generator iterations); returns seconds."""
    assert m.gen_step % 5 == 0
    t0 = time.perf_counter()
    for _ in range(5 * m.n_dis):
        m.train_batch(real)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--g-channels", type=int, default=256)
    p.add_argument("--d-channels", type=int, default=128)
    p.add_argument("--sr-mode", default="static", choices=["static", "dynamic"])
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} threads={torch.get_num_threads()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}")
    print("command: python " + " ".join(sys.argv))
    sn = make(SNGAN, args)
    sr = make(SRGAN, args, sr_mode=args.sr_mode)
    n_sr = len(sr._sr_modules)
    print(f"D: ResNet 32x32 ch {args.d_channels}, {n_sr} regularized SN convs; batch {args.batch_size}; n_dis 5; "
          f"sr_mode {args.sr_mode}")
    g = torch.Generator().manual_seed(0)
    real = torch.rand(args.batch_size, 3, 32, 32, generator=g) * 2 - 1
    for m in (sn, sr):  # warm-up (allocator, kernels): one D and one G step each, without advancing the counters
        m.discriminator_step(real), m.generator_step(real)
    t_sn, t_sr = [], []
    for rep in range(args.reps):
        order = [(sn, t_sn), (sr, t_sr)] if rep % 2 == 0 else [(sr, t_sr), (sn, t_sn)]
        for m, acc in order:
            acc.append(cadence(m, real))
        print(f"rep {rep}: sngan {t_sn[-1]:.2f} s  srgan {t_sr[-1]:.2f} s  (per cadence of 5 G iterations)",
              flush=True)
    calls = []
    for _ in range(5):
        t0 = time.perf_counter()
        sr.spectral_regularization()
        calls.append(time.perf_counter() - t0)
    a, b = statistics.median(t_sn), statistics.median(t_sr)
    print(f"median cadence: sngan {a:.3f} s, srgan {b:.3f} s; ratio srgan/sngan = {b / a:.3f} (target <= 1.10)")
    print(f"one SR call ({n_sr} layers, batched float64 SVD): median {1e3 * statistics.median(calls):.1f} ms; "
          f"5 calls per cadence = {100 * 5 * statistics.median(calls) / a:.1f}% of an SN-GAN cadence")


if __name__ == "__main__":
    main()

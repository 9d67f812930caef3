"""Shared helpers of the ICNN-W2 experiments (environment header, Gaussian pairs, Markdown tables)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "icnn_w2"


def header(seeds) -> str:
    import numpy
    import ot
    import pytorch_lightning

    lines = [
        f"- machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, {platform.platform()}",
        f"- python {sys.version.split()[0]}, torch {torch.__version__}, pytorch_lightning {pytorch_lightning.__version__}, "
        f"POT {ot.__version__}, numpy {numpy.__version__}; torch threads {torch.get_num_threads()}",
        f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
        f"- seeds: {seeds}",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def gaussian_pair(d: int, seed: int):
    """Random N(m1, S1), N(m2, S2): m ~ N(0, I), S = BBᵀ + 0.1 I with B_ij ~ N(0, 1/d) (float64)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        m = torch.randn(d, generator=g, dtype=torch.float64)
        B = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        out.append((m, B @ B.T + 0.1 * torch.eye(d, dtype=torch.float64)))
    return out


def gaussian_sampler(m, S):
    L = torch.linalg.cholesky(S).float()
    mf = m.float()
    return lambda n: mf + torch.randn(n, len(m)) @ L.T


def md_table(rows, cols) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)

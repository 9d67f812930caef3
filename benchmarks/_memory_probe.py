"""Peak memory of a Lightning fit and of the plain loop (``bench_module_vs_loop.py --memory``; one subprocess per
method, ``--memory-child``)."""

from __future__ import annotations

import _common  # noqa: F401  (first: one-thread environment)

import json
import os
import subprocess
import sys
import tempfile
from typing import List

import pytorch_lightning as pl
import torch

from _common import trainer
from _plain_loops import PLAIN, make


# =========================================================================================== memory
def memory_child(method: str, steps: int) -> dict:
    """Peak memory of a Lightning fit and of the plain loop, ``steps`` generator steps each; on the GPU when CUDA is
    available (then ``torch.cuda.max_memory_allocated`` is the number that matters), else on the CPU."""
    from _common import PeakMemory, peak_rss_mib, rss_mib

    cuda = torch.cuda.is_available()

    class Stop(pl.Callback):
        def on_train_batch_end(self, trainer, m, outputs, batch, batch_idx):
            if m.gen_step >= steps:
                trainer.should_stop = True

    model, dm = make(method)
    plain = PLAIN[method](model, dm)
    if cuda:
        plain.to("cuda")
    base = rss_mib()
    with tempfile.TemporaryDirectory() as root:
        tr = trainer([Stop()], root=root, accelerator="gpu" if cuda else "cpu")
        with PeakMemory() as pa:
            tr.fit(model, datamodule=dm)
    with PeakMemory() as pb:
        plain.run(steps)
    return {"method": method, "steps": steps, "rss_after_build_mib": base,
            "module_peak_increment_mib": pa.rss_increment, "loop_peak_increment_mib": pb.rss_increment,
            "process_peak_rss_mib": peak_rss_mib(), "peak_reset": pa.reset_ok,
            "device": "cuda" if cuda else "cpu",
            "cuda_module_mib": pa.cuda_increment, "cuda_loop_mib": pb.cuda_increment}


def memory_all(methods: List[str], steps: int) -> List[dict]:
    rows = []
    for method in methods:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", method,
                              "--memory-steps", str(steps)], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or not line:
            print(f"memory probe of {method} failed:\n{out.stderr[-2000:]}", flush=True)
            continue
        rows.append(json.loads(line[-1]))
        print(f"  memory {method}: {rows[-1]}", flush=True)
    return rows

import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite in several worker processes (pytest-xdist): they share the cores, so each gets
    # its share of torch threads instead of one thread per core each (oversubscribed matmuls run slower)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (timings and float reductions as in the docs), then restore."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

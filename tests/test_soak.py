"""Soak test (slow; `make test-all` or `pytest -m slow tests/test_soak.py`): 30 minutes of training with the
evaluation callbacks on, memory must stay flat. SOAK_MINUTES overrides the length (e.g. 3 for a quicker check).
Method and criterion: benchmarks/soak.py; the recorded curve: docs/RELIABILITY.md."""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import soak

    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    code = soak.main(["--minutes", str(minutes), "--out", str(tmp_path), "--interval", "5"])
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["status"] == "complete" and result["returncode"] == 0, result
    assert result["samples"] >= 8, result
    assert result["flat"], f"memory grew {result['growth_mb']} MB (limit {result['limit_mb']} MB): {result}"
    assert code == 0

"""The W&B path with the real SDK in offline mode (no mocks).

VanillaGAN trains a few generator steps through ``zoo.cli.main`` with ``--wandb true``, ``WANDB_MODE=offline`` and
``WANDB_DIR`` in ``tmp_path``, with :class:`callbacks.wandb_setup.WandbSetup` on. The offline run is then read back
from the ``run-<id>.wandb`` file the SDK writes: a LevelDB-style log (7-byte header ``":W&B"``, magic 0xBEE1,
version 0; 32 KiB blocks of records ``crc32 | length | type`` with FULL/FIRST/MIDDLE/LAST chunks, each chunk's CRC
checked) of ``wandb_internal_pb2.Record`` protobufs, parsed with the SDK's own protobuf classes.

Checked against values fixed independently of the SDK: the run's ``results.json`` (the eval metrics at the end),
the summaries ``min``/``max`` = min/max over the logged history of each eval metric, the config identity, the
``trainer/gen_step`` x-axis definitions, and that a fake ``WANDB_API_KEY`` appears in no file written.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path

import pytest

FAKE_KEY = "zz" + "0123456789abcdef" * 2 + "fakekey1"  # 42 characters, like a real key; never valid
GEN_STEPS = 30


def read_wandb_records(path: Path):
    """Yield the ``Record`` protobufs of an offline ``.wandb`` file (format in the module docstring)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block, pos, pending = 32768, 7, b""
    while pos < len(data):
        left = block - pos % block
        if left < 7:  # block trailer: too small for a header
            pos += left
            continue
        crc, length, rtype = struct.unpack("<IHB", data[pos:pos + 7])
        if crc == length == rtype == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([rtype]))) & 0xFFFFFFFF == crc, f"bad CRC at {pos}"
        pos += 7 + length
        if rtype == 1:
            payload = chunk
        elif rtype == 2:
            pending = chunk
            continue
        elif rtype == 3:
            pending += chunk
            continue
        else:
            payload, pending = pending + chunk, b""
        rec = pb.Record()
        rec.ParseFromString(payload)
        yield rec


def _items_to_dict(items) -> dict:
    out = {}
    for it in items:
        key = "/".join(list(it.nested_key)) if it.nested_key else it.key
        out[key] = json.loads(it.value_json)
    return out


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    import wandb

    from zoo.cli import main

    tmp = tmp_path_factory.mktemp("wandb_offline")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(tmp / "wandb_dir"))
    mp.setenv("WANDB_API_KEY", FAKE_KEY)
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("OMP_NUM_THREADS", "1")
    (tmp / "wandb_dir").mkdir()
    try:
        main(["fit", "--model", "vanilla", "--data", "ring8", "--seed_everything", "7", "--run_name", "wb-ring8-s7",
              "--trainer.default_root_dir", str(tmp / "runs"), "--model.max_gen_steps", str(GEN_STEPS),
              "--model.hidden", "[32, 32]", "--data.n_samples", "4096", "--data.batch_size", "64",
              "--trainer.max_epochs", "-1", "--trainer.log_every_n_steps", "5", "--trainer.enable_model_summary",
              "false", "--mode_coverage.every_n_gen_steps", "10", "--mode_coverage.n_samples", "500",
              "--sample_plot.every_n_gen_steps", "0", "--wandb", "true", "--wandb_project", "zoo-test",
              "--trainer.callbacks+=callbacks.wandb_setup.WandbSetup"])
    finally:
        if wandb.run is not None:  # the callback finishes the run; never leave one open for other tests
            wandb.finish()
        wandb.teardown()  # stop the SDK's service process: it writes the .wandb file asynchronously
        mp.undo()
    run_dir = tmp / "runs" / "wb-ring8-s7"
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline run file, found {files}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the writer may still be flushing: wait for the exit record
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in read_wandb_records(files[0])):
                break
        except (AssertionError, struct.error):  # a record still being written
            pass
        time.sleep(0.5)
    return tmp, run_dir, list(read_wandb_records(files[0]))


def _of(records, kind):
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def test_offline_run_is_complete_and_named(offline_run):
    _, run_dir, records = offline_run
    runs = _of(records, "run")
    assert runs and runs[0].run_id.startswith("wb-ring8-s7-") and runs[0].display_name == "wb-ring8-s7"
    assert runs[0].project == "zoo-test"
    assert _of(records, "exit"), "no exit record: the offline run was not finished (cannot be synced)"


def test_config_records_identity_and_budget(offline_run):
    _, _, records = offline_run
    cfg = {}
    for c in _of(records, "config"):
        cfg.update(_items_to_dict(c.update))
    assert cfg["method"] == "vanilla" and cfg["dataset"] == "ring8" and cfg["seed"] == 7
    assert cfg["budget"]["max_gen_steps"] == GEN_STEPS
    assert cfg["world_size"] == 1
    import torch
    import wandb

    assert cfg["versions"]["torch"] == torch.__version__ and cfg["versions"]["wandb"] == wandb.__version__


def test_define_metric_gen_step_axis_and_summaries(offline_run):
    _, _, records = offline_run
    metrics = {}
    for m in _of(records, "metric"):
        metrics[m.name or m.glob_name] = m  # later definitions overwrite earlier ones, as in the SDK
    assert metrics["*"].step_metric == "trainer/gen_step"
    for name, agg in {"eval/modes": "max", "eval/hq": "max", "eval/kl": "min", "eval/fid": "min",
                      "eval/w2": "min"}.items():
        m = metrics[name]
        assert m.step_metric == "trainer/gen_step"
        assert getattr(m.summary, agg) and m.summary.last, f"{name}: summary {m.summary}"
        other = "min" if agg == "max" else "max"
        assert not getattr(m.summary, other)


def test_history_and_summary_match_results_json(offline_run):
    _, run_dir, records = offline_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "complete" and results["steps"]["gen_step"] == GEN_STEPS
    history = [_items_to_dict(h.item) for h in _of(records, "history")]
    evals = [h for h in history if "eval/kl" in h]
    # ModeCoverage every 10 generator steps (10, 20, 30), the last one also covering the end of fit
    assert [int(h["trainer/gen_step"]) for h in evals] == [10, 20, GEN_STEPS]
    summary = {}
    for s in _of(records, "summary"):
        summary.update(_items_to_dict(s.update))
    for key, agg in (("eval/kl", "min"), ("eval/modes", "max"), ("eval/hq", "max")):
        values = [h[key] for h in evals]
        best = min(values) if agg == "min" else max(values)
        assert summary[key][agg] == pytest.approx(best)
        assert summary[key]["last"] == pytest.approx(values[-1])
        assert summary[key]["last"] == pytest.approx(results["metrics"][key])
    assert summary["gen_steps"] == GEN_STEPS
    assert summary["wall_time_s"] > 0


def test_fake_api_key_is_never_written(offline_run):
    tmp, run_dir, _ = offline_run
    files = [p for p in tmp.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.name == "results.json" for p in files)
    leaks = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"


def test_leaderboard_logs_median_curves_as_line_plots_offline(tmp_path, monkeypatch):
    """``zoo.leaderboard --curves DIR --log_wandb P``: the median over seeds at the steps every seed evaluated
    (hand-computed), logged through the real SDK in offline mode."""
    from zoo import leaderboard

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    recs = tmp_path / "records" / "ring8"
    recs.mkdir(parents=True)
    for seed, modes in enumerate([[2, 6, 8], [4, 7, 8], [3, 5, 6]]):
        curve = [{"gen_step": s, "wall_s": s / 10 + seed, "eval/modes": m} for s, m in zip((250, 500, 1000), modes)]
        if seed == 2:
            curve.append({"gen_step": 2000, "wall_s": 300.0, "eval/modes": 8})  # only one seed: not in the median
        (recs / f"vanilla-s{seed}.json").write_text(json.dumps({"method": "vanilla", "data": "ring8", "seed": seed,
                                                                "curve": curve}))
    curves = leaderboard.load_curves(tmp_path / "records")
    assert leaderboard.median_curves(curves[("ring8", "vanilla")], "eval/modes") == (
        [250, 500, 1000], [3.0, 6.0, 8.0], [26.0, 51.0, 101.0])
    msg = leaderboard.main(["--curves", str(tmp_path / "records"), "--log_wandb", "zoo-test"])
    assert "2 line plots" in msg  # modes vs steps and vs seconds
    files = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    logged = b"".join(r.SerializeToString() for r in read_wandb_records(files[0]))
    assert b"curves/ring8/modes_vs_steps" in logged and b"curves/ring8/modes_vs_seconds" in logged

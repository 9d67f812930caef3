"""Comparison runner: budget parsing, fair command lines, resumability, device scheduling, and two real
``train.py`` runs in subprocesses (a step budget and a wall-clock budget)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from zoo import compare
from zoo.errors import ConfigError

SMALL = ["--data.n_samples", "4096", "--data.batch_size", "64", "--model.hidden", "[32, 32]"]


@pytest.mark.parametrize("text,kind,value", [
    ("500steps", "steps", 500), ("500", "steps", 500), ("500 gen_steps", "steps", 500), (2000, "steps", 2000),
    ("2min", "minutes", 2.0), ("1.5 minutes", "minutes", 1.5), ("90s", "minutes", 1.5), ("3sec", "minutes", 0.05),
])
def test_parse_budget(text, kind, value):
    b = compare.parse_budget(text)
    assert (b.kind, b.value) == (kind, pytest.approx(value))


@pytest.mark.parametrize("bad", ["", "fast", "0steps", "1.5steps", "-3min", "0min", "10 hours"])
def test_parse_budget_rejects(bad):
    with pytest.raises(ConfigError):
        compare.parse_budget(bad)


def test_budget_arguments():
    assert compare.parse_budget("750steps").cli_args() == ["--model.max_gen_steps", "750"]
    # 1.5 min = 90 s; 26 h 1 min 5 s = 93665 s -> 01:02:01:05 (DD:HH:MM:SS)
    assert compare.parse_budget("1.5min").cli_args() == ["--model.max_gen_steps", "null", "--trainer.max_time",
                                                         "00:00:01:30"]
    assert compare.parse_budget("93665s").max_time() == "01:02:01:05"


def _shared(args):
    """The command line without the per-method / per-run parts."""
    out, skip = [], 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
            continue
        if a in ("--model", "--run_name", "--config", "--seed_everything"):
            skip = 1
            continue
        out.append(a)
    return out


def test_every_method_gets_the_same_data_budget_and_evaluation(tmp_path):
    budget = compare.parse_budget("300steps")
    specs = compare.plan_grid(["vanilla", "wgan_gp", "aeot"], ["ring8", "grid25"], [0, 1], tmp_path)
    assert [s.name for s in specs[:3]] == ["vanilla-ring8-s0", "vanilla-ring8-s1", "wgan_gp-ring8-s0"]
    lines = [compare.train_args(s, budget, eval_every=60, wandb=False) for s in specs]
    for spec, args in zip(specs, lines):
        same_data = [a for a in lines if spec.data in a]
        assert all(_shared(a) == _shared(args) for a in same_data)
        assert args[args.index("--model") + 1] == spec.method  # no class path given: the short name
        assert args[args.index("--seed_everything") + 1] == str(spec.seed)
        assert args[args.index("--run_name") + 1] == spec.name
    a = lines[0]
    for opt, val in [("--mode_coverage.n_samples", "2500"), ("--mode_coverage.seed", "0"),
                     ("--mode_coverage.every_n_gen_steps", "60"), ("--model.max_gen_steps", "300"),
                     ("--data.seed", "0"), ("--trainer.devices", "1"), ("--wandb", "false")]:
        assert a[a.index(opt) + 1] == val
    # the method's documented config comes first, so the grid's settings override it
    if (compare.CONFIG_DIR / "vanilla" / "ring8.yaml").exists():
        assert a.index("--config") < a.index("--model.max_gen_steps")


def test_unknown_names_fail_early(tmp_path):
    import zoo.methods  # noqa: F401
    from zoo.registry import list_models

    assert compare.resolve_methods(["all"]) == list_models() and "vanilla" in list_models()
    assert compare.resolve_methods(["VanillaGAN", "vanilla"]) == ["vanilla"]
    with pytest.raises(ConfigError):
        compare.resolve_methods(["no_such_gan"])
    with pytest.raises(ConfigError):
        compare.plan_grid(["vanilla"], ["no_such_data"], [0], tmp_path)
    assert compare.main(["--methods", "vanilla", "--budget", "soon", "--out", str(tmp_path)]) == 2
    assert compare.main(["--methods", "vanilla", "--budget", "5steps", "--metric", "accuracy"]) == 2


def _fake_runner(calls, sleep=0.0, status="complete"):
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    def run_one(spec, args, gpu=None, timeout=None):
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            calls.append((spec.name, gpu, list(args)))
        time.sleep(sleep)
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        (spec.results_path).write_text(json.dumps({
            "status": status, "method": spec.method, "data": spec.data, "seed": spec.seed,
            "metrics": {"eval/modes": 8.0}, "steps": {"gen_step": 5}, "wall_time_s": 1.0, "config": {}}))
        with lock:
            state["active"] -= 1
        return compare.Outcome(spec.name, status, sleep, 0, {"modes": 8.0})

    return run_one, state


def test_one_run_per_gpu_in_parallel(tmp_path, monkeypatch):
    calls = []
    fake, state = _fake_runner(calls, sleep=0.3)
    monkeypatch.setattr(compare, "run_one", fake)
    monkeypatch.setattr(compare, "visible_gpus", lambda: [0, 1])
    compare.run_grid(["vanilla"], ["ring8", "grid25"], 2, "5steps", tmp_path, progress=False,
                     leaderboard_out=False)
    assert len(calls) == 4 and state["peak"] == 2
    assert all(args[args.index("--model") + 1] == "zoo.vanilla.VanillaGAN" for _, _, args in calls)
    assert {gpu for _, gpu, _ in calls} == {0, 1}
    assert all(args[args.index("--trainer.accelerator") + 1] == "gpu" for _, _, args in calls)
    manifest = json.loads((tmp_path / compare.MANIFEST).read_text())
    assert manifest["gpus"] == [0, 1] and len(manifest["outcomes"]) == 4


def test_cpu_is_sequential_and_incomplete_runs_are_redone(tmp_path, monkeypatch):
    calls = []
    fake, state = _fake_runner(calls)
    monkeypatch.setattr(compare, "run_one", fake)
    monkeypatch.setattr(compare, "visible_gpus", lambda: [])
    spec = compare.RunSpec("vanilla", "ring8", 1, tmp_path)
    spec.run_dir.mkdir(parents=True)
    spec.results_path.write_text(json.dumps({"status": "incomplete"}))
    compare.run_grid(["vanilla"], ["ring8"], 2, "5steps", tmp_path, progress=False, leaderboard_out=False)
    assert [c[0] for c in calls] == ["vanilla-ring8-s0", "vanilla-ring8-s1"] and state["peak"] == 1
    assert all(args[args.index("--trainer.accelerator") + 1] == "cpu" and gpu is None for _, gpu, args in calls)


@pytest.fixture
def quiet_env(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_step_budget_end_to_end_and_resume(tmp_path, quiet_env, monkeypatch, capsys):
    out = tmp_path / "grid"
    md = compare.run_grid(["vanilla"], ["ring8"], [0], "20steps", out, eval_every=10, wandb=False,
                          accelerator="cpu", extra_args=SMALL)
    res = json.loads((out / "vanilla-ring8-s0" / "results.json").read_text())
    assert res["status"] == "complete" and res["steps"]["gen_step"] == 20 and res["seed"] == 0
    assert res["config"]["mode_coverage"]["n_samples"] == 2500 and res["config"]["data"]["init_args"]["seed"] == 0
    assert res["wall_time_s"] > 0
    assert "### ring8" in md and "| 1 | vanilla | 1 | 20 |" in md
    assert (out / "leaderboard.md").read_text() == md and (out / "leaderboard.csv").exists()
    assert (out / "logs" / "vanilla-ring8-s0.log").exists()
    # resumable: a finished run is skipped, not re-run
    monkeypatch.setattr(compare, "run_one", lambda *a, **k: pytest.fail("a complete run was started again"))
    capsys.readouterr()
    md2 = compare.run_grid(["vanilla"], ["ring8"], [0], "20steps", out, eval_every=10, wandb=False,
                           accelerator="cpu", extra_args=SMALL)
    assert "skip" in capsys.readouterr().out and md2 == md
    # the same folder with another budget would mix protocols
    with pytest.raises(ConfigError):
        compare.run_grid(["vanilla"], ["ring8"], [0], "40steps", out, eval_every=10, accelerator="cpu")


def test_wall_clock_budget_end_to_end(tmp_path, quiet_env):
    out = tmp_path / "grid"
    compare.run_grid(["vanilla"], ["ring8"], [0], "3s", out, wandb=False, accelerator="cpu", extra_args=SMALL,
                     progress=False)
    res = json.loads((out / "vanilla-ring8-s0" / "results.json").read_text())
    assert res["status"] == "complete"
    assert res["config"]["trainer"]["max_time"] == "00:00:00:03"
    assert res["config"]["model"]["init_args"]["max_gen_steps"] is None
    assert res["steps"]["gen_step"] > 0  # both units are recorded whichever bounds the run
    assert res["wall_time_s"] >= 3.0


def test_a_run_over_its_time_limit_is_stopped(tmp_path, monkeypatch):
    # a stand-in train.py that never finishes: the runner must stop it (SIGTERM) and report it, not hang
    monkeypatch.setattr(compare, "_RUNNER", "import time; time.sleep(120)")
    spec = compare.RunSpec("vanilla", "ring8", 0, tmp_path)
    t0 = time.perf_counter()
    out = compare.run_one(spec, ["fit"], timeout=1.0)
    assert time.perf_counter() - t0 < 60
    assert out.status == "failed" and out.returncode != 0
    assert "stopped after the 1 s time limit" in Path(out.log).read_text()

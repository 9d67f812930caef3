"""``experiments/reproduction.py write`` builds a well-formed report from synthetic ``results.json`` files."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repro():
    spec = importlib.util.spec_from_file_location("reproduction", ROOT / "experiments" / "reproduction.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return mod


def _result(root: Path, method: str, data: str, seed: int, metrics: dict, status: str = "complete",
            gen_step: int = 123) -> None:
    run = root / data / f"{method}-{data}-s{seed}"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({
        "method": method, "data": data, "seed": seed, "status": status, "metrics": metrics,
        "steps": {"gen_step": gen_step}, "wall_time_s": 10.0 + seed,
        "versions": {"python": "3.11.7", "torch": "2.13.0", "git_commit": "abcdef1234567"},
        "device": {"platform": "Linux-test", "cpu_count": 2, "torch_threads": 1, "accelerator": "CPUAccelerator"},
        "finished_at": f"2026-11-22T10:0{seed}:00+0000"}))


def _grid(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for seed, (modes, hq, kl) in enumerate([(8, 0.9, 0.1), (6, 0.8, 0.2), (7, 0.7, 0.3)]):
        _result(runs, "vanilla", "ring8", seed, {"eval/modes": modes, "eval/hq": hq, "eval/kl": kl})
    # an interrupted run must not enter the mean
    _result(runs, "vanilla", "ring8", 3, {"eval/modes": 0.0, "eval/hq": 0.0, "eval/kl": 2.0}, status="incomplete")
    for seed, (modes, kl) in enumerate([(500, 1.0), (600, 2.0)]):
        _result(runs, "vanilla", "stacked_digits", seed, {"eval/modes": modes, "eval/kl": kl, "eval/fid": 10.0})
    # with a config's class_path, results.json names the data by its class; the run name has the short name
    res = runs / "stacked_digits" / "vanilla-stacked_digits-s1" / "results.json"
    res.write_text(res.read_text().replace('"data": "stacked_digits"', '"data": "StackedDigits"'))
    _result(runs, "aeot", "grid25", 0, {"eval/modes": 25, "eval/hq": 0.99, "eval/kl": 0.01})
    for d, b in (("ring8", "123steps"), ("stacked_digits", "45steps")):
        (runs / d / "compare.json").write_text(json.dumps({"budget": b, "outcomes": [{"seconds": 30.0}]}))
    return runs


def test_mean_std_is_sample_std(repro):
    m, s = repro.mean_std([8, 6, 7])
    assert m == pytest.approx(7.0) and s == pytest.approx(1.0)
    m, s = repro.mean_std([500, 600])
    assert m == pytest.approx(550.0) and s == pytest.approx(math.sqrt(5000))
    assert repro.mean_std([3.0]) == (3.0, None)
    assert repro.fmt_ms([0.9, 0.8, 0.7], 1, 100.0) == "80.0 ± 10.0"
    assert repro.fmt_ms([], 2) == "–"


def test_markdown_cells_keep_pipes_inside_formulas(tmp_path, repro):
    md = tmp_path / "t.md"
    md.write_text("| d | primal E|X−TX|² | L2-UVP % | empty |\n|---|---|---|---|\n| 2 | 4.01 | 0.001 |  |\n")
    rows = repro.md_table_with(md, "d", "L2-UVP %")
    assert rows == [{"d": "2", "primal E|X−TX|²": "4.01", "L2-UVP %": "0.001", "empty": ""}]


def test_write_builds_the_report_from_results_json(tmp_path, repro):
    runs = _grid(tmp_path)
    out = tmp_path / "docs" / "REPRODUCTION.md"
    text = repro.write(runs, out, docs=tmp_path / "no_docs", date="2000-01-02")
    assert out.read_text() == text
    assert text.startswith("# Reproduction report")
    assert "2000-01-02" in text and "experiments/reproduction.py write" in text
    for heading in ("## 0. Environment and budget", "## 1. Mode-collapse table", "## 2. Claims and verdicts",
                    "## 3. Every run of the grid", "## 4. Per-method claims"):
        assert heading in text
    # budgets come from the grids' compare.json; the missing grid falls back to the script's default
    assert "ring8: 123 generator steps" in text and "stacked_digits: 45 generator steps" in text
    assert f"grid25: {repro.budget_text(repro.BUDGETS['grid25'])}" in text
    row = next(line for line in text.splitlines() if line.startswith("| VanillaGAN (`vanilla`) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # ring8: modes 8, 6, 7; HQ 90, 80, 70 %; KL .1 .2 .3 (the incomplete seed 3 is left out)
    assert cells[1:4] == ["7.00 ± 1.00", "80.0 ± 10.0", "0.200 ± 0.100"]
    assert cells[4:7] == ["not run"] * 3
    # stacked digits: modes 500, 600 -> 550 ± 70.7; KL 1, 2 -> 1.5 ± 0.707
    assert cells[7:10] == ["550.0 ± 70.7", "1.500 ± 0.707", "10.0 ± 0.0"]
    assert cells[10] == "0,1,2 (+1 failed) / – / 0,1"
    aeot = next(line for line in text.splitlines() if line.startswith("| AE-OT (`aeot`) |"))
    assert "| 25.00 | 99.0 | 0.010 |" in aeot  # one seed: no ± std
    # every table row has as many cells as its header
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---") or line.startswith("|--"):
            n = len(repro._cells(lines[i - 1]))
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(repro._cells(lines[j])) == n, lines[j]
                j += 1
    # per-run table and environment read from results.json
    assert "| ring8 | vanilla | 3 | incomplete |" in text
    assert "abcdef1234" in text and "Linux-test" in text
    # sources under docs/results are missing here: said so, no crash
    assert "source missing" in text or "not testable here" in text


def test_write_reads_the_grid_back_from_its_record(tmp_path, repro):
    """The run folders are git-ignored: ``write`` saves what it read to the record, and a later ``write`` without
    run folders reads the record and produces the same report."""
    runs, record = _grid(tmp_path), tmp_path / "record" / "grid.json"
    first = repro.write(runs, tmp_path / "A.md", docs=tmp_path / "no_docs", date="2000-01-02", record=record)
    assert record.exists() and json.loads(record.read_text())["budgets"] == {"ring8": "123steps",
                                                                            "stacked_digits": "45steps"}
    again = repro.write(tmp_path / "gone", tmp_path / "A.md", docs=tmp_path / "no_docs", date="2000-01-02",
                        record=record)
    assert "7.00 ± 1.00" in again and "80.0 ± 10.0" in again  # vanilla ring8 modes and HQ % from seeds 0-2
    strip = lambda t: [ln.replace(str(tmp_path / "gone"), str(runs)) for ln in t.splitlines()  # noqa: E731
                       if not ln.startswith("| runs |")]
    assert strip(again) == strip(first)
    assert f"read from `{record}`" in again
    # without a record and without runs: nothing to read, the report says so
    assert "not run" in repro.write(tmp_path / "gone", tmp_path / "B.md", docs=tmp_path / "no_docs", date="2000")


def test_write_reads_the_recorded_results(tmp_path, repro):
    """With the repository's docs/results the per-method sections pick up the recorded numbers."""
    text = repro.write(_grid(tmp_path), tmp_path / "R.md", date="2000-01-02")
    assert "546.0 ± 104.3" in text         # SN-GAN final modes, docs/results/srgan/runs/sngan_s*.json (508, 664, 466)
    assert "2.0992 vs closed form 2.1004" in text  # WGAN-GP congestion.md
    assert "**reproduced**" in text and "**not reproduced**" in text


def test_compare_config_paths_override_only_the_named_runs(tmp_path):
    """``zoo.compare``'s ``config_paths`` (used by the reproduction grid) replaces the config of the named
    (method, data) only; without it the command lines are unchanged."""
    from zoo.compare import RunSpec, parse_budget, train_args
    from zoo.errors import ConfigError

    b = parse_budget("10steps")
    icnn = RunSpec("icnn_w2", "ring8", 0, tmp_path)
    plain = train_args(icnn, b)
    # the short name's folder configs/icnn_w2/ does not exist: the module's folder configs/icnn_w2gan/ is used
    assert plain[1:3] == ["--config", str(ROOT / "zoo/configs/icnn_w2gan/ring8.yaml")]  # the package's configs
    mapped = train_args(icnn, b, config_paths={"icnn_w2/ring8": "configs/icnn_w2gan/grid25.yaml"})
    assert mapped[1:3] == ["--config", str(ROOT / "configs/icnn_w2gan/grid25.yaml")] and mapped[3:] == plain[3:]
    van = RunSpec("vanilla", "ring8", 0, tmp_path)
    assert train_args(van, b, config_paths={"icnn_w2/ring8": "configs/icnn_w2gan/grid25.yaml"}) == train_args(van, b)
    assert "--config" not in train_args(icnn, b, use_configs=False,
                                         config_paths={"icnn_w2/ring8": "configs/icnn_w2gan/grid25.yaml"})
    with pytest.raises(ConfigError, match="not found"):
        train_args(icnn, b, config_paths={"icnn_w2/ring8": "configs/nope.yaml"})


def test_reproduction_configs_exist(repro):
    for path in repro.CONFIG_PATHS.values():
        assert (ROOT / path).is_file(), path


# ------------------------------------------------------------------ the convergence grid (issue 18): records only
def _record(root: Path, method: str, data: str, seed: int, modes: list, hq: list, folder: str = "runs") -> None:
    steps = [250 * 2**k for k in range(len(modes))]
    curve = [{"gen_step": s, "wall_s": s / 100, "cpu_s": s / 110, "eval/modes": m, "eval/hq": h, "eval/kl": 0.1}
             for s, m, h in zip(steps, modes, hq)]
    p = root / "results" / "reproduction" / folder / data / f"{method}-s{seed}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"method": method, "data": data, "seed": seed, "cap": steps[-1], "status": "complete",
                             "wall_s": steps[-1] / 100, "cpu_s": steps[-1] / 110, "curve": curve}))


def test_convergence_section_is_built_from_the_records_alone(tmp_path, repro):
    docs = tmp_path / "docs"
    for seed in range(3):  # VanillaGAN: flat between the last two evaluations; WGAN-GP: still rising
        _record(docs, "vanilla", "ring8", seed, [2, 5, 8, 8], [0.1, 0.5, 0.80, 0.82 + 0.01 * seed])
        _record(docs, "wgan_gp", "ring8", seed, [1, 2, 4, 7], [0.0, 0.1, 0.3, 0.6])
    # AE-OT-like: its generator exists only after a final stage counted past the cap
    _record(docs, "aeot", "ring8", 0, [3, 5, 2, 4], [0.0, 0.1, 0.0, 0.1])
    p = docs / "results" / "reproduction" / "runs" / "ring8" / "aeot-s0.json"
    rec = json.loads(p.read_text())
    rec["curve"].append({"gen_step": 2001, "wall_s": 30.0, "eval/modes": 8, "eval/hq": 0.99, "eval/kl": 0.02})
    p.write_text(json.dumps(rec))
    out = docs / "REPRODUCTION.md"
    text = repro.write(tmp_path / "no_runs", out, docs=docs, date="2000-01-02", record=None)
    ae = next(ln for ln in text.splitlines() if ln.startswith("| AE-OT | 0 |"))
    assert "| 8 (8–8) |" in ae and "n/a: its generator is made after the cap" in ae
    assert "Records so far: 7 of 91 (7 methods × (5 + 5 + 3) seeds of ring8, grid25, stacked_digits)" in text
    van = next(ln for ln in text.splitlines() if ln.startswith("| VanillaGAN | 0,1,2 |"))
    # medians at the cap: modes 8 (8–8), HQ 83 % (82–84 %); plateau: modes +0, HQ +3 pts
    assert "| 8 (8–8) | 83.0 % (82.0 %–84.0 %) |" in van and "| yes |" in van
    wg = next(ln for ln in text.splitlines() if ln.startswith("| WGAN-GP | 0,1,2 |"))
    assert "no: still moving (median modes moved 3.0, HQ 30.0 pts over the last doubling)" in wg
    assert (docs / "results" / "reproduction" / "convergence_ring8.png").stat().st_size > 10_000
    # beside PacGAN's Table 1: our medians in its columns, and the GAN row compared in words
    assert "| PacGAN T1: GAN | 6.3±0.5 | 98.2±0.2 | 0.45±0.09 |" in text
    assert "Our VanillaGAN against PacGAN's GAN row (ours vs published): ring8: modes 8 vs 6.3±0.5, HQ 83.0 % vs " \
           "98.2±0.2 %, KL 0.1 vs 0.45±0.09." in text
    assert "](results/reproduction/convergence_ring8.png)" in text
    # is the cap the plateau? VanillaGAN flat; WGAN-GP's medians rose 4 -> 7 modes and 30 -> 60 % HQ from cap/2
    assert ("* **ring8** (cap 2,000 generator steps): flat at the cap: VanillaGAN; still moving: WGAN-GP (modes "
            "+3.0, HQ +30.0 pts); no plateau check: AE-OT") in text
    assert "**1 of 2** method × dataset cells with a plateau check are flat at the cap" in text
    # the cost: median fit CPU s per run (2000/110 = 18 s), projected over 5 seeds of each method with records
    assert "| VanillaGAN | 18 (3) | – | – |" in text and "| AE-OT | 18 (1) | – | – |" in text
    assert "Recorded so far: 0.04 CPU hours in 7 runs" in text  # 7 × 18.18 s
    assert "ring8 + grid25 (5 seeds) 0.08 CPU hours" in text    # 3 methods × 5 seeds × 18.18 s = 273 s


def test_convergence_records_replace_the_short_grid_per_dataset(tmp_path, repro):
    """Where the convergence grid has a record of every method (ring8 here), §1's cells, the budget and the verdicts
    come from them (final evaluation at the cap); stacked digits, whose convergence grid has only begun (one
    method's record), keeps the short grid's runs."""
    docs = tmp_path / "docs"
    for seed in range(3):  # converged VanillaGAN on ring8: 8 modes, HQ 95 % at the cap
        _record(docs, "vanilla", "ring8", seed, [2, 5, 8, 8], [0.1, 0.5, 0.9, 0.95])
    for m in ("wgan_gp", "sngan", "srgan", "icnn_w2", "dual_flow", "aeot"):
        _record(docs, m, "ring8", 0, [1, 2, 3, 4], [0.0, 0.1, 0.2, 0.3])
    _record(docs, "vanilla", "stacked_digits", 0, [100, 200, 300, 999], [0.0, 0.0, 0.0, 0.0])
    text = repro.write(_grid(tmp_path), docs / "REPRODUCTION.md", docs=docs, date="2000-01-02")
    row = next(line for line in text.splitlines() if line.startswith("| VanillaGAN (`vanilla`) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["8.00 ± 0.00", "95.0 ± 0.0"]       # not the short grid's 7.00 ± 1.00 / 80.0 ± 10.0
    assert cells[7] == "550.0 ± 70.7"                         # stacked digits: still the short grid
    assert cells[10] == "0,1,2 / – / 0,1"                     # the short grid's failed ring8 seed 3 is gone too
    # the records' cap for ring8, the short grid's budget for stacked digits
    assert "ring8: 2000 generator steps (convergence grid)" in text
    assert "stacked_digits: 45 generator steps (short grid)" in text
    # the verdict reads the converged cells: 8/8 ring modes at 95 % HQ; grid25 has no vanilla run at all
    assert "the grid has no complete vanilla runs on ring8 and grid25 yet" in text
    assert "| ring8 | vanilla | 0 | complete |" in text


def test_convergence_run_skips_every_run_with_a_record(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "experiments"))
    import convergence_grid as cg

    records = tmp_path / "records"
    for m in ("vanilla", "sngan"):
        p = cg.record_path("ring8", m, 0, records)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    ran = []
    monkeypatch.setattr(cg, "run_one", lambda *a, **k: ran.append(a))
    cg.run(["ring8"], ["vanilla", "sngan", "srgan"], [0, 1], jobs=1, runs=tmp_path / "runs", records=records)
    assert sorted(ran) == [("sngan", "ring8", 1), ("srgan", "ring8", 0), ("srgan", "ring8", 1),
                           ("vanilla", "ring8", 1)]


def test_convergence_plan_prices_the_runs_left_by_hand(tmp_path, monkeypatch, capsys):
    """The plan before a grid: each run priced at its cell's median CPU s, a cell without a record at its method's
    median on the other dataset, a method without any record counted apart; wall-clock = greedy 2-worker makespan
    in the pool's order (hand-computed: runs of 2 h, 0.5 h, 2 h -> workers 2 | 0.5 + 2 -> 2.5 h)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import convergence_grid as cg

    records = tmp_path / "records"
    for m, s, cpu in (("vanilla", 0, 3600.0), ("vanilla", 1, 10800.0), ("sngan", 0, 1800.0)):
        p = cg.record_path("ring8", m, s, records)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"method": m, "data": "ring8", "seed": s, "cpu_s": cpu,
                                 "curve": [{"gen_step": 1, "eval/modes": 1.0}]}))
    todo = [("vanilla", "ring8", 2), ("sngan", "ring8", 1), ("vanilla", "grid25", 0), ("icnn_w2", "ring8", 0)]
    (line,) = cg.plan(todo, cg.load_records(records), jobs=2)
    assert "3 runs, 4.50 CPU h, about 2.50 h of wall-clock at 2 at a time" in line
    assert "other datasets: grid25 VanillaGAN" in line
    assert "not priced (no record of the method yet): 1 runs of ring8 ICNN W2-GAN" in line
    assert cg.plan([], [], 2) == ["nothing to run: every run has its record"]

    # the report's line on the dense grid: 70 runs less these 3; priced: VanillaGAN 3 (ring8) + 5 (grid25, borrowed)
    # at 2 h, SN-GAN 4 + 5 at 0.5 h = 20.5 CPU h; the 5 other methods x 10 runs are not priced
    cost = cg.window_cost(cg.load_records(records))
    assert "still to run: 67 runs, about 20.5 CPU hours" in cost
    assert cost.endswith("other datasets: grid25 SN-GAN, grid25 VanillaGAN; not priced (no record of the method "
                         "yet): 50 runs of grid25 AE-OT, grid25 DualFlowGAN, grid25 ICNN W2-GAN, grid25 SR-GAN, "
                         "grid25 WGAN-GP, ring8 AE-OT, ring8 DualFlowGAN, ring8 ICNN W2-GAN, ring8 SR-GAN, ring8 "
                         "WGAN-GP)")

    monkeypatch.setattr(cg, "run_one", lambda *a, **k: pytest.fail("a dry run trained"))
    cg.run(["ring8"], ["vanilla", "sngan"], [0, 1], jobs=2, runs=tmp_path / "runs", records=records, dry_run=True)
    out = capsys.readouterr().out
    assert "1 runs to do" in out and "to run: ring8 sngan s1" in out and "1 runs, 0.50 CPU h" in out


def test_convergence_curve_merges_the_evaluation_rows_of_metrics_csv(tmp_path):
    import zoo.anytime as cg

    (tmp_path / "metrics.csv").write_text(
        "step,loss/d,eval/modes,eval/hq,eval/w2,trainer/gen_step,time/wall_s,time/cpu_s\n"
        "3,0.5,,,,30,,\n"
        "25,,7,0.5,,250,2.5,2.0\n"
        "25,,,,0.3,250,2.6,2.1\n"
        "50,,8,0.75,0.2,500,5.0,4.0\n")
    assert cg.read_curve(tmp_path) == [
        {"gen_step": 250, "eval/modes": 7.0, "eval/hq": 0.5, "eval/w2": 0.3, "wall_s": 2.6, "cpu_s": 2.1},
        {"gen_step": 500, "eval/modes": 8.0, "eval/hq": 0.75, "eval/w2": 0.2, "wall_s": 5.0, "cpu_s": 4.0}]


def test_plateau_probe_finds_where_each_curve_flattens(tmp_path, monkeypatch, repro):
    """The probe trains past the cap to the probe's cap (skipping recorded runs) and reports, per record, the first
    evaluation from which every later doubling moves by ≤ 1 mode and ≤ 5 HQ points (hand-computed below)."""
    import convergence_grid as cg

    docs = tmp_path / "docs"
    probe = docs / "results" / "reproduction" / "probe"
    # 250·2^k up to 64,000. SR-GAN: +1 mode and +40 HQ pts from 16k to 32k, then +0 / +2 -> flat from 32,000.
    _record(docs, "srgan", "ring8", 0, [0, 1, 3, 4, 5, 6, 7, 8, 8], [0, 0, 0, .1, .2, .3, .5, .9, .92], "probe")
    # WGAN-GP: HQ still +6 pts over the last doubling -> not flat at its cap
    _record(docs, "wgan_gp", "ring8", 0, [0, 1, 8, 8, 8, 8, 8, 8, 8], [0, 0, .1, .2, .3, .4, .5, .6, .66], "probe")
    recs = cg.load_records(probe)
    assert {r["method"]: cg.flat_from(r) for r in recs} == {"srgan": 32000, "wgan_gp": None}
    _record(docs, "vanilla", "ring8", 0, [2, 5, 8, 8], [0.1, 0.5, 0.80, 0.82])  # the grid itself (cap 2,000)
    text = repro.write(tmp_path / "no_runs", docs / "REPRODUCTION.md", docs=docs, date="2000-01-02", record=None)
    row = next(ln for ln in text.splitlines() if ln.startswith("| ring8 | SR-GAN | 0 |"))
    assert row.endswith("| 8 / 90 | 8 / 92 | 32,000 |")
    assert next(ln for ln in text.splitlines() if ln.startswith("| ring8 | WGAN-GP | 0 |")).endswith(
        "| not flat at 64,000 |")
    assert "Flat by the probe's cap: **1 of 2** runs (SR-GAN ring8 s0)." in text
    # doublings from the grid's cap (16,000) on: SR-GAN +1 mode / +40 pts, then 0 / +2; WGAN-GP 0 / +10, then 0 / +6
    assert ("HQ moved by +2 points (SR-GAN ring8 s0, 32,000 → 64,000) to +40 points (SR-GAN ring8 s0, 16,000 → "
            "32,000), the mode count by +0 modes (SR-GAN ring8 s0, 32,000 → 64,000) to +1 modes (SR-GAN ring8 s0, "
            "16,000 → 32,000).") in text
    # the runner: only runs without a probe record, each to the probe's cap
    ran = []
    monkeypatch.setattr(cg, "run_anytime", lambda *a, **k: ran.append((a[:3], k["cap"], k["every"], k["schedule"])))
    cg.probe(["ring8"], ["srgan", "sngan"], [0, 1], cap=32000, jobs=1, runs=tmp_path / "runs", records=probe)
    # on the log2 schedule even where the grid of the dataset has become dense
    assert sorted(ran) == [(("sngan", "ring8", 0), 32000, 250, "log2"), (("sngan", "ring8", 1), 32000, 250, "log2"),
                           (("srgan", "ring8", 1), 32000, 250, "log2")]


def test_plateau_window_reports_the_spread_between_the_rules_two_snapshots(tmp_path, monkeypatch, repro):
    """Dense runs (an evaluation every 1,000 steps to 8,000 here): per run the spread over the last half and the
    window medians; per (method, data) over seeds the quality at the budget, the plateau on window medians against the
    two-snapshot rule, and whether each run repeats the log2 record of its seed (all hand-computed below)."""
    import convergence_grid as cg

    docs = tmp_path / "docs"
    window = docs / "results" / "reproduction" / "window" / "ring8"
    window.mkdir(parents=True)

    def dense(method: str, modes: list, hq: list, seed: int = 0) -> None:
        curve = [{"gen_step": 1000 * (i + 1), "wall_s": 1.0, "cpu_s": 1.0, "eval/modes": m, "eval/hq": h}
                 for i, (m, h) in enumerate(zip(modes, hq))]
        (window / f"{method}-s{seed}.json").write_text(json.dumps(
            {"method": method, "data": "ring8", "seed": seed, "cap": 8000, "every": 1000, "schedule": "linear",
             "status": "complete", "curve": curve}))

    # SR-GAN s0: equal at 4,000 and 8,000 (the rule: flat), but 4 modes / 60 HQ points lower at 6,000 in between
    dense("srgan", [1, 2, 3, 8, 7, 4, 8, 8], [0, .1, .2, .7, .5, .1, .6, .7])
    dense("srgan", [0, 1, 2, 4, 4, 4, 5, 6], [0, 0, .1, .2, .2, .3, .3, .4], seed=1)  # still climbing
    # VanillaGAN: inside the thresholds over the whole last half (8 modes, HQ 80-84 %)
    dense("vanilla", [2, 5, 8, 8, 8, 8, 8, 8], [0, .2, .80, .80, .82, .84, .81, .83])
    # WGAN-GP: collapsed, takes off at the very end: flat on the halves (medians 0 and 0), not on the last quarters
    dense("wgan_gp", [0, 0, 0, 0, 0, 0, 0, 8], [0, 0, 0, 0, 0, 0, 0, .6])
    # AE-OT: the autoencoder's evaluations, then its generator after the OT solve (one step past the cap)
    dense("aeot", [5, 7, 4, 5, 6, 6, 7, 7], [0, .005, .003, .004, .005, .005, .006, .006])
    rec = json.loads((window / "aeot-s0.json").read_text())
    rec["curve"].append({"gen_step": 8001, "wall_s": 1.0, "cpu_s": 1.0, "eval/modes": 8, "eval/hq": .998})
    (window / "aeot-s0.json").write_text(json.dumps(rec))
    # the log2 records of the same seeds (250·2^k to 2,000): SR-GAN's agrees at 1,000 and 2,000; VanillaGAN's not;
    # AE-OT's not either, as expected (its learning rate decays over the cap)
    _record(docs, "srgan", "ring8", 0, [0, 0, 1, 2], [0, 0, 0, .1])
    _record(docs, "vanilla", "ring8", 0, [0, 1, 2, 6], [0, 0, 0, .2])
    _record(docs, "aeot", "ring8", 0, [5, 7, 7, 3], [0, .005, .0052, .002])
    recs = cg.load_records(docs / "results" / "reproduction" / "window")
    log2 = cg.load_records(docs / "results" / "reproduction" / "runs")
    w = {(r["method"], r["seed"]): cg.window_spread(r) for r in recs}
    # window medians: SR-GAN s0 over (2,000, 4,000] 5.5 modes / 45 % HQ, over (4,000, 8,000] 7.5 / 55 %: +2, +10;
    # VanillaGAN 8 / 80 % then 8 / 82.5 %: +0, +2.5 (flat)
    assert w["srgan", 0] == {"n": 5, "modes": (4, 8, 8), "hq": (10.0, 60.0, 70.0), "d_modes": 0, "d_hq": 0.0,
                             "median_moves": (2.0, pytest.approx(10.0))}
    assert w["vanilla", 0]["modes"] == (8, 8, 8) and w["vanilla", 0]["hq"] == pytest.approx((80.0, 82.0, 84.0))
    assert w["vanilla", 0]["median_moves"] == (0.0, pytest.approx(2.5))
    sr, van = (next(r for r in recs if (r["method"], r["seed"]) == (m, 0)) for m in ("srgan", "vanilla"))
    assert cg.same_trajectory(sr, log2) == "equal at 1,000–2,000 (2 evaluations)"
    assert cg.same_trajectory(van, log2) == "differs from 2,000 (log2 record 6 / 20.00 %, dense 5 / 20.00 %)"
    assert cg.same_trajectory(sr, []) == "no log2 record"
    lines = cg.window_lines(recs, log2, fig_dir=docs / "figs", report=docs / "REPRODUCTION.md")
    text = "\n".join(lines)
    # SR-GAN over seeds 0, 1: last-doubling medians 7.5 and 4.5 modes, 55 and 30 % HQ (s1: 4,4,5,6 / .2,.3,.3,.4)
    # -> 6 (4.5-7.5), 42.5 % (30-55); the window before: 5.5 and 3 modes, 45 and 15 %: seed medians move +1.75
    # modes, +12.5 pts (not flat); two snapshots: medians at 8,000 (8, 6) = 7 and 55 %, at 4,000 (8, 4) = 6 and
    # 45 %: +1, +10 pts; last-half spreads 4 and 2 modes, 60 and 20 pts -> medians 3, 40; s0 repeats its log2 record
    # last quarters (6,000, 8,000] against (4,000, 6,000]: s0 8 / 65 % against 5.5 / 30 %, s1 5.5 / 35 % against
    # 4 / 25 %: seed medians 6.75 / 50 % against 4.75 / 27.5 % -> +2 modes (HQ not read on quarters)
    assert ("| ring8 | SR-GAN | 0,1 | 6 (4.5–7.5) | 42.5 (30.0–55.0) | – | +1.75, +12.5 pts | **no** (last quarter: "
            "+2 modes) | +1, +10.0 pts | 3, 40 | 1 of 1 | – |") in lines
    assert ("| ring8 | VanillaGAN | 0 | 8 (8–8) | 82.5 (82.5–82.5) | – | +0, +2.5 pts | yes | +0, +3.0 pts | 0, 4 "
            "| 0 of 1 | – |") in lines
    # WGAN-GP: halves 0 / 0 % both; last quarters 4 / 30 % against 0 / 0 %
    assert ("| ring8 | WGAN-GP | 0 | 0 (0–0) | 0.0 (0.0–0.0) | – | +0, +0.0 pts | **no** (last quarter: +4 modes) "
            "| +8, +60.0 pts | 8, 60 | 0 of 0 | – |") in lines
    assert ("Flat by the window medians: **1 of 3** cells (VanillaGAN ring8); by the two-snapshot rule: 1 of 3 "
            "(VanillaGAN ring8); within the thresholds over the whole last half (median max − min): 1 of 3 "
            "(VanillaGAN ring8).") in text
    assert ("Dense runs that part from their seed's log2 record: VanillaGAN ring8 s0: differs from 2,000 (log2 "
            "record 6 / 20.00 %, dense 5 / 20.00 %).") in text
    assert "Records so far: 5 of 70" in text
    assert ("AE-OT's dense runs are not expected to repeat its log2 records: its autoencoder's learning rate decays "
            "(cosine) over max_gen_steps, the cap, so a run to 32,000 steps trains differently") in text
    assert "AE-OT ring8 s0" not in text  # not listed among the runs that part unexpectedly
    aeot_row = next(x for x in lines if x.startswith("| ring8 | AE-OT |"))
    assert "| n/a (generator made after the cap) | – | – | – (schedule set by the cap) |" in aeot_row
    assert cg.same_trajectory(next(r for r in recs if r["method"] == "aeot"), log2) == (
        "differs from 1,000 (log2 record 7 / 0.52 %, dense 5 / 0.00 %)")
    assert (docs / "figs" / "window.png").stat().st_size > 10_000
    # the runner: a linear schedule every --every steps, only runs without a record; a cap off the schedule refused
    ran = []
    monkeypatch.setattr(cg, "run_anytime", lambda *a, **k: ran.append((a[:3], k["cap"], k["every"], k["schedule"])))
    cg.window(["ring8"], ["srgan", "sngan"], [0], cap=8000, every=1000, jobs=1, runs=tmp_path / "r",
              records=docs / "results" / "reproduction" / "window")
    assert ran == [(("sngan", "ring8", 0), 8000, 1000, "linear")]
    with pytest.raises(SystemExit, match="not a multiple of --every"):
        cg.window(["ring8"], ["sngan"], [0], cap=8500, every=1000, jobs=1)


def test_plateau_on_window_medians_by_hand():
    """zoo.anytime.summary on dense records (every 1,000 steps to 8,000): halves (4,000, 8,000] against (2,000,
    4,000], and the mode count over the last quarter (6,000, 8,000] against (4,000, 6,000]; HQ is not read on the
    quarters. On log2 records (one evaluation per window) the rule is the two-snapshot rule."""
    import zoo.anytime as anytime

    def rec(modes, hq, seed=0, steps=None):
        steps = steps or [1000 * (i + 1) for i in range(len(modes))]
        return {"method": "m", "data": "ring8", "seed": seed, "cap": steps[-1], "wall_s": 1.0,
                "curve": [{"gen_step": t, "eval/modes": m, "eval/hq": h} for t, m, h in zip(steps, modes, hq)]}

    # HQ: halves .5 (3,000, 4,000) against .5 (.45, .45, .55, .55): flat; quarters .45 -> .55 (+10 pts): not read
    s = anytime.summary([rec([8] * 8, [0, 0, .5, .5, .45, .45, .55, .55])], "m", "ring8")
    assert s["plateau"] is True and s["delta"] == (0, 0) and s["delta_late"] == (0, pytest.approx(0.10))
    assert s["eval/hq"] == (0.5, 0.5, 0.5)  # the quality at the budget: the median over the last doubling
    # modes: halves median(0, 0, 0, 3) = 0 against 0: flat; quarters 0 -> 1.5: a late take-off, not flat
    s = anytime.summary([rec([0, 0, 0, 0, 0, 0, 0, 3], [0] * 8)], "m", "ring8")
    assert s["delta"] == (0, 0) and s["delta_late"] == (1.5, 0) and s["plateau"] is False
    assert anytime.moves_text(s) == "median modes moved 1.5 over the last quarter"
    # log2 records: the values at cap/2 and the cap, seed medians (2 seeds: 6 and 8 at 4,000; 7 and 8 at 8,000)
    log2 = [rec([1, 2, 3, 6, 7], [0] * 5, 0, [500, 1000, 2000, 4000, 8000]),
            rec([1, 2, 3, 8, 8], [0] * 5, 1, [500, 1000, 2000, 4000, 8000])]
    s = anytime.summary(log2, "m", "ring8")
    assert s["delta"] == (0.5, 0) and "delta_late" not in s and s["plateau"] is True
    assert s["eval/modes"] == (7.5, 7, 8)


def test_a_generator_made_after_the_cap_is_drawn_at_the_cap(tmp_path):
    """AE-OT's records end one step past the cap (its OT solve counts one generator step): figures and W&B curves
    draw the evaluations before the cap, then the final one at the cap; the evaluation at the cap (the step that
    starts the solve) is left out. Other records are drawn as recorded."""
    from zoo.anytime import drawn_curve
    from zoo.leaderboard import load_curves

    rows = [{"gen_step": 1000, "eval/modes": 5}, {"gen_step": 2000, "eval/modes": 6},
            {"gen_step": 4000, "eval/modes": 7}, {"gen_step": 4001, "eval/modes": 25}]
    aeot = {"method": "aeot", "data": "grid25", "seed": 0, "cap": 4000, "curve": rows}
    assert drawn_curve(aeot) == [rows[0], rows[1], {"gen_step": 4000, "eval/modes": 25}]
    gan = {"method": "vanilla", "data": "grid25", "seed": 0, "cap": 4000, "curve": rows[:3]}
    assert drawn_curve(gan) == rows[:3]
    p = tmp_path / "grid25" / "aeot-s0.json"
    p.parent.mkdir()
    p.write_text(json.dumps(aeot))
    assert load_curves(tmp_path) == {("grid25", "aeot"): [[rows[0], rows[1], {"gen_step": 4000, "eval/modes": 25}]]}


def test_flip_makes_a_complete_dense_grid_the_grid(tmp_path, monkeypatch, capsys):
    """``reproduction.py flip``: refused while zoo.anytime still gives the dataset the log2 protocol and while a
    dense run of the grid is missing; then the log2 records move to ``log2/``, the dense ones to ``runs/``, the grid
    reads them under the dense protocol and ``window`` leaves the dataset to ``run``."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import convergence_grid as cg

    from zoo import anytime

    monkeypatch.setattr(cg, "METHODS", ["vanilla", "sngan"])
    monkeypatch.setattr(cg, "SEEDS", [0, 1])
    monkeypatch.setitem(anytime.CAPS, "ring8", 16000)  # ring8 on the log2 grid, whatever it is today
    monkeypatch.setattr(anytime, "EVERY_BY_DATA", {})
    monkeypatch.setattr(anytime, "SCHEDULE_BY_DATA", {})
    out = tmp_path / "reproduction"
    folders = {k: out / k for k in ("runs", "window", "log2")}
    log2 = anytime.protocol("ring8")  # the grid's protocol today: 16,000 steps, log2
    assert (log2["cap"], log2["every"], log2["schedule"]) == (16000, 250, "log2")

    def rec(folder: str, method: str, seed: int, proto: dict, data: str = "ring8") -> Path:
        steps = range(proto["every"], proto["cap"] + 1, proto["every"])
        p = anytime.record_path(folders[folder], data, method, seed)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"method": method, "data": data, "seed": seed, "status": "complete", "cap": proto["cap"],
                                 "every": proto["every"], "schedule": proto["schedule"], "protocol": proto,
                                 "versions": anytime.versions(), "cpu_s": 10.0, "curve": [{"gen_step": s, "eval/modes": 8, "eval/hq": .9}
                                                          for s in steps]}))
        return p

    for m in ("vanilla", "sngan"):
        for s in (0, 1):
            rec("runs", m, s, log2)
    rec("runs", "vanilla", 0, anytime.protocol("grid25"), data="grid25")
    dense = anytime.protocol("ring8", 8000, 1000, "linear")
    for m, s in (("vanilla", 0), ("vanilla", 1), ("sngan", 0)):
        rec("window", m, s, dense)
    kw = dict(records=folders["runs"], window_records=folders["window"], log2_records=folders["log2"])
    with pytest.raises(SystemExit, match="still gives ring8 the log2 protocol; set CAPS"):
        cg.flip("ring8", **kw)
    monkeypatch.setitem(anytime.CAPS, "ring8", 8000)
    monkeypatch.setitem(anytime.EVERY_BY_DATA, "ring8", 1000)
    monkeypatch.setitem(anytime.SCHEDULE_BY_DATA, "ring8", "linear")
    assert anytime.protocol("ring8") == dense and anytime.protocol("grid25") == log2 | {"data": "grid25"}
    # the grid's ring8 records are now of another protocol than its grid's: the report refuses to read them
    with pytest.raises(SystemExit, match=r"was made to 16000 steps \(log2\), the grid of ring8 is 8000 \(linear\): "
                                         "`reproduction.py flip --data ring8`"):
        cg.check_grid(cg.load_records(folders["runs"]))
    with pytest.raises(SystemExit, match="not complete .1 runs without a record: sngan s1."):
        cg.flip("ring8", **kw)
    rec("window", "sngan", 1, dense)
    moves = cg.flip("ring8", **kw)
    assert len(moves) == 8
    grid = cg.load_records(folders["runs"])
    assert sorted((r["data"], r["method"], r["seed"], r["schedule"]) for r in grid) == [
        ("grid25", "vanilla", 0, "log2"), ("ring8", "sngan", 0, "linear"), ("ring8", "sngan", 1, "linear"),
        ("ring8", "vanilla", 0, "linear"), ("ring8", "vanilla", 1, "linear")]
    assert sorted(p.name for p in (folders["log2"] / "ring8").iterdir()) == [
        "sngan-s0.json", "sngan-s1.json", "vanilla-s0.json", "vanilla-s1.json"]
    assert not list((folders["window"] / "ring8").iterdir())
    cg.check_grid(grid)  # one protocol per dataset, the grid's
    assert anytime.check_comparable(grid, "ring8") == dense  # zoo.compare --against zoo: the dense protocol
    # window leaves ring8 to run (its records are the grid's now); nothing trains
    monkeypatch.setattr(cg, "run_anytime", lambda *a, **k: pytest.fail("trained a flipped dataset's dense run"))
    cg.window(["ring8"], ["vanilla"], [0], cap=8000, every=1000, jobs=1, runs=tmp_path / "r",
              records=folders["window"])
    assert "ring8: the grid itself is dense now" in capsys.readouterr().out
    assert cg.protocol_text("ring8") == "8,000 generator steps, an evaluation every 1,000 (the dense grid)"
    with pytest.raises(SystemExit, match="exists already"):  # a second flip never overwrites a record
        rec("window", "vanilla", 0, dense)
        for m, s in (("vanilla", 1), ("sngan", 0), ("sngan", 1)):
            rec("window", m, s, dense)
        cg.flip("ring8", **kw)

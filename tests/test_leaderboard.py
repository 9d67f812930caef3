"""Leaderboard: aggregation (against hand-computed means and sample stds), sort directions, the W&B adapter on
run-like objects, results.json parsing, and the Markdown / CSV / PNG outputs."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from zoo import leaderboard as lb
from zoo.errors import ConfigError


def _results(path: Path, method: str, data: str, seed: int, metrics: dict, wall: float, status="complete",
             gen=100, max_gen_steps=100):
    """A results.json following callbacks/results.py's schema (only the fields the leaderboard reads)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps({
        "status": status, "method": method, "data": data, "seed": seed, "metrics": metrics,
        "steps": {"gen_step": gen, "global_step": 2 * gen, "epochs": 0}, "wall_time_s": wall,
        "config": {"model": {"class_path": "x", "init_args": {"max_gen_steps": max_gen_steps}},
                   "trainer": {"max_time": None}}}))


@pytest.fixture
def runs(tmp_path):
    # vanilla on ring8: modes 2, 4, 6 -> mean 4, sample std 2; kl 1.0, 0.5, 0.0 -> mean 0.5, std 0.5
    for s, (m, kl, hq, t) in enumerate([(2, 1.0, 0.2, 10.0), (4, 0.5, 0.4, 12.0), (6, 0.0, 0.6, 14.0)]):
        _results(tmp_path / f"vanilla-ring8-s{s}", "vanilla", "ring8", s,
                 {"eval/modes": m, "eval/kl": kl, "eval/hq": hq, "loss/d": 1.0}, t)
    # wgan_gp on ring8: modes 8, 8 -> mean 8, std 0; kl 0.1, 0.3 -> mean 0.2, std sqrt(0.02)
    for s, (m, kl, hq, t) in enumerate([(8, 0.1, 0.9, 30.0), (8, 0.3, 0.7, 40.0)]):
        _results(tmp_path / f"wgan_gp-ring8-s{s}", "wgan_gp", "ring8", s,
                 {"eval/modes": m, "eval/kl": kl, "eval/hq": hq}, t)
    # an incomplete run must be excluded (it would change the vanilla mean)
    _results(tmp_path / "vanilla-ring8-s9", "vanilla", "ring8", 9, {"eval/modes": 100.0, "eval/kl": 9.0}, 1.0,
             status="incomplete")
    # one grid25 run, and a NaN metric that must be ignored
    _results(tmp_path / "vanilla-grid25-s0", "vanilla", "grid25", 0, {"eval/modes": 20, "eval/kl": float("nan")},
             5.0)
    return tmp_path


def test_aggregate_matches_hand_computed_stats(runs):
    rows = {(r.dataset, r.method): r for r in lb.aggregate(lb.load_local(runs))}
    v = rows[("ring8", "vanilla")]
    assert v.n_runs == 3 and v.seeds == [0, 1, 2]
    assert v.stats["modes"][:2] == pytest.approx((4.0, 2.0))
    assert v.stats["kl"][:2] == pytest.approx((0.5, 0.5))
    assert v.stats["hq"][:2] == pytest.approx((0.4, 0.2))
    assert v.stats["wall_time"][:2] == pytest.approx((12.0, 2.0))
    w = rows[("ring8", "wgan_gp")]
    assert w.stats["modes"][:2] == pytest.approx((8.0, 0.0))
    assert w.stats["kl"][:2] == pytest.approx((0.2, math.sqrt(0.02)))
    g = rows[("grid25", "vanilla")]
    assert g.stats["modes"] == (20.0, None, 1)  # std undefined for one seed
    assert "kl" not in g.stats  # NaN dropped
    assert "fid" not in v.stats


@pytest.mark.parametrize("metric,first", [("modes", "wgan_gp"), ("hq", "wgan_gp"), ("kl", "wgan_gp"),
                                          ("wall_time", "vanilla")])
def test_sort_direction(runs, metric, first):
    rows = [r for r in lb.sort_rows(lb.aggregate(lb.load_local(runs)), metric) if r.dataset == "ring8"]
    assert rows[0].method == first and rows[0].rank == 1 and rows[1].rank == 2


def test_lower_is_better_for_fid_and_missing_metric_last():
    recs = [lb.Record("a", "cifar", 0, {"fid": 30.0}), lb.Record("b", "cifar", 0, {"fid": 10.0}),
            lb.Record("c", "cifar", 0, {"modes": 3.0})]
    rows = lb.sort_rows(lb.aggregate(recs), "fid")
    assert [r.method for r in rows] == ["b", "a", "c"]
    assert rows[2].rank is None
    rows = lb.sort_rows(lb.aggregate([lb.Record("a", "d", 0, {"w2": 2.0}), lb.Record("b", "d", 0, {"w2": 1.0})]),
                        "w2")
    assert [r.method for r in rows] == ["b", "a"]


def test_unknown_metric_is_a_config_error(runs):
    with pytest.raises(ConfigError):
        lb.sort_rows(lb.aggregate(lb.load_local(runs)), "accuracy")
    with pytest.raises(SystemExit) as e:
        lb.main([str(runs), "--metric", "accuracy", "--out", ""])
    assert e.value.code == 2


def test_runs_with_different_budgets_are_not_mixed(tmp_path):
    _results(tmp_path / "a", "vanilla", "ring8", 0, {"eval/modes": 2}, 1.0, max_gen_steps=100)
    _results(tmp_path / "b", "vanilla", "ring8", 1, {"eval/modes": 8}, 1.0, max_gen_steps=1000)
    rows = lb.aggregate(lb.load_local(tmp_path))
    assert sorted((r.budget, r.stats["modes"][0]) for r in rows) == [("100 gen steps", 2.0), ("1000 gen steps", 8.0)]


def test_wandb_adapter_on_run_like_objects():
    runs = [
        # summaries written by callbacks.wandb_setup: {"min"/"max": best, "last": final}
        SimpleNamespace(name="vanilla-ring8-s0", state="finished",
                        config={"method": "vanilla", "dataset": "ring8", "seed": 0,
                                "budget": {"max_gen_steps": 500, "max_time_s": None}},
                        summary={"eval/modes": {"max": 7, "last": 5}, "eval/kl": {"min": 0.1, "last": 0.4},
                                 "wall_time_s": 12.5, "gen_steps": 500, "_runtime": 20}),
        # an older run: config values wrapped as {"value": ...}, plain summaries, identity from the name only
        SimpleNamespace(name="vanilla-ring8-s1", state="finished", config={"lr_g": {"value": 1e-3, "desc": None}},
                        summary={"eval/modes": 3, "eval/kl": 0.8, "_runtime": 9.0}),
        SimpleNamespace(name="vanilla-ring8-s2", state="crashed", config={}, summary={"eval/modes": 8}),
        SimpleNamespace(name="unparseable", state="finished", config={}, summary={"eval/modes": 8}),
    ]
    last = lb.records_from_runs(runs)
    assert len(last) == 3 and [r.complete for r in last] == [True, True, False]
    assert last[0].values == {"modes": 5.0, "kl": 0.4, "wall_time": 12.5} and last[0].budget == "500 gen steps"
    assert last[1].seed == 1 and last[1].values == {"modes": 3.0, "kl": 0.8, "wall_time": 9.0}
    best = lb.records_from_runs(runs, summary="best")
    assert best[0].values["modes"] == 7.0 and best[0].values["kl"] == 0.1  # max for modes, min for kl
    rows = lb.aggregate(last)
    assert len(rows) == 2  # the two budgets ("500 gen steps" vs unknown) are kept apart
    api = SimpleNamespace(runs=lambda path: runs if path == "me/zoo" else [])
    assert len(lb.load_wandb("me/zoo", api=api)) == 3


def test_outputs_markdown_csv_png(runs, tmp_path):
    out = tmp_path / "out" / "board"
    md = lb.main([str(runs), "--metric", "kl", "--out", str(out)])
    assert md == out.with_suffix(".md").read_text()
    assert "### ring8" in md and "### grid25" in md and "lower is better" in md
    ring = md.split("### ring8")[1]
    assert ring.index("wgan_gp") < ring.index("| vanilla")
    assert "4.00 ± 2.00" in ring          # vanilla modes
    assert "40.00 ± 20.00" in ring        # vanilla HQ in percent
    assert "0.500 ± 0.500" in ring and "12.00 ± 2.00" in ring  # vanilla KL, wall time
    assert "1 incomplete run(s) excluded" in md
    table = list(csv.DictReader(io.StringIO(out.with_suffix(".csv").read_text())))
    by = {(r["dataset"], r["method"]): r for r in table}
    assert float(by[("ring8", "vanilla")]["modes_mean"]) == pytest.approx(4.0)
    assert float(by[("ring8", "wgan_gp")]["kl_std"]) == pytest.approx(math.sqrt(0.02))
    assert by[("grid25", "vanilla")]["modes_std"] == "" and by[("ring8", "wgan_gp")]["rank"] == "1"
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_runs_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        lb.load_local(tmp_path / "nope")

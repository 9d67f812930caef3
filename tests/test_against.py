"""``python -m zoo.compare --methods <plug-in> --against <records>``: a plain Lightning GAN is trained on the anytime
protocol and placed among the zoo's records, or refused in one line when the records are not comparable.

References: hand-made zoo records (their medians written out by hand), the plug-in's own run folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo.anytime as anytime
from zoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CAP = 200


def _zoo_records(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(anytime, "CAPS", {"ring8": CAP})
    monkeypatch.setattr(anytime, "EVERY", 50)  # a short protocol: evaluations at 50, 100, 200
    monkeypatch.setattr(anytime, "EVERY_BY_DATA", {})  # log2 on ring8, whatever its grid is today
    monkeypatch.setattr(anytime, "SCHEDULE_BY_DATA", {})
    for method, modes in (("vanilla", (5, 7, 8)), ("sngan", (4, 2, 1))):
        for seed in (0, 1):
            curve = [{"gen_step": s, "wall_s": s / 50 + seed, "eval/modes": m - seed, "eval/hq": 0.1 * m,
                      "eval/kl": 0.5} for s, m in zip((50, 100, 200), modes)]
            p = anytime.record_path(folder, "ring8", method, seed)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"method": method, "data": "ring8", "seed": seed, "cap": CAP, "wall_s": 4.0,
                                     "protocol": anytime.protocol("ring8"), "versions": anytime.versions(),
                                     "curve": curve}))


def test_a_plugin_is_trained_and_placed_among_the_zoo_records(tmp_path, monkeypatch):
    zoo_dir = tmp_path / "zoo_records"
    _zoo_records(zoo_dir, monkeypatch)
    gan = "examples.lightning_gan.GAN"
    md = anytime.against([gan], ["ring8"], [0], zoo=str(zoo_dir), out=tmp_path / "cmp",
                         config_paths={f"{gan}/ring8": str(ROOT / "examples" / "lightning_gan_ring8.yaml")})
    rec = json.loads(anytime.record_path(tmp_path / "cmp" / "records", "ring8", "examples.lightning_gan.GAN",
                                         0).read_text())
    # a plain LightningModule: its generator optimizer's steps are counted, evaluated at 50, 100, 200 (log2)
    assert [r["gen_step"] for r in rec["curve"]] == [50, 100, 200] and rec["protocol"]["cap"] == CAP
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "**examples.lightning_gan.GAN** (yours)" in rows
    # the zoo rows, medians by hand: vanilla seeds end at 8 and 7 modes -> 7.5 (7–8); sngan 1 and 0 -> 0.5 (0–1)
    assert "| 7.5 (7–8) |" in rows["vanilla"] and "| 0.5 (0–1) |" in rows["sngan"]
    assert (tmp_path / "cmp" / "against_ring8.png").stat().st_size > 10_000


def test_records_of_another_protocol_or_version_are_refused(tmp_path, monkeypatch):
    zoo_dir = tmp_path / "zoo_records"
    _zoo_records(zoo_dir, monkeypatch)
    assert anytime.check_comparable(anytime.load_records(zoo_dir), "ring8") == anytime.protocol("ring8")
    p = anytime.record_path(zoo_dir, "ring8", "sngan", 1)
    rec = json.loads(p.read_text())
    p.write_text(json.dumps({**rec, "versions": {**rec["versions"], "torch": "1.0.0"}}))
    with pytest.raises(ConfigError, match="made with torch 1.0.0.*install the versions of constraints.txt"):
        anytime.check_comparable(anytime.load_records(zoo_dir), "ring8")
    # one record on another evaluation cadence among the others: the folder mixes protocols
    p.write_text(json.dumps({**rec, "protocol": {**rec["protocol"], "every": 500}}))
    with pytest.raises(ConfigError, match="mix protocols \\(.*sngan-s1.* differ in every\\)"):
        anytime.check_comparable(anytime.load_records(zoo_dir), "ring8")
    # evaluation settings this installation does not use (another HQ threshold) cannot be reproduced
    for q in zoo_dir.glob("ring8/*.json"):
        r = json.loads(q.read_text())
        q.write_text(json.dumps({**r, "protocol": {**anytime.protocol("ring8"), "eval_threshold": 2.0}}))
    with pytest.raises(ConfigError, match="another protocol \\(eval_threshold=2.0 here 3.0\\)"):
        anytime.check_comparable(anytime.load_records(zoo_dir), "ring8")
    with pytest.raises(ConfigError, match="no zoo record of 'grid25'"):
        anytime.check_comparable(anytime.load_records(zoo_dir), "grid25")


def test_dense_records_are_compared_on_their_own_protocol(tmp_path, monkeypatch):
    """A folder of dense records (an evaluation every 100 steps to 300, linear): the plug-in is trained on that
    protocol, not on the grid's log2 default, and a record of it made under another protocol is refused."""
    zoo_dir = tmp_path / "dense"
    dense = anytime.protocol("ring8", 300, 100, "linear")
    for seed in (0, 1):
        curve = [{"gen_step": s, "wall_s": 1.0, "eval/modes": 8 - seed, "eval/hq": 0.5, "eval/kl": 0.2}
                 for s in (100, 200, 300)]
        p = anytime.record_path(zoo_dir, "ring8", "vanilla", seed)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"method": "vanilla", "data": "ring8", "seed": seed, "cap": 300, "wall_s": 3.0,
                                 "protocol": dense, "versions": anytime.versions(), "curve": curve}))
    assert anytime.check_comparable(anytime.load_records(zoo_dir), "ring8") == dense
    calls = []
    monkeypatch.setattr(anytime, "run_anytime", lambda *a, **k: calls.append((a, k)))
    gan = "examples.lightning_gan.GAN"
    md = anytime.against([gan], ["ring8"], [0], zoo=str(zoo_dir), out=tmp_path / "cmp")
    assert [(k["cap"], k["every"], k["schedule"]) for _, k in calls] == [(300, 100, "linear")]
    assert '"cap": 300, "every": 100, "schedule": "linear"' in md
    mine = anytime.record_path(tmp_path / "cmp" / "records", "ring8", gan, 0)
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(json.dumps({"method": gan, "data": "ring8", "seed": 0, "protocol": anytime.protocol("ring8"),
                                "curve": [{"gen_step": 16000, "eval/modes": 1}]}))
    with pytest.raises(ConfigError, match="made under another protocol than the zoo records'.*another --out"):
        anytime.against([gan], ["ring8"], [0], zoo=str(zoo_dir), out=tmp_path / "cmp")


def test_cli_without_records_says_where_they_are(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zoo.compare", "--methods", "examples.lightning_gan.GAN",
                          "--against", str(tmp_path / "nothing"), "--data", "ring8"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error: --against")
    assert "no records under" in out.stderr and "Traceback" not in out.stderr


def test_demo_ends_on_the_committed_records_not_on_the_warm_up(tmp_path, monkeypatch, capsys):
    import zoo.compare
    from zoo.demo import show_committed

    _zoo_records(tmp_path / "docs" / "results" / "reproduction" / "runs", monkeypatch)
    monkeypatch.setattr(zoo.compare, "REPO_ROOT", tmp_path)
    text = show_committed("ring8")
    assert "plumbing check" in text and "not a ranking" in text
    assert "| vanilla | 0,1 | 7.5 (7–8) |" in text and "| sngan | 0,1 | 0.5 (0–1) |" in text
    monkeypatch.setattr(zoo.compare, "REPO_ROOT", tmp_path / "elsewhere")
    assert "No convergence records" in show_committed("ring8")


def test_every_evaluation_callback_gets_the_protocols_schedule(tmp_path, monkeypatch):
    """The grid's log2 protocol by default (a dataset whose grid is still log2); the plateau window's dense
    ``linear`` one when asked, on every evaluation callback of the dataset and in the protocol a record stores."""
    from zoo.compare import RunSpec

    monkeypatch.setitem(anytime.CAPS, "ring8", 16000)
    monkeypatch.setattr(anytime, "EVERY_BY_DATA", {})
    monkeypatch.setattr(anytime, "SCHEDULE_BY_DATA", {})

    spec = RunSpec(method="vanilla", data="ring8", seed=0, out_dir=tmp_path)

    def opts(args):
        return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}

    default = opts(anytime.anytime_args(spec))
    dense = opts(anytime.anytime_args(spec, cap=4000, every=1000, schedule="linear"))
    for group in anytime.EVAL_GROUPS["ring8"]:
        assert (default[f"--{group}.every_n_gen_steps"], default[f"--{group}.schedule"]) == ("250", "log2")
        assert (dense[f"--{group}.every_n_gen_steps"], dense[f"--{group}.schedule"]) == ("1000", "linear")
    assert dense["--model.max_gen_steps"] == "4000" and default["--model.max_gen_steps"] == "16000"
    assert anytime.protocol("ring8", 4000, 1000, "linear")["schedule"] == "linear"
    assert anytime.protocol("ring8") == dict(anytime.protocol("ring8", 16000, 250, "log2"))

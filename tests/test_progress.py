"""The progress display counts generator steps (callbacks/progress.py) and zoo.compare's grid shows one line per
finished run under an overall bar."""

from __future__ import annotations

import io
from pathlib import Path

import pytorch_lightning as pl

from callbacks.progress import GenStepProgressBar, _plain, budget_of, eval_postfix


def test_postfix_and_numbers_are_plain():
    assert eval_postfix({"eval/modes": 25.0, "eval/hq": 0.8333, "eval/kl": 0.0671}) == \
        {"modes": "25", "hq": "83%", "kl": "0.067"}
    assert eval_postfix({"eval/fid": 37.8}) == {"fid": "38"}
    assert eval_postfix({"loss/d": 1.0}) == {}
    assert _plain(3000.0) == "3000" and _plain(0.51234) == "0.5123" and "e" not in _plain(1.5e-5)


def _fit(tmp_path, capsys, data, max_gen_steps=60, **trainer_kw):
    from zoo.vanilla import VanillaGAN

    pl.seed_everything(0, verbose=False)
    bar = GenStepProgressBar(refresh_rate=1)
    model = VanillaGAN(hidden=[8], max_gen_steps=max_gen_steps)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[bar], default_root_dir=str(tmp_path), **trainer_kw)
    trainer.fit(model, datamodule=data)
    out = capsys.readouterr()
    return bar, (out.out + out.err).replace("\r", "\n")


def test_bar_counts_generator_steps_and_hides_epochs_of_an_endless_stream(tmp_path, capsys):
    from callbacks.modes import ModeCoverage
    from datamodules import Synthetic2D

    from zoo.vanilla import VanillaGAN

    pl.seed_everything(0, verbose=False)
    bar = GenStepProgressBar(refresh_rate=1)
    model = VanillaGAN(hidden=[8], max_gen_steps=60)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[bar, ModeCoverage(every_n_gen_steps=30, n_samples=200)],
                         default_root_dir=str(tmp_path))
    trainer.fit(model, datamodule=Synthetic2D(name="ring8", n_samples=640, batch_size=64))  # 10 batches / epoch
    out = capsys.readouterr()
    text = (out.out + out.err).replace("\r", "\n")
    assert "gen steps: 100%" in text and "60/60" in text and "step/s" in text
    assert "modes=" in text and "hq=" in text
    assert "Epoch" not in text, "6 epochs of a synthetic stream are not shown"
    assert "e+" not in text


def test_bar_keeps_epochs_of_a_finite_dataset(tmp_path, capsys):
    from datamodules import Digits

    bar, text = _fit(tmp_path, capsys, Digits(batch_size=256), max_gen_steps=8)
    assert "gen steps: 100%" in text and "8/8" in text and "Epoch" in text


def test_budget_in_steps_or_time():
    from zoo.vanilla import VanillaGAN

    trainer = pl.Trainer(max_time={"seconds": 90}, logger=False, enable_checkpointing=False)
    assert budget_of(trainer, VanillaGAN(max_gen_steps=300)) == ("steps", 300)
    kind, total = budget_of(trainer, VanillaGAN())
    assert kind == "seconds" and abs(total - 90) < 1e-6
    assert budget_of(pl.Trainer(logger=False, enable_checkpointing=False), VanillaGAN()) == ("steps", None)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _outcome(name, status="complete"):
    from zoo.compare import Outcome

    return Outcome(name, status, 1.5, 0 if status == "complete" else 1, {"modes": 8.0, "gen_steps": 10}, "log")


def test_compare_progress_lines_and_bar():
    from zoo.compare import Progress, RunSpec

    spec = RunSpec("vanilla", "ring8", 0, Path("grid"))
    tty = _Terminal()
    p = Progress(2, stream=tty)
    p.start(spec, "cpu")
    p.finish(_outcome("vanilla-ring8-s0"))
    p.finish(_outcome("wgan_gp-ring8-s0", "failed"))
    p.close()
    text = tty.getvalue().replace("\r", "\n")
    assert "[1/2] complete vanilla-ring8-s0" in text and "[2/2] failed   wgan_gp-ring8-s0" in text
    assert "grid: 100%" in text and "2/2" in text and "start " not in text  # one line per finished run + the bar

    log = io.StringIO()  # not a terminal (CI, a log file): lines only, starts included
    p = Progress(1, stream=log)
    p.start(spec, "cpu")
    p.finish(_outcome("vanilla-ring8-s0"))
    p.close()
    assert log.getvalue().splitlines()[0].startswith("[1/1] start    vanilla-ring8-s0")
    assert "grid:" not in log.getvalue()

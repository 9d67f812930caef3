"""Every committed config instantiates — model, datamodule, trainer, evaluation callbacks — and its networks
build for the data's shape, without training. Full-scale configs (CIFAR-10, CelebA, MNIST) are checked
without their data (only ``setup`` reads files)."""

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import yaml
from jsonargparse import ArgumentParser
from PIL import Image

from zoo.cli import ZooCLI, _import_methods, preflight

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))


def test_every_method_has_a_config():
    _import_methods()
    import zoo

    have = set()
    for c in CONFIGS:
        path = yaml.safe_load((ROOT / c).read_text())["model"]["class_path"]
        have.add(zoo.resolve_model(path).zoo_name)
    assert set(zoo.list_models()) <= have


def test_zoo_cli_accepts_the_demo_config(tmp_path):
    cli = ZooCLI(args=["--config", str(ROOT / "configs/vanilla/ring8.yaml"), "--trainer.default_root_dir",
                       str(tmp_path), "--wandb", "false"], run=False)
    preflight(cli.model, cli.datamodule)


@pytest.mark.parametrize("config", CONFIGS)
def test_config_instantiates(config, tmp_path):
    _import_methods()
    cfg = yaml.safe_load((ROOT / config).read_text())
    if cfg["data"]["class_path"].endswith("ImageFolderImages"):
        folder = tmp_path / "imgs"
        folder.mkdir()
        for i in range(4):
            Image.fromarray(np.zeros((80, 70, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        cfg["data"].setdefault("init_args", {})["root"] = str(folder)
        cfg["data"]["init_args"]["batch_size"] = 2  # preflight loads the data: a batch must fit the 4 stand-ins
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(pl.LightningModule, "model")
    parser.add_subclass_arguments(pl.LightningDataModule, "data")
    init = parser.instantiate_classes(parser.parse_object({"model": cfg["model"], "data": cfg["data"]}))
    model, data = init.model, init.data
    preflight(model, data, load_data=False)  # CIFAR-10 / MNIST files are not on this machine: configs only
    if hasattr(model, "ensure_built"):
        model.ensure_built(data.data_shape)
        assert sum(p.numel() for p in model.parameters()) > 0
    trainer_cfg = {k: v for k, v in (cfg.get("trainer") or {}).items() if k not in ("callbacks", "logger")}
    trainer_cfg.update(accelerator="cpu", devices=1, strategy="auto", num_nodes=1, logger=False,
                       default_root_dir=str(tmp_path))
    pl.Trainer(**trainer_cfg)
    from callbacks import FID, ModeCoverage, SampleDistances, SamplePlot, SpectralMonitor, StackedModeCount

    sections = {"mode_coverage": ModeCoverage, "sample_plot": SamplePlot, "fid": FID, "spectral": SpectralMonitor,
                "stacked_modes": StackedModeCount, "distances": SampleDistances}
    extra = (cfg.get("trainer") or {}).get("callbacks") or []
    if extra:  # method-specific callbacks; the evaluation ones are configured through their own sections
        cb_parser = ArgumentParser(exit_on_error=False)
        cb_parser.add_subclass_arguments(pl.Callback, "cb")
        for item in extra:
            cb = cb_parser.instantiate_classes(cb_parser.parse_object({"cb": item})).cb
            assert not isinstance(cb, tuple(sections.values())), \
                f"configure {type(cb).__name__} through its own section, not trainer.callbacks (it runs by default)"
    for key, cls in sections.items():
        if cfg.get(key):
            cls(**cfg[key])
    unknown = set(cfg) - set(sections) - {"model", "data", "trainer", "seed_everything", "run_name", "wandb",
                                          "wandb_project", "ckpt_path", "checkpoint_every_n_steps"}
    assert not unknown, f"unknown top-level keys {unknown}"

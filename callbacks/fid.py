"""Fréchet distance between feature distributions (FID), on torchmetrics' ``FrechetInceptionDistance``.

For features f(x) of real images and f(y) of generated ones, with means μ_r, μ_g and covariances Σ_r, Σ_g
(unbiased, 1/(n−1)),

    FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2}),

accumulated by torchmetrics in float64 running sums (exact and cheap to reduce under DDP); we never write
the distance by hand. Feature extractors (all take images ``(N, C, H, W)`` in [-1, 1] and return ``(N, F)``):

* ``"inception"`` — torch-fidelity's port of the TF ``inception-2015-12-05`` pool3 layer (2048-d), the
  network of published FIDs. Images are quantised to uint8 (round(127.5·(x+1))), grey images repeated to
  3 channels, then resized to 299×299 by torch-fidelity's TF-1.x-compatible bilinear interpolation.
  Weights: ``weights_path``, else the torch hub cache (``$TORCH_HOME/hub/checkpoints``), else a download
  when ``download=True`` and online.
* ``"digits"`` — the penultimate layer (64-d) of a small CNN trained on scikit-learn's 8×8 digits (train
  split of ``Digits(seed=0)``), shipped as ``callbacks/assets/digits_cnn.pt`` and produced by
  ``scripts/train_digits_classifier.py``. Each channel is classified on its own (images larger than 8×8 are
  first resized to 8×8, bilinear with antialiasing), and the features of the C channels are concatenated:
  F = 64·C. Images are quantised to the 17 grey levels of the digits (x ↦ round(8(x+1))/8 − 1) first, so real
  and generated images go through the same quantisation.
* any ``nn.Module`` mapping [-1, 1] images to ``(N, F)`` features.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from callbacks._util import check_schedule, EveryNGenSteps, check_eval_options, can_sample, eval_samples, gen_step_of, log_eval

ASSETS = Path(__file__).parent / "assets"
DIGITS_WEIGHTS = ASSETS / "digits_cnn.pt"
DIGITS_INFO = ASSETS / "digits_cnn.json"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's converted TF weights
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


# ---------------------------------------------------------------------------------------------------------
# The digits classifier (also the stacked-digits mode classifier)
# ---------------------------------------------------------------------------------------------------------

class DigitsCNN(nn.Module):
    """8×8 grey digit classifier, a scaled-down Keras ``mnist_cnn`` (the stacked-MNIST mode classifier):
    conv3×3(32) → ReLU → conv3×3(64) → ReLU → maxpool 2 → dropout → dense(64) → ReLU [features] → dropout →
    dense(10). Input ``(N, 1, 8, 8)`` in [-1, 1]."""

    feature_dim = 64

    def __init__(self, feature_dim: int = 64, dropout: float = 0.25):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(64 * 4 * 4, feature_dim), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(2 * dropout), nn.Linear(feature_dim, 10))
        self.feature_dim = int(feature_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def to_digit_input(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` images in [-1, 1] → ``(N·C, 1, 8, 8)``: channels split, resized to 8×8 (bilinear,
    antialiased when shrinking, as ``datamodules.images.resize``), quantised to the digits' 17 grey levels."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w).float()
    if (h, w) != (8, 8):
        x = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False, antialias=h > 8 or w > 8)
    return x.clamp(-1, 1).add(1).mul(8).round().div(8).sub(1)


def load_digits_classifier(path: Optional[Union[str, os.PathLike]] = None) -> DigitsCNN:
    """The shipped digit classifier (eval mode, frozen), loaded with ``torch.load(weights_only=True)``."""
    path = Path(path) if path is not None else DIGITS_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"digit classifier weights not found at {path}: run "
                                "`python scripts/train_digits_classifier.py` to produce them")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = DigitsCNN(feature_dim=int(state["body.7.weight"].shape[0]))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().requires_grad_(False)


def digits_version(path: Optional[Union[str, os.PathLike]] = None) -> str:
    """``digits-cnn-<first 12 hex of sha256 of the weights file>``."""
    path = Path(path) if path is not None else DIGITS_WEIGHTS
    return "digits-cnn-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------
# Feature extractors: images in [-1, 1] -> (N, F)
# ---------------------------------------------------------------------------------------------------------

class DigitsFeatures(nn.Module):
    """Penultimate (64-d) features of the shipped digit classifier for each channel, concatenated:
    ``(N, C, H, W)`` in [-1, 1] → ``(N, 64·C)`` (see :func:`to_digit_input` for the resize/quantisation).

    Args:
        channels: number of image channels; when given, ``num_features = 64·channels`` (torchmetrics reads it).
        weights_path: another classifier file (default: the shipped ``digits_cnn.pt``).
    """

    def __init__(self, channels: Optional[int] = None, weights_path: Optional[str] = None):
        super().__init__()
        self.net = load_digits_classifier(weights_path)
        self.version = digits_version(weights_path)
        self.feature_dim = self.net.feature_dim
        if channels is not None:
            self.num_features = self.feature_dim * int(channels)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        return self.net.features(to_digit_input(x)).reshape(n, c * self.feature_dim)


class InceptionUnavailable(RuntimeError):
    """No Inception weights: no ``weights_path``, nothing in the torch hub cache, and no download."""


def inception_weights(weights_path: Optional[str] = None, download: bool = True, timeout: float = 30.0) -> str:
    """Path of torch-fidelity's InceptionV3 weights (``weights-inception-2015-12-05-6726825d.pth``):
    ``weights_path`` if given, else the torch hub cache (``torch.hub.get_dir()/checkpoints``), else downloaded
    there when ``download``. Raises :class:`InceptionUnavailable` with the reason otherwise."""
    if weights_path is not None:
        if not Path(weights_path).is_file():
            raise InceptionUnavailable(f"weights_path {weights_path} does not exist")
        return str(weights_path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return str(cached)
    if not download:
        raise InceptionUnavailable(f"not in the torch hub cache ({cached}) and download=False")
    import socket

    old = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_URL, str(cached), progress=False)
    except Exception as err:  # noqa: BLE001 - offline, proxy, disk: all mean "unavailable"
        raise InceptionUnavailable(f"not in the torch hub cache ({cached}) and the download from {INCEPTION_URL} "
                                   f"failed ({type(err).__name__}: {err})") from None
    finally:
        socket.setdefaulttimeout(old)
    return str(cached)


class InceptionFeatures(nn.Module):
    """torch-fidelity's InceptionV3 (TF ``inception-2015-12-05`` weights), pool3 features ``(N, 2048)``.

    Input ``(N, C, H, W)`` in [-1, 1], C ∈ {1, 3}: quantised to uint8 as round(127.5·(x + 1)), grey repeated
    to RGB, resized inside torch-fidelity to 299×299 with its TF-1.x-compatible bilinear interpolation.
    """

    num_features = 2048

    def __init__(self, weights_path: Optional[str] = None, download: bool = True):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights(weights_path, download)
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
        self.weights_file = path
        import torch_fidelity

        self.version = f"torch-fidelity {torch_fidelity.__version__} InceptionV3 pool3 ({Path(path).name})"

    def forward(self, x: Tensor) -> Tensor:
        u8 = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        if u8.shape[1] == 1:
            u8 = u8.expand(-1, 3, -1, -1)
        return self.net(u8.contiguous())[0].reshape(x.shape[0], -1)


def feature_extractor(name: Union[str, nn.Module] = "digits", channels: Optional[int] = None,
                      weights_path: Optional[str] = None, download: bool = True) -> nn.Module:
    """The feature extractor ``name`` (``"digits"`` / ``"inception"``, or an ``nn.Module`` passed through),
    in eval mode with ``requires_grad=False``: images ``(N, C, H, W)`` in [-1, 1] → ``(N, F)`` features.

    Raises :class:`InceptionUnavailable` when the Inception weights cannot be found or downloaded."""
    if isinstance(name, nn.Module):
        net = name
    elif name == "digits":
        net = DigitsFeatures(channels, weights_path)
    elif name == "inception":
        net = InceptionFeatures(weights_path, download)
    else:
        from zoo.errors import ConfigError

        raise ConfigError(f"unknown FID feature extractor {name!r}: use 'digits', 'inception', 'auto' or an nn.Module")
    return net.eval().requires_grad_(False)


def extractor_version(net: nn.Module) -> str:
    return str(getattr(net, "version", None) or f"custom {type(net).__module__}.{type(net).__qualname__}")


class _Float64Features(nn.Module):
    """What torchmetrics sees: the extractor under ``no_grad`` in eval mode, features as float64 ``(N, F)``."""

    def __init__(self, net: nn.Module, num_features: int):
        super().__init__()
        self.net = net
        self.num_features = int(num_features)

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.net(x).reshape(x.shape[0], -1).double()


def _num_features(net: nn.Module, shape) -> int:
    nf = getattr(net, "num_features", None)
    if isinstance(nf, int):
        return nf
    with torch.no_grad():
        p = next(iter(net.parameters()), None)
        dummy = torch.zeros(2, *shape, device=p.device if p is not None else "cpu")
        return int(net(dummy).reshape(2, -1).shape[1])


def fid_metric(net: nn.Module, image_shape) -> "torchmetrics.image.fid.FrechetInceptionDistance":  # noqa: F821
    """torchmetrics' ``FrechetInceptionDistance`` on ``net``'s features (float64 states; real statistics
    survive ``reset()``)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    net.eval().requires_grad_(False)
    metric = FrechetInceptionDistance(feature=_Float64Features(net, _num_features(net, image_shape)),
                                      reset_real_features=False, normalize=False)
    return metric


def frechet_distance(real: Tensor, fake: Tensor, extractor: Union[str, nn.Module] = "digits",
                     batch_size: int = 1000, **kwargs: Any) -> float:
    """FID between image tensors ``real`` and ``fake`` (``(N, C, H, W)`` in [-1, 1]) in the features of
    ``extractor`` (see :func:`feature_extractor`; ``kwargs`` go to it): ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_rΣ_g)^½)."""
    net = feature_extractor(extractor, channels=int(real.shape[1]), **kwargs)
    metric = fid_metric(net, tuple(real.shape[1:]))
    for x, is_real in ((real, True), (fake, False)):
        for i in range(0, x.shape[0], batch_size):
            metric.update(x[i:i + batch_size].float(), real=is_real)
    return float(metric.compute())


# ---------------------------------------------------------------------------------------------------------
# Callback
# ---------------------------------------------------------------------------------------------------------

_DIGITS_DATA = ("Digits", "StackedDigits")


def auto_extractor(datamodule: Any, data_shape) -> str:
    """``"digits"`` for the embedded digits datamodules (``Digits`` / ``StackedDigits`` or subclasses: 1 or 3
    channels at 8, 16 or 32 px), ``"inception"`` for every other image dataset."""
    shape = tuple(int(s) for s in data_shape or ())
    digits_like = any(c.__name__ in _DIGITS_DATA for c in type(datamodule).__mro__) if datamodule is not None else False
    if digits_like and len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2] and shape[1] in (8, 16, 32):
        return "digits"
    return "inception"


def _resize_note(name: str, shape) -> str:
    if name == "inception":
        return ("uint8 quantisation round(127.5(x+1)); grey→RGB; torch-fidelity TF1.x-compatible bilinear "
                "resize to 299x299")
    if name == "digits":
        how = "none (native 8x8)" if tuple(shape[-2:]) == (8, 8) else \
            f"bilinear antialiased {shape[-2]}x{shape[-1]}→8x8 (torch.nn.functional.interpolate)"
        return f"per channel; {how}; quantised to 17 grey levels"
    return "none (custom extractor sees the [-1, 1] images as generated)"


class FID(EveryNGenSteps, pl.Callback):
    """``eval/fid`` every ``every_n_gen_steps`` generator steps and at the end of training.

    Real statistics (``n_real`` images of the datamodule's ``reference_split``, via ``reference_samples``) are
    computed once, at the first evaluation, and kept; each evaluation then extracts ``n_fake`` generated images
    (``pl_module.sample`` under a forked RNG; chunk i of ``batch_size`` images uses seed ``seed·1000003 + i``,
    so the generated set does not depend on the number of processes). Under DDP each rank extracts its share
    (real images ``r::world``, chunks ``i ≡ rank mod world``), and every rank calls torchmetrics' ``compute``,
    which sums the float64 statistics of all ranks: the value equals a one-process computation on the same
    images. Rank 0 logs it.

    The protocol (extractor and version, n_real, n_fake, reference split, image size, resize) is kept in
    ``self.protocol``, written to ``<run dir>/fid_protocol.json`` and sent to every logger with
    ``log_hyperparams({"fid_protocol": …})`` (W&B config + summary).

    When the Inception weights cannot be found (no ``weights_path``, not in the torch hub cache, download off or
    failing) a single message is printed and the callback disables itself; training goes on.

    Args:
        every_n_gen_steps: cadence in generator steps (0: only at the end of training).
        schedule: ``linear`` (every ``every_n_gen_steps``) or ``log2`` (at every_n_gen_steps·2^k, k = 0, 1, …:
            the anytime curve of :class:`callbacks._util.EveryNGenSteps`).
        extractor: ``"auto"`` (``digits`` for Digits/StackedDigits, else ``inception``), ``"digits"``,
            ``"inception"``, or an ``nn.Module`` mapping [-1, 1] images to ``(N, F)``.
        n_real: real reference images (capped by the split's size; the number used is recorded).
        n_fake: generated images per evaluation.
        reference_split: ``val`` (held-out, default) or ``train``.
        weights_path: Inception weights file (torch-fidelity format, ``weights-inception-2015-12-05-6726825d.pth``).
        download: allow downloading the Inception weights when they are not cached.
        batch_size: images per extractor call.
        seed: seed of the generated images.
    """

    def __init__(self, every_n_gen_steps: int = 1000, extractor: Union[str, nn.Module] = "auto",
                 n_real: int = 10_000, n_fake: int = 5_000, reference_split: str = "val",
                 weights_path: Optional[str] = None, download: bool = True, batch_size: int = 500, seed: int = 0, schedule: str = "linear"):
        from zoo.errors import ConfigError

        if isinstance(extractor, str) and extractor not in ("auto", "digits", "inception"):
            raise ConfigError(f"fid extractor must be 'auto', 'digits', 'inception' or an nn.Module, got {extractor!r}")
        if reference_split not in ("val", "train"):
            raise ConfigError(f"fid reference_split must be 'val' or 'train', got {reference_split!r}")
        if int(n_real) < 2 or int(n_fake) < 2:
            raise ConfigError(f"fid.n_real and fid.n_fake must be at least 2, got {n_real} and {n_fake}")
        check_eval_options("fid", every_n_gen_steps, batch_size=batch_size)
        self.every_n_gen_steps = int(every_n_gen_steps)
        self.schedule = check_schedule("fid", schedule)
        self.extractor = extractor
        self.n_real, self.n_fake = int(n_real), int(n_fake)
        self.reference_split = reference_split
        self.weights_path, self.download = weights_path, bool(download)
        self.batch_size, self.seed = max(1, int(batch_size)), int(seed)
        self._last = -1
        self.disabled = False
        self.metric = None
        self.protocol: Dict[str, Any] = {}
        self.last_value: Optional[float] = None
        self._real_done = False

    # -- setup -------------------------------------------------------------------------------------------
    def _prepare(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Build the extractor and metric once; False when FID does not apply or is disabled."""
        if self.disabled:
            return False
        if self.metric is not None:
            return True
        dm = getattr(trainer, "datamodule", None)
        shape = tuple(getattr(pl_module, "data_shape", None) or getattr(dm, "data_shape", None) or ())
        if len(shape) != 3 or not can_sample(pl_module) or not hasattr(dm, "reference_samples"):
            self.disabled = True  # not image data: nothing to measure
            return False
        name = self.extractor
        if isinstance(name, str) and name == "auto":
            name = auto_extractor(dm, shape)
        try:
            wp = self.weights_path if name == "inception" else None  # weights_path is the Inception file
            net = feature_extractor(name, channels=shape[0], weights_path=wp, download=self.download)
        except Exception as err:  # noqa: BLE001 - missing/corrupt weights: report once, train on
            self.disabled = True
            if trainer.is_global_zero:
                print(f"[zoo] FID disabled, training continues without eval/fid: {name} weights unavailable "
                      f"({type(err).__name__}: {err}). Pass fid.weights_path=<file> or place {INCEPTION_FILE} in "
                      f"{Path(torch.hub.get_dir()) / 'checkpoints'}.", file=sys.stderr, flush=True)
            return False
        self.metric = fid_metric(net.to(pl_module.device), shape).to(pl_module.device)
        label = name if isinstance(name, str) else "custom"
        import torchmetrics

        self.protocol = {
            "impl": f"torchmetrics {torchmetrics.__version__} FrechetInceptionDistance (float64 statistics)",
            "extractor": label,
            "extractor_version": extractor_version(net),
            "feature_dim": int(self.metric.inception.num_features),
            "n_real": None,  # filled in when the real statistics are computed
            "n_fake": self.n_fake,
            "reference_split": self.reference_split,
            "image_size": list(shape),
            "resize": _resize_note(label, shape),
            "seed": self.seed,
            "generator_mode": "eval() (sample())",
        }
        return True

    def _real_statistics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        real = trainer.datamodule.reference_samples(self.n_real, self.reference_split)
        self.protocol["n_real"] = int(real.shape[0])
        mine = real[trainer.global_rank::trainer.world_size]
        for i in range(0, mine.shape[0], self.batch_size):
            self.metric.update(mine[i:i + self.batch_size].to(pl_module.device).float(), real=True)
        self._real_done = True
        self._publish(trainer)

    def _publish(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        from callbacks._util import atomic_write_json, run_dir

        atomic_write_json(run_dir(trainer) / "fid_protocol.json", self.protocol)
        for lg in trainer.loggers:
            try:
                lg.log_hyperparams({"fid_protocol": dict(self.protocol)})
                if type(lg).__name__ == "WandbLogger":
                    lg.experiment.summary["fid_protocol"] = dict(self.protocol)
            except Exception as err:  # noqa: BLE001 - a logger that cannot take it must not stop training
                warnings.warn(f"FID: could not log the protocol to {type(lg).__name__}: {err}")

    # -- evaluation ----------------------------------------------------------------------------------------
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Optional[float]:
        """FID of ``n_fake`` generated images against the real statistics (called on every rank)."""
        if not self._prepare(trainer, pl_module):
            return None
        if not self._real_done:
            self._real_statistics(trainer, pl_module)
        self.metric.reset()  # fake statistics only
        world, rank = trainer.world_size, trainer.global_rank
        for i, start in enumerate(range(0, self.n_fake, self.batch_size)):
            if i % world != rank:
                continue
            size = min(self.batch_size, self.n_fake - start)
            x = eval_samples(pl_module, size, seed=self.seed * 1_000_003 + i)
            self.metric.update(x.float().to(pl_module.device), real=False)
        value = float(self.metric.compute())
        self.last_value = value
        return value

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.mark(pl_module, trainer)
        value = self.compute(trainer, pl_module)
        if value is not None and trainer.is_global_zero:
            log_eval(trainer, pl_module, {"eval/fid": value})

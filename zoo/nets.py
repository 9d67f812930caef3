"""Network builders shared by the zoo.

Conventions:

* vector data of shape ``(d,)`` uses MLPs; images ``(C, H, W)`` with ``H == W`` a power of two ≥ 8 use
  DCGAN-style convolutional nets (Radford et al. 2016): the generator starts from a 4×4 map and doubles the
  resolution with stride-2 transposed convolutions; the discriminator mirrors it.
* generators end in ``tanh`` for images (data in [-1, 1]) and are linear for vectors;
* discriminators / critics return one scalar per sample, shape ``(N,)``.
* ``norm`` is ``"batch"``, ``"layer"`` (GroupNorm with one group; allowed in WGAN-GP critics, which must not
  use batch norm), or ``"none"``; ``spectral_norm=True`` wraps every linear/conv layer with
  ``torch.nn.utils.parametrizations.spectral_norm``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from zoo.errors import ConfigError

__all__ = [
    "mlp",
    "dcgan_generator",
    "dcgan_discriminator",
    "make_generator",
    "make_discriminator",
    "dcgan_init",
    "is_image_shape",
]

_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    try:
        return _ACTS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}: use one of {', '.join(_ACTS)}") from None


def _norm1d(norm: str, width: int) -> Optional[nn.Module]:
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "none":
        return None
    raise ConfigError(f"unknown norm {norm!r}: use batch, layer or none")


def _norm2d(norm: str, channels: int) -> Optional[nn.Module]:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return None
    raise ConfigError(f"unknown norm {norm!r}: use batch, layer or none")


def is_image_shape(shape: Sequence[int]) -> bool:
    return len(shape) == 3


def _check_image_shape(shape: Sequence[int]) -> Tuple[int, int]:
    if len(shape) != 3:
        raise ConfigError(f"expected an image shape (C, H, W), got {tuple(shape)}")
    c, h, w = shape
    if h != w or h < 8 or h & (h - 1):
        raise ConfigError(
            f"DCGAN nets need square images with a power-of-two side >= 8, got {h}x{w}: "
            "set the datamodule's image_size to 8, 16, 32 or 64"
        )
    return c, h


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (512, 512, 512),
    act: str = "relu",
    norm: str = "none",
    spectral_norm: bool = False,
    bias: bool = True,
) -> nn.Sequential:
    """Multi-layer perceptron ``in_dim → hidden… → out_dim`` (linear output)."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        lin = nn.Linear(width, h, bias=bias)
        layers.append(_sn(lin) if spectral_norm else lin)
        n = _norm1d(norm, h)
        if n is not None:
            layers.append(n)
        layers.append(activation(act))
        width = h
    lin = nn.Linear(width, out_dim)
    layers.append(_sn(lin) if spectral_norm else lin)
    return nn.Sequential(*layers)


class _Flatten1(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0])


class _ToMap(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], -1, 1, 1)


def dcgan_generator(latent_dim: int, data_shape: Sequence[int], base_channels: int = 64,
                    norm: str = "batch") -> nn.Sequential:
    """DCGAN generator: z → 4×4 map → stride-2 transposed convs → ``tanh`` image of ``data_shape``."""
    c_out, size = _check_image_shape(data_shape)
    n_up = int(math.log2(size // 4))
    ch = base_channels * 2 ** (n_up - 1)
    layers: list[nn.Module] = [_ToMap(), nn.ConvTranspose2d(latent_dim, ch, 4, 1, 0, bias=False)]
    for _ in range(n_up - 1):
        n = _norm2d(norm, ch)
        layers += ([n] if n is not None else []) + [nn.ReLU(True), nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False)]
        ch //= 2
    n = _norm2d(norm, ch)
    layers += ([n] if n is not None else []) + [nn.ReLU(True), nn.ConvTranspose2d(ch, c_out, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_discriminator(data_shape: Sequence[int], base_channels: int = 64, norm: str = "batch",
                        spectral_norm: bool = False) -> nn.Sequential:
    """DCGAN discriminator: stride-2 convs down to 4×4, then a 4×4 conv to one logit per image."""
    c_in, size = _check_image_shape(data_shape)
    n_down = int(math.log2(size // 4))
    wrap = _sn if spectral_norm else (lambda m: m)
    ch = base_channels
    layers: list[nn.Module] = [wrap(nn.Conv2d(c_in, ch, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
    for _ in range(n_down - 1):
        layers.append(wrap(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none")))
        n = _norm2d(norm, ch * 2)
        layers += ([n] if n is not None else []) + [nn.LeakyReLU(0.2, True)]
        ch *= 2
    layers += [wrap(nn.Conv2d(ch, 1, 4, 1, 0)), _Flatten1()]
    return nn.Sequential(*layers)


class _VectorNet(nn.Module):
    """An MLP on flattened inputs, reshaped to ``out_shape`` (``()`` means one scalar per sample)."""

    def __init__(self, net: nn.Module, out_shape: Tuple[int, ...]):
        super().__init__()
        self.net = net
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape[0], *self.out_shape)


def make_generator(latent_dim: int, data_shape: Sequence[int], hidden: Sequence[int] = (512, 512, 512),
                   act: str = "relu", norm: str = "none", base_channels: int = 64) -> nn.Module:
    """Generator for ``data_shape``: an MLP for vectors, a DCGAN generator for images."""
    shape = tuple(data_shape)
    if is_image_shape(shape):
        return dcgan_generator(latent_dim, shape, base_channels, norm="batch" if norm == "none" else norm)
    d = int(math.prod(shape))
    return _VectorNet(mlp(latent_dim, d, hidden, act, norm), shape)


def make_discriminator(data_shape: Sequence[int], hidden: Sequence[int] = (512, 512, 512), act: str = "relu",
                       norm: str = "none", spectral_norm: bool = False, base_channels: int = 64) -> nn.Module:
    """Discriminator / critic for ``data_shape`` returning ``(N,)``: MLP for vectors, DCGAN for images."""
    shape = tuple(data_shape)
    if is_image_shape(shape):
        return dcgan_discriminator(shape, base_channels, norm, spectral_norm)
    d = int(math.prod(shape))
    return _VectorNet(mlp(d, 1, hidden, act, norm, spectral_norm), ())


def dcgan_init(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: conv/linear weights N(0, std²), norm weights N(1, std²), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)

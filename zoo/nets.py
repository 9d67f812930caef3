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


# =========================================================================================================
# SN-GAN architectures (Miyato et al. 2018, Appendix B; the ResNet of pfnet-research/sngan_projection, used by
# SR-GAN's official code). Discriminators apply ``torch.nn.utils.parametrizations.spectral_norm`` to every
# conv / linear layer (shortcuts included) when ``spectral_norm=True``; images are in [-1, 1].
# =========================================================================================================


def _sn_wrap(spectral_norm: bool) -> Callable[[nn.Module], nn.Module]:
    return _sn if spectral_norm else (lambda m: m)


def _sngan_stages(data_shape: Sequence[int]) -> Tuple[int, int, int]:
    """``(channels, side, n)`` with n = log2(side/4) resolution doublings between a 4×4 map and the image."""
    c, size = _check_image_shape(data_shape)
    return c, size, int(math.log2(size // 4))


class _Unflatten(nn.Module):
    def __init__(self, shape: Tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def sngan_cnn_generator(latent_dim: int, data_shape: Sequence[int], base_channels: int = 512) -> nn.Sequential:
    """SN-GAN "standard CNN" generator: z → linear → 4×4×ch → [BN, ReLU, 4×4 stride-2 deconv, ch/2]×n →
    BN, ReLU, 3×3 conv → ``tanh`` (n = log2(side/4); ch = 512 for 32×32 in the paper; small ch for 8×8)."""
    c_out, _, n_up = _sngan_stages(data_shape)
    ch = int(base_channels)
    layers: list[nn.Module] = [nn.Linear(latent_dim, 4 * 4 * ch), _Unflatten((ch, 4, 4))]
    for _ in range(n_up):
        layers += [nn.BatchNorm2d(ch), nn.ReLU(True), nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1)]
        ch //= 2
    layers += [nn.BatchNorm2d(ch), nn.ReLU(True), nn.Conv2d(ch, c_out, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def sngan_cnn_discriminator(data_shape: Sequence[int], base_channels: int = 64,
                            spectral_norm: bool = True) -> nn.Sequential:
    """SN-GAN "standard CNN" discriminator (LeakyReLU 0.1): for each of n = log2(side/4) stages, a 3×3
    stride-1 conv then a 4×4 stride-2 conv (ch, 2ch, 4ch…); a last 3×3 conv (2^n·ch); linear → one logit.
    32×32 with ch = 64 is the paper's 64-64-128-128-256-256-512 net; 8×8 with small ch is the embedded one."""
    c_in, _, n_down = _sngan_stages(data_shape)
    wrap = _sn_wrap(spectral_norm)
    ch, width = int(base_channels), c_in
    layers: list[nn.Module] = []
    for i in range(n_down):
        layers += [wrap(nn.Conv2d(width, ch, 3, 1, 1)), nn.LeakyReLU(0.1, True),
                   wrap(nn.Conv2d(ch, ch, 4, 2, 1)), nn.LeakyReLU(0.1, True)]
        width, ch = ch, ch * 2
    layers += [wrap(nn.Conv2d(width, ch, 3, 1, 1)), nn.LeakyReLU(0.1, True), nn.Flatten(),
               wrap(nn.Linear(ch * 4 * 4, 1)), _Flatten1()]
    return nn.Sequential(*layers)


class _GenBlock(nn.Module):
    """ResNet generator block: BN, ReLU, ×2 nearest up-sampling, 3×3 conv, BN, ReLU, 3×3 conv; shortcut
    up-sampling + 1×1 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.b1, self.c1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2, self.c2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.sc = nn.Conv2d(c_in, c_out, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate
        h = self.c1(up(torch.relu(self.b1(x)), scale_factor=2))
        h = self.c2(torch.relu(self.b2(h)))
        return h + self.sc(up(x, scale_factor=2))


class _DisBlock(nn.Module):
    """ResNet discriminator block: ReLU, 3×3 conv, ReLU, 3×3 conv, [2×2 avg-pool]; shortcut 1×1 conv
    [+ avg-pool] when the width or resolution changes. ``optimized=True`` is the first block (no leading
    ReLU on the image; shortcut pools before its 1×1 conv)."""

    def __init__(self, c_in: int, c_out: int, down: bool, optimized: bool, wrap: Callable[[nn.Module], nn.Module]):
        super().__init__()
        self.down, self.optimized = down, optimized
        self.c1, self.c2 = wrap(nn.Conv2d(c_in, c_out, 3, 1, 1)), wrap(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.sc = wrap(nn.Conv2d(c_in, c_out, 1, 1, 0)) if (down or c_in != c_out or optimized) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.avg_pool2d
        h = x if self.optimized else torch.relu(x)
        h = self.c2(torch.relu(self.c1(h)))
        if self.down:
            h = pool(h, 2)
        s = x
        if self.optimized:
            s = self.sc(pool(s, 2) if self.down else s)
        elif self.sc is not None:
            s = self.sc(s)
            s = pool(s, 2) if self.down else s
        return h + s


class _SumPoolHead(nn.Module):
    def __init__(self, linear: nn.Module):
        super().__init__()
        self.linear = linear

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(h).sum(dim=(2, 3))).reshape(h.shape[0])


def _glorot_resnet_init(net: nn.Module) -> None:
    """Glorot-uniform init, gain √2 (gain 1 on 1×1 shortcuts and the output layers), zero biases
    (``sngan_projection``'s initialisation)."""
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            gain = 1.0 if (name.endswith("sc") or name.endswith("out") or name.endswith("linear")) else math.sqrt(2.0)
            nn.init.xavier_uniform_(w, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SNGANResNetGenerator(nn.Module):
    """SN-GAN / SR-GAN ResNet generator: linear z → 4×4×ch, n = log2(side/4) up-sampling blocks, BN, ReLU,
    3×3 conv, ``tanh`` (CIFAR-10: ch = 256, z = 128)."""

    def __init__(self, latent_dim: int, data_shape: Sequence[int], base_channels: int = 256):
        super().__init__()
        c_out, _, n_up = _sngan_stages(data_shape)
        ch = int(base_channels)
        self.ch = ch
        self.fc = nn.Linear(latent_dim, 4 * 4 * ch)
        self.blocks = nn.Sequential(*[_GenBlock(ch, ch) for _ in range(n_up)])
        self.bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, c_out, 3, 1, 1)
        _glorot_resnet_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.fc(z).reshape(z.shape[0], self.ch, 4, 4))
        return torch.tanh(self.out(torch.relu(self.bn(h))))


class SNGANResNetDiscriminator(nn.Module):
    """SR-GAN's ``SRDiscriminator`` (= SN-GAN ResNet D): optimized block (down) → log2(side/16) down blocks →
    two blocks → ReLU → global **sum** pooling → linear → one logit; SN on every conv (shortcuts too) and the
    linear layer. CIFAR-10: ch = 128, 4 blocks, 32→16→8→8→8."""

    def __init__(self, data_shape: Sequence[int], base_channels: int = 128, spectral_norm: bool = True):
        super().__init__()
        c_in, size, _ = _sngan_stages(data_shape)
        wrap = _sn_wrap(spectral_norm)
        ch = int(base_channels)
        n_down = max(0, int(math.log2(size)) - 4)  # 32×32: one down block (16 → 8)
        blocks = [_DisBlock(c_in, ch, down=True, optimized=True, wrap=wrap)]
        blocks += [_DisBlock(ch, ch, down=True, optimized=False, wrap=wrap) for _ in range(n_down)]
        blocks += [_DisBlock(ch, ch, down=False, optimized=False, wrap=wrap) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.head = _SumPoolHead(wrap(nn.Linear(ch, 1)))
        _glorot_resnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def sngan_networks(arch: str, latent_dim: int, data_shape: Sequence[int], hidden: Sequence[int] = (128, 128, 128),
                   g_channels: int = 256, d_channels: int = 128,
                   spectral_norm: bool = True) -> Tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` of an SN-GAN architecture.

    ``arch``: ``mlp`` (vector data; SN MLP discriminator, ReLU), ``cnn`` (standard CNN), ``resnet``, or
    ``auto`` (``mlp`` for vectors, ``cnn`` for images smaller than 32×32, ``resnet`` otherwise).
    ``g_channels`` / ``d_channels`` are the base widths (ResNet: ch of every block; CNN: G's first map /
    D's first conv).
    """
    shape = tuple(int(s) for s in data_shape)
    if arch == "auto":
        arch = "mlp" if not is_image_shape(shape) else ("cnn" if shape[-1] < 32 else "resnet")
    if arch == "mlp":
        if is_image_shape(shape):
            raise ConfigError("arch=mlp is for vector data; use arch=cnn or resnet for images")
        d = int(math.prod(shape))
        return (_VectorNet(mlp(latent_dim, d, hidden, "relu", "none"), shape),
                _VectorNet(mlp(d, 1, hidden, "relu", "none", spectral_norm), ()))
    if not is_image_shape(shape):
        raise ConfigError(f"arch={arch} needs images (C, H, W), got data_shape {shape}: use arch=mlp or auto")
    if arch == "cnn":
        return (sngan_cnn_generator(latent_dim, shape, g_channels),
                sngan_cnn_discriminator(shape, d_channels, spectral_norm))
    if arch == "resnet":
        return (SNGANResNetGenerator(latent_dim, shape, g_channels),
                SNGANResNetDiscriminator(shape, d_channels, spectral_norm))
    raise ConfigError(f"unknown SN-GAN arch {arch!r}: use auto, mlp, cnn or resnet")


# ---------------------------------------------------------------------------------------------------------
# Autoencoders (AE-OT, zoo/aeot.py). Appended; the builders above are unchanged.
# ---------------------------------------------------------------------------------------------------------
def dcgan_encoder(data_shape: Sequence[int], latent_dim: int, base_channels: int = 64,
                  norm: str = "batch") -> nn.Sequential:
    """DCGAN-style encoder (AE-OT's CelebA encoder, An et al. 2020): stride-2 4×4 convs with LeakyReLU(0.1)
    (norm on all but the first) down to a 4×4 map, then a valid 4×4 conv to ``latent_dim`` unbounded codes,
    returned as ``(N, latent_dim)``. Mirrors :func:`dcgan_generator`, which serves as the decoder."""
    c_in, size = _check_image_shape(data_shape)
    n_down = int(math.log2(size // 4))
    ch = base_channels
    layers: list[nn.Module] = [nn.Conv2d(c_in, ch, 4, 2, 1), nn.LeakyReLU(0.1, True)]
    for _ in range(n_down - 1):
        layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"))
        n = _norm2d(norm, ch * 2)
        layers += ([n] if n is not None else []) + [nn.LeakyReLU(0.1, True)]
        ch *= 2
    layers += [nn.Conv2d(ch, latent_dim, 4, 1, 0), nn.Flatten(1)]
    return nn.Sequential(*layers)


def make_autoencoder(data_shape: Sequence[int], latent_dim: int, hidden: Sequence[int] = (256, 256),
                     act: str = "relu", base_channels: int = 64, norm: str = "batch") -> Tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` for ``data_shape``.

    * vectors ``(d,)``: MLP encoder ``d → hidden… → latent_dim`` and MLP decoder ``latent_dim → reversed(hidden)
      … → d`` (linear output, no normalisation);
    * images ``(C, H, W)`` in [-1, 1]: :func:`dcgan_encoder` and :func:`dcgan_generator` (``tanh`` output) of
      the same width. Codes are ``(N, latent_dim)`` in both cases and unbounded.
    """
    shape = tuple(int(s) for s in data_shape)
    if is_image_shape(shape):
        return (dcgan_encoder(shape, latent_dim, base_channels, norm),
                dcgan_generator(latent_dim, shape, base_channels, norm))
    d = int(math.prod(shape))
    return (_VectorNet(mlp(d, latent_dim, hidden, act), (latent_dim,)),
            _VectorNet(mlp(latent_dim, d, tuple(reversed(tuple(hidden))), act), shape))

"""Errors the zoo raises for bad configurations and bad data.

Every :class:`ConfigError` message is one line that says what was wrong and how to fix it.
``train.py`` prints it as ``error: <message>`` and exits with status 2, before any training starts.
"""


class ConfigError(ValueError):
    """A configuration or data problem the user can fix; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def check_hparams(hparams, prefix: str = "model") -> None:
    """Checks every zoo method's hyper-parameters share, by name (raise :class:`ConfigError`, one line):

    * no float anywhere (lists included) is NaN or ±Inf — no hyper-parameter of the zoo takes one;
    * learning rates (``lr``, ``lr_*``, ``*_lr``) are > 0 (0 trains nothing);
    * ``betas`` are two numbers in [0, 1) (Adam's);
    * ``latent_dim`` and network widths (``hidden``, ``*_hidden``, ``*_channels``) are positive integers.
    """
    import math

    for name, value in dict(hparams).items():
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{prefix}.{name} must be finite, got {value}: set --{prefix}.{name}")
        if value is None:
            continue
        if name == "lr" or name.startswith("lr_") and name not in ("lr_decay", "lr_final_fraction") \
                or name.endswith("_lr"):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                raise ConfigError(f"{prefix}.{name} must be a positive learning rate, got {value}: "
                                  f"set --{prefix}.{name} (e.g. 2e-4)")
        elif name == "betas":
            if len(items) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in items):
                raise ConfigError(f"{prefix}.betas must be two numbers in [0, 1), got {value}: "
                                  f"set --{prefix}.betas (e.g. [0.5, 0.999])")
        elif name == "latent_dim" or name == "hidden" or name.endswith(("_hidden", "_channels")):
            if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in items):
                raise ConfigError(f"{prefix}.{name} must be positive integers, got {value}: set --{prefix}.{name}")

"""Errors the zoo raises for bad configurations and bad data.

Every :class:`ConfigError` message is one line that says what was wrong and how to fix it.
``train.py`` prints it as ``error: <message>`` and exits with status 2, before any training starts.
"""


class ConfigError(ValueError):
    """A configuration or data problem the user can fix; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))

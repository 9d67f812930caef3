"""Imports every method of the zoo so that it registers itself (``zoo.list_models()``).

Add one line per method file.
"""

import zoo.vanilla  # noqa: F401

"""Imports every method of the zoo so that it registers itself (``zoo.list_models()``).

Add one line per method file.
"""

import zoo.aeot  # noqa: F401
import zoo.dual_flow  # noqa: F401
import zoo.icnn_w2gan  # noqa: F401
import zoo.srgan  # noqa: F401
import zoo.vanilla  # noqa: F401
import zoo.wgan_gp  # noqa: F401

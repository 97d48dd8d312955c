"""The kerasdojo command line.

Heavy imports (TensorFlow, Keras, Gymnasium) happen inside command bodies, so
``kerasdojo --help`` answers in a fraction of a second. Errors a user can cause
are :class:`~kerasdojo.errors.DojoError`: printed as one line on stderr, exit
code 2, no traceback unless ``KERASDOJO_DEBUG=1``.

``common`` holds the app and what the commands share; ``rl`` the environment,
agent and training commands; ``supervised`` the supervised baselines; ``experiments`` bench and plot.
"""

from kerasdojo.cli import experiments, rl, supervised  # noqa: F401  (registers the commands)
from kerasdojo.cli.common import app, main

__all__ = ["app", "main"]

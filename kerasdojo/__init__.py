"""kerasdojo: train Keras agents on Gymnasium environments from the terminal.

This module imports nothing heavy: ``kerasdojo --help`` must stay fast.
"""

__version__ = "0.1.0"

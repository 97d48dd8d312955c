"""Experiments over many runs: ``bench`` (many seeds), ``plot`` (curves of runs and
experiments on one figure). They call the same session functions as ``train``."""

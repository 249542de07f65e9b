"""Evaluation: distances between sample sets."""
from noisebrush.eval.swd import sliced_wasserstein

__all__ = ["sliced_wasserstein"]

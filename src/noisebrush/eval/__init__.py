"""Evaluation: distances between sample sets, the domain feature network, and ``noisebrush eval``."""
from noisebrush.eval.evaluation import evaluate
from noisebrush.eval.metrics import (frechet_distance, kid, memorization, precision_recall, swd_laplacian)
from noisebrush.eval.swd import sliced_wasserstein

__all__ = ["evaluate", "frechet_distance", "kid", "memorization", "precision_recall", "sliced_wasserstein",
           "swd_laplacian"]

"""What a training run can measure of itself while it runs: a recall estimate for GANs.

    trainer.monitor = recall_monitor(trainer.dataset, n=256)     # the CLI does this for --method ddgan / gan / …
    trainer.monitor(trainer)                                     # → {"recall": 0.41}

Recall (Kynkäänniemi et al. 2019, k = 3, in the domain feature net's space: :func:`noisebrush.eval.metrics.
precision_recall`) is the share of real pictures that lie within the k-NN ball of some generated one: the coverage
a GAN loses when it collapses onto a few modes. The real set is the data set's first ``n`` pictures; the generated
set is the run's preview pictures (:meth:`noisebrush.train.loop.Trainer.sample`: the EMA model, the same items'
captions or labels, seeds 0 … n−1), so both sides ask for the same things and the estimate moves with the model
alone. With n = 256 it is a rough gauge (its spread over seeds is a few hundredths), for the log and the progress
bar — benches measure with more.
"""
from __future__ import annotations

import torch

from noisebrush.eval.features import load_feature_net
from noisebrush.eval.metrics import precision_recall

__all__ = ["recall_monitor"]


def recall_monitor(dataset, n: int = 256):
    """A function of a Trainer returning ``{"recall": r}`` (see the module docstring); the real features are
    computed on the first call. ``n``: pictures on each side (at most the data set's size, at least 8)."""
    n = max(8, min(int(n), len(dataset)))
    real: list[torch.Tensor] = []

    def measure(trainer) -> dict:
        net = load_feature_net()
        if not real:
            pictures = torch.stack([dataset[i]["image"] for i in range(n)])
            real.append(net.features(pictures))
        fake = trainer.sample(n)
        if fake is None:
            return {}
        return {"recall": precision_recall(real[0], net.features(fake.float()))[1]}

    return measure

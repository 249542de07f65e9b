"""The global sample stream: every random draw of training sample k is a function of (seed, k), nothing else.

    stream = SampleStream(len(dataset), seed=0, P_mean=-1.2, P_std=1.2, cond_drop=0.1)
    index, epoch = stream.item(k)                    # which picture sample k is, and in which epoch
    sigma, noise, drop = stream.draws(k, x0.shape)   # its noise level, noise and condition-dropout flag
    index, epoch, sigma, noise, drop = stream.draw(k, shape)   # both at once
    rng = stream.caption_rng(k)                      # a random.Random for sample k's caption phrasing
    eps = stream.token_noise(k, (16, 384))           # N(0, I) for its token embeddings (config text_noise)

Sample k is item ``perm_e[k mod n]`` of epoch e = k // n, where ``perm_e`` is a permutation of the n items drawn
from ``generator(seed, e, 0xDA7A)``. Its σ is log-normal, ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, "EDM",
table 1), its noise is N(0, I) of the sample's shape, and its condition is dropped (for classifier-free guidance)
with probability ``cond_drop``; all three come, in that order, from ``generator(seed, k, 0x5A)``.

``caption_rng(k)`` is a ``random.Random`` seeded with ``mix(seed, k, 0xCA97)``: the rng from which a caption
family (:func:`noisebrush.data.captions.phrase`) draws sample k's phrasing. ``token_noise(k, shape)`` is N(0, I)
from ``generator(seed, k, 0x70CE)``: the noise an embedding augmentation adds to sample k's text tokens.
``condition_generator(k)`` is ``generator(seed, k, 0xC0D1)``, from which a super-resolution stage draws sample k's
crop and the augmentation of its low-resolution picture. The loop's
global sample id is k = step · batch_size + (the sample's place in the step's global batch), so both are functions
of (run seed, step, sample index) only — the same in any split of the batch and after a resume.

A stream with a ``tag`` (an integer) mixes it into every seed — ``generator(seed, e, tag, 0xDA7A)``,
``generator(seed, k, tag, 0x5A)``, ``mix(seed, k, tag, 0xCA97)`` and ``generator(seed, k, tag, 0x70CE)`` — so two
streams of one run (fine-tuning's pictures and its class pictures) are independent. The trainer's stream has no tag.

Because nothing depends on batch, process or history, a run can be split over processes and accumulation steps, or
stopped and resumed, and still see the same samples with the same noise.
"""
from __future__ import annotations

import math
import random

import torch

from noisebrush.seeding import generator, mix

__all__ = ["SampleStream"]

_PERM, _DRAWS, _CAPTION, _TOKENS, _CONDITION = 0xDA7A, 0x5A, 0xCA97, 0x70CE, 0xC0D1


class SampleStream:
    """The sample stream over ``n`` items (see the module docstring)."""

    def __init__(self, n: int, seed: int, *, tag: int | None = None, P_mean: float = -1.2, P_std: float = 1.2,
                 cond_drop: float = 0.0):
        self.n, self.seed, self.tag = int(n), int(seed), tag
        self.P_mean, self.P_std, self.cond_drop = float(P_mean), float(P_std), float(cond_drop)
        self._perm: tuple[int, torch.Tensor] | None = None  # (epoch, permutation): the last epoch drawn

    def _key(self, *values: int) -> tuple[int, ...]:
        return values if self.tag is None else (*values[:-1], self.tag, values[-1])

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of the n items in ``epoch``."""
        if self._perm is None or self._perm[0] != epoch:
            g = generator(*self._key(self.seed, epoch, _PERM))
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def item(self, k: int) -> tuple[int, int]:
        """(item index, epoch) of global sample ``k``."""
        epoch, pos = divmod(int(k), self.n)
        return int(self.permutation(epoch)[pos]), epoch

    def draws(self, k: int, shape) -> tuple[float, torch.Tensor, bool]:
        """(σ, noise of ``shape``, condition dropped) of global sample ``k``."""
        g = generator(*self._key(self.seed, int(k), _DRAWS))
        sigma = math.exp(self.P_mean + self.P_std * float(torch.randn((), generator=g, dtype=torch.float64)))
        noise = torch.randn(tuple(shape), generator=g)
        drop = bool(torch.rand((), generator=g, dtype=torch.float64) < self.cond_drop)
        return sigma, noise, drop

    def caption_rng(self, k: int) -> random.Random:
        """The rng of global sample ``k``'s caption phrasing (a function of seed, k and the tag only)."""
        return random.Random(mix(*self._key(self.seed, int(k), _CAPTION)))

    def token_noise(self, k: int, shape) -> torch.Tensor:
        """N(0, I) of ``shape`` for global sample ``k``'s text-token embeddings (a function of seed, k and the tag)."""
        return torch.randn(tuple(shape), generator=generator(*self._key(self.seed, int(k), _TOKENS)))

    def condition_generator(self, k: int) -> torch.Generator:
        """A generator for global sample ``k``'s condition draws (a super-resolution stage's crop and augmentation:
        :meth:`noisebrush.data.superres.SuperRes.training_pair`), seeded by (seed, k, tag) alone."""
        return generator(*self._key(self.seed, int(k), _CONDITION))

    def draw(self, k: int, shape) -> tuple[int, int, float, torch.Tensor, bool]:
        """(item index, epoch, σ, noise, condition dropped) of global sample ``k``."""
        index, epoch = self.item(k)
        return (index, epoch, *self.draws(k, shape))

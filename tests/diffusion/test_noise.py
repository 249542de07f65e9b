"""Unit tests for noisebrush.diffusion.noise: per-sample random streams independent of the batch."""
import pytest
import torch

from noisebrush.diffusion.noise import SampleNoise, as_noise
from noisebrush.errors import BadParameter, UserError


def _ref(seed, shape, draws=1):
    """What seed `seed` should give: a fresh CPU generator, float32 draws, the last of `draws`."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        out = torch.randn(shape, generator=g, dtype=torch.float32)
    return out


def test_rows_come_from_their_own_seed():
    x = SampleNoise.from_seeds([7, 8, 9]).randn((3, 4))
    assert x.shape == (3, 3, 4) and x.dtype == torch.float32
    for i, s in enumerate([7, 8, 9]):
        assert torch.equal(x[i], _ref(s, (3, 4)))


def test_row_independent_of_batch_composition_and_position():
    alone = SampleNoise.from_seeds([42]).randn((2, 5, 5))[0]
    for seeds, pos in [([42, 1, 2], 0), ([1, 42], 1), ([5, 6, 7, 42, 9, 10, 11, 12], 3)]:
        noise = SampleNoise.from_seeds(seeds)
        assert torch.equal(noise.randn((2, 5, 5))[pos], alone)
    # the second draw too
    n1, n2 = SampleNoise.from_seeds([42]), SampleNoise.from_seeds([3, 42, 4])
    n1.randn((2, 5, 5)), n2.randn((2, 5, 5))
    second = n1.randn((6,))[0]
    assert torch.equal(n2.randn((6,))[1], second)
    g = torch.Generator().manual_seed(42)
    torch.randn((2, 5, 5), generator=g)
    assert torch.equal(second, torch.randn((6,), generator=g))  # a new shape continues the same stream


def test_streams_advance():
    noise = SampleNoise.from_seeds([1, 2])
    a, b = noise.randn((8,)), noise.randn((8,))
    assert not torch.equal(a, b)
    assert torch.equal(b[0], _ref(1, (8,), draws=2))


def test_dtype_does_not_change_values_and_randn_like():
    a = SampleNoise.from_seeds([3, 4]).randn((5,), dtype=torch.float64)
    b = SampleNoise.from_seeds([3, 4]).randn((5,))
    assert a.dtype == torch.float64 and torch.equal(a, b.double())
    x = torch.zeros(2, 3, 2, dtype=torch.float64)
    y = SampleNoise.from_seeds([3, 4]).randn_like(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert torch.equal(y[1], _ref(4, (3, 2)).double())
    with pytest.raises(BadParameter, match="batch of 3"):
        SampleNoise.from_seeds([3, 4]).randn_like(torch.zeros(3, 2))


def test_subset_shares_streams():
    noise = SampleNoise.from_seeds([10, 11, 12])
    sub = noise.subset(torch.tensor([2, 0]))
    assert len(sub) == 2
    assert sub.generators[0] is noise.generators[2] and sub.generators[1] is noise.generators[0]
    first = sub.randn((4,))
    assert torch.equal(first[0], _ref(12, (4,))) and torch.equal(first[1], _ref(10, (4,)))
    # the parent sees the advanced streams for items 0 and 2, a fresh one for item 1
    after = noise.randn((4,))
    assert torch.equal(after[0], _ref(10, (4,), draws=2))
    assert torch.equal(after[1], _ref(11, (4,)))
    assert torch.equal(after[2], _ref(12, (4,), draws=2))


def test_state_round_trip():
    noise = SampleNoise.from_seeds([5, 6])
    state = noise.get_state()
    a = noise.randn((3,))
    noise.set_state(state)
    assert torch.equal(noise.randn((3,)), a)


def test_empty_rejected():
    with pytest.raises(BadParameter, match="noise"):
        SampleNoise([])


def test_as_noise():
    assert as_noise(None) is None and as_noise(None, batch=4) is None
    n = SampleNoise.from_seeds([1, 2])
    assert as_noise(n) is n and as_noise(n, batch=2) is n
    from_list = as_noise([1, 2], batch=2)
    assert isinstance(from_list, SampleNoise)
    assert torch.equal(from_list.randn((3,)), SampleNoise.from_seeds([1, 2]).randn((3,)))
    assert torch.equal(as_noise(range(3)).randn((2,))[2], _ref(2, (2,)))
    assert torch.equal(as_noise(torch.tensor([4, 5])).randn((2,))[1], _ref(5, (2,)))


def test_as_noise_rejects_single_generator_and_wrong_batch():
    with pytest.raises(BadParameter, match="noise") as info:
        as_noise(torch.Generator().manual_seed(0))
    assert isinstance(info.value, UserError)
    with pytest.raises(BadParameter, match="batch of 3"):
        as_noise([1, 2], batch=3)
    with pytest.raises(BadParameter, match="batch of 1"):
        as_noise(SampleNoise.from_seeds([1, 2]), batch=1)


def test_correlate_frames_keeps_unit_variance_and_shares_a_part():
    from noisebrush.diffusion.noise import correlate_frames

    eps = torch.randn(4000, 3, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    n = correlate_frames(eps, 0.8)
    assert abs(float(n.var()) - 1) < 0.02
    a, b = n[:, :, 0].flatten(), n[:, :, 5].flatten()
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert abs(corr - (0.8 - 0.2 / 7)) < 0.02
    assert torch.equal(correlate_frames(eps, 0.0), eps) and torch.equal(correlate_frames(eps[:, :, :1], 0.8),
                                                                       eps[:, :, :1])
    with pytest.raises(BadParameter, match="rho"):
        correlate_frames(eps, 1.0)

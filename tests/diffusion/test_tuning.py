"""Learned discretizations (noisebrush.diffusion.tuning): the differentiable solver twins, the exact mixture's
differentiable denoiser, and a fit that beats the schedule it starts from on held-out noise."""
import pytest
import torch

from noisebrush.diffusion import SAMPLERS, GaussianMixture, SampleNoise, karras
from noisebrush.diffusion.tuning import learn_schedule, load_schedule, per_sample_rmse, save_schedule, solve
from noisebrush.errors import BadParameter

F64 = torch.float64


@pytest.fixture(scope="module")
def gm():
    return GaussianMixture.random((2, 4, 4), components=6, seed=3)


def _noise(seeds, gm, smax):
    return SampleNoise.from_seeds(seeds).randn(gm.shape, dtype=F64) * smax


def _ref(gm, x):
    return SAMPLERS["dpmpp_3m"].fn(gm, x, torch.cat([karras(300, 1e-4, float(x.abs().max()) * 0 + 80.0)[:-1],
                                                      torch.zeros(1, dtype=F64)]))


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_3m"])
def test_the_twin_is_the_engine_sampler(gm, sampler):
    x = _noise(range(6), gm, 80.0)
    for sig in (karras(7, 0.01, 80.0), karras(3, 0.05, 80.0)):
        ours = solve(gm.denoise_batch, x, sig, sampler)
        engine = SAMPLERS[sampler].fn(gm, x, sig)
        torch.testing.assert_close(ours, engine, rtol=0, atol=1e-10)


def test_the_batched_denoiser_is_the_oracle_and_has_the_right_gradient(gm):
    x = _noise(range(5), gm, 2.0)
    for s in (0.02, 0.7, 5.0):
        torch.testing.assert_close(gm.denoise_batch(x, torch.tensor(s, dtype=F64)), gm.denoise(x, s), rtol=0,
                                   atol=1e-10)
    s = torch.tensor(0.7, dtype=F64, requires_grad=True)
    (gm.denoise_batch(x, s) ** 2).sum().backward()
    h = 1e-6
    fd = ((gm.denoise(x, 0.7 + h) ** 2).sum() - (gm.denoise(x, 0.7 - h) ** 2).sum()) / (2 * h)
    assert float(s.grad) == pytest.approx(float(fd), rel=1e-5)
    with pytest.raises(BadParameter, match="one σ for the whole batch"):
        gm.denoise_batch(x, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64))


def test_a_learned_schedule_beats_its_start_on_held_out_noise(gm, tmp_path):
    x, xv = _noise(range(100, 164), gm, 80.0), _noise(range(200, 232), gm, 80.0)
    ref, rv = _ref(gm, x), _ref(gm, xv)
    init = karras(5, 0.002, 80.0)
    sig, info = learn_schedule(gm.denoise_batch, "dpmpp_2m", 5, x, ref, init, valid=(xv, rv), iters=40, lr=0.1,
                               batch=16, every=5)
    assert sig[0] == 80.0 and sig[-1] == 0 and bool((sig[1:] < sig[:-1]).all()) and len(sig) == 6
    fn = SAMPLERS["dpmpp_2m"].fn
    before, after = (per_sample_rmse(fn(gm, xv, s), rv).median() for s in (init, sig))
    assert after < 0.8 * before, (float(before), float(after))
    assert info["held_out_after"]["trimmed"] < info["held_out_before"]["trimmed"]
    assert info["best_at"] > 0 and info["steps"] == 5 and info["batch"] == 16
    save_schedule(str(tmp_path / "s.json"), sig, info)  # stored and read back exactly
    torch.testing.assert_close(load_schedule(str(tmp_path / "s.json")), sig, rtol=0, atol=0)


def test_never_worse_than_the_start(gm):
    """With a learning rate too large to help, the best schedule seen on held-out noise is the one it began with."""
    x = _noise(range(8), gm, 80.0)
    ref = _ref(gm, x)
    init = karras(4, 0.002, 80.0)
    sig, info = learn_schedule(gm.denoise_batch, "dpmpp_2m", 4, x, ref, init, iters=3, lr=0.9, every=1)
    assert info["held_out_after"]["trimmed"] <= info["held_out_before"]["trimmed"]
    if info["best_at"] == 0:
        torch.testing.assert_close(sig, init)


def test_bad_requests(gm):
    x = _noise(range(4), gm, 80.0)
    with pytest.raises(BadParameter, match="learned schedule is fitted for dpmpp_2m, dpmpp_3m"):
        learn_schedule(gm.denoise_batch, "euler", 4, x, x, karras(4, 0.01, 80.0))
    with pytest.raises(BadParameter, match="init: 3 steps, but dpmpp_2m at 4 NFE takes 4"):
        learn_schedule(gm.denoise_batch, "dpmpp_2m", 4, x, x, karras(3, 0.01, 80.0))
    with pytest.raises(BadParameter, match="one reference per training noise"):
        learn_schedule(gm.denoise_batch, "dpmpp_2m", 4, x, x[:2], karras(4, 0.01, 80.0))

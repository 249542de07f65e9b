"""The sampling core (noisebrush.diffusion.sample): make_denoiser's guidance, mixing, per-picture and batched calls,
the autocast dtype and guides; sample's callback, statistics and offsets; start; the RePaint sampler."""
import pytest
import torch

from noisebrush.diffusion import EDMPrecond, GaussianMixture, SampleNoise, get_sampler, karras
from noisebrush.diffusion.guidance import x0_guidance
from noisebrush.diffusion.sample import Denoiser, StepInfo, make_denoiser, sample, start
from noisebrush.diffusion.samplers.repaint import repaint, repaint_moves, repaint_path
from noisebrush.errors import BadParameter

SHAPE = (3, 8, 8)


class ToyNet(torch.nn.Module):
    """A small conditional network F(x_in, c_noise, labels, drop): a convolution, a noise-level term and a label
    embedding that ``drop`` removes (as noisebrush's UNet learns its unconditional half)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.emb = torch.nn.Embedding(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.requires_grad_(False)
        self.calls = []

    def forward(self, x, c_noise, labels=None, drop=None):
        self.calls.append({"batch": x.shape[0], "labels": labels, "drop": drop,
                           "autocast": torch.is_autocast_enabled("cpu") if _new_autocast_api() else
                           torch.is_autocast_cpu_enabled()})
        h = self.conv(x) + 0.1 * c_noise.reshape(-1, 1, 1, 1)
        if labels is not None:
            e = self.emb(labels)
            if drop is not None:
                e = torch.where(drop[:, None], torch.zeros_like(e), e)
            h = h + e[:, :, None, None]
        return torch.tanh(h)


def _new_autocast_api() -> bool:
    try:
        torch.is_autocast_enabled("cpu")
        return True
    except TypeError:
        return False


@pytest.fixture()
def net():
    return ToyNet()


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _paint(den, seeds, steps=5, sampler="dpmpp_2m", **kw):
    noise = SampleNoise.from_seeds(seeds)
    sigmas = karras(steps, sigma_min=0.01, sigma_max=20.0)
    return sample(den, start(noise, SHAPE, sigmas), sigmas, noise, sampler=sampler, **kw)


LABELS = torch.tensor([0, 2, 3])


# -- guidance ---------------------------------------------------------------------------------------------------------
def test_cfg_one_is_the_conditional_denoiser_without_a_drop_flag(net):
    den = EDMPrecond(net)
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    for batched in (True, False):
        net.calls.clear()
        out = make_denoiser(den, {"labels": LABELS}, cfg=1.0, batched=batched)(x, sigma)
        ref = den(x, sigma, labels=LABELS)
        assert torch.allclose(out, ref, atol=1e-6)
        assert all(c["drop"] is None for c in net.calls)
    out = make_denoiser(den, {"labels": LABELS}, cfg=1.0, batched=True)(x, sigma)
    assert torch.equal(out, den(x, sigma, labels=LABELS))  # batched: the very same call


def test_cfg_is_one_batched_call_with_the_dropped_twin(net):
    den = EDMPrecond(net)
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    net.calls.clear()
    out = make_denoiser(den, {"labels": LABELS}, cfg=4.0, batched=True)(x, sigma)
    assert [c["batch"] for c in net.calls] == [6]
    assert net.calls[0]["drop"].tolist() == [False] * 3 + [True] * 3
    c = den(x, sigma, labels=LABELS, drop=torch.zeros(3, dtype=torch.bool))
    u = den(x, sigma, labels=LABELS, drop=torch.ones(3, dtype=torch.bool))
    assert torch.allclose(out, u + 4.0 * (c - u), atol=1e-5)


def test_a_shared_condition_row_serves_every_picture(net):
    den = EDMPrecond(net)
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    shared = make_denoiser(den, {"labels": torch.tensor([2])}, cfg=3.0, batched=False)(x, sigma)
    per_row = make_denoiser(den, {"labels": torch.tensor([2, 2, 2])}, cfg=3.0, batched=False)(x, sigma)
    assert torch.equal(shared, per_row)
    batched = make_denoiser(den, {"labels": torch.tensor([2])}, cfg=3.0, batched=True)(x, sigma)
    assert torch.allclose(batched, shared, atol=1e-5)
    with pytest.raises(BadParameter, match="rows"):
        make_denoiser(den, {"labels": torch.tensor([1, 2])}, cfg=3.0)(x, sigma)
    with pytest.raises(BadParameter, match="tensor"):
        make_denoiser(den, {"labels": 3})


def test_a_mix_of_one_condition_is_plain_cfg_bit_for_bit(net):
    den = EDMPrecond(net)
    plain = _paint(make_denoiser(den, {"labels": torch.tensor([3])}, cfg=3.0, batched=False), [4, 5])
    mixed = _paint(make_denoiser(den, mix=[({"labels": torch.tensor([3])}, 1.0)], cfg=3.0, batched=False), [4, 5])
    assert torch.equal(plain, mixed)


def test_a_mix_combines_the_conditions_before_guidance(net):
    den = EDMPrecond(net)
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(4))
    sigma = torch.tensor([3.0], dtype=torch.float64)
    a, b = {"labels": torch.tensor([1])}, {"labels": torch.tensor([2])}
    net.calls.clear()
    out = make_denoiser(den, mix=[(a, 0.25), (b, 0.75)], cfg=2.0, batched=False)(x, sigma)
    assert [c["batch"] for c in net.calls] == [3]  # A, B and A dropped, in one call
    assert net.calls[0]["labels"].tolist() == [1, 2, 1] and net.calls[0]["drop"].tolist() == [False, False, True]
    da, db = den(x, sigma, labels=a["labels"]), den(x, sigma, labels=b["labels"])
    du = den(x, sigma, labels=a["labels"], drop=torch.tensor([True]))
    assert torch.allclose(out, du + 2.0 * (0.25 * (da - du) + 0.75 * (db - du)), atol=1e-5)
    # at scale 1 a mix still evaluates its twin (so a morph's batch does not depend on the scale) and returns Σ a_i·D_i
    net.calls.clear()
    one = make_denoiser(den, mix=[(a, 0.25), (b, 0.75)], cfg=1.0, batched=False)(x, sigma)
    assert [c["batch"] for c in net.calls] == [3]
    assert torch.allclose(one, 0.25 * da + 0.75 * db, atol=1e-5)
    with pytest.raises(BadParameter, match="either"):
        make_denoiser(den, a, mix=[(b, 1.0)])


def test_an_unconditional_model_ignores_the_scale(net):
    den = EDMPrecond(net)
    net.calls.clear()
    out = _paint(make_denoiser(den, None, cfg=5.0, batched=True), [1, 2], steps=3)
    assert all(c["labels"] is None and c["drop"] is None and c["batch"] == 2 for c in net.calls)
    assert torch.equal(out, _paint(make_denoiser(den, {}, cfg=1.0, batched=True), [1, 2], steps=3))


# -- per picture or batched -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler_ancestral", "adaptive"])
def test_per_picture_is_batch_invariant_and_batched_agrees(net, sampler):
    den = EDMPrecond(net)
    cond = {"labels": LABELS}
    per = _paint(make_denoiser(den, cond, cfg=3.0, batched=False), [7, 8, 9], sampler=sampler)
    batched = _paint(make_denoiser(den, cond, cfg=3.0, batched=True), [7, 8, 9], sampler=sampler)
    assert torch.allclose(per, batched, atol=1e-4)
    for i, seed in enumerate([7, 8, 9]):
        alone = _paint(make_denoiser(den, {"labels": LABELS[i:i + 1]}, cfg=3.0, batched=False), [seed],
                       sampler=sampler)
        assert torch.equal(alone[0], per[i])


def test_conditions_follow_a_sampler_that_evaluates_part_of_the_batch():
    """adaptive evaluates only the samples still running: their conditions must be sliced with them."""
    seen = []

    def den(x, sigma, labels=None, drop=None):
        seen.append((x.shape[0], None if labels is None else labels.shape[0]))
        return 0.5 * x + 0.1 * labels.to(x.dtype).reshape(-1, 1, 1, 1)

    d = make_denoiser(den, {"labels": torch.tensor([0, 1, 2, 3])}, cfg=1.0, batched=True)
    noise = SampleNoise.from_seeds(range(4))
    sigmas = karras(4, sigma_min=0.01, sigma_max=10.0)
    stats = {}
    sample(d, start(noise, (1, 4, 4), sigmas) * torch.tensor([1.0, 3.0, 0.2, 2.0]).reshape(-1, 1, 1, 1), sigmas,
           noise, sampler="adaptive", stats=stats)
    assert all(n == k for n, k in seen) and any(n < 4 for n, _ in seen)
    assert set(stats) >= {"nfe", "accepted", "rejected"}


def test_dtype_runs_the_network_under_autocast(net):
    den = EDMPrecond(net)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(5))
    net.calls.clear()
    out = make_denoiser(den, {"labels": LABELS[:2]}, cfg=2.0, dtype=torch.bfloat16)(x, 1.5)
    assert net.calls[0]["autocast"] and out.dtype == torch.float32
    net.calls.clear()
    make_denoiser(den, {"labels": LABELS[:2]}, cfg=2.0)(x, 1.5)
    assert not net.calls[0]["autocast"]


class Pull:
    """A guide-like object: pulls x̂_0 toward 0 (gradient x0), half as hard at high noise."""

    def __init__(self, scale):
        self.scale = scale

    def gradient(self, x0, sigma):
        return x0

    def weight(self, sigma):
        return 1 / (1 + sigma)


def test_guides_go_through_the_x0_guidance_hook(net):
    den = EDMPrecond(net)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(6))
    sigma = torch.tensor([0.5, 4.0], dtype=torch.float64)
    cond = {"labels": LABELS[:2]}
    plain = make_denoiser(den, cond, cfg=2.0, batched=False)
    guided = make_denoiser(den, cond, cfg=2.0, batched=False, guides=[Pull(0.3), Pull(0.0)])
    by_hand = x0_guidance(lambda x, s: plain(x, s), Pull(0.3).gradient, scale=0.3, weight=Pull(0.3).weight)
    assert torch.equal(guided(x, sigma), by_hand(x, sigma))


# -- sample, start ----------------------------------------------------------------------------------------------------
def test_sample_equals_the_sampler_called_directly():
    gm = GaussianMixture.random(SHAPE, components=4, seed=1)
    sigmas = karras(6, sigma_min=0.01, sigma_max=40.0)
    for name in ("dpmpp_2m", "heun", "ddpm"):
        a = sample(make_denoiser(gm), start(SampleNoise.from_seeds([1, 2]), SHAPE, sigmas), sigmas,
                   SampleNoise.from_seeds([1, 2]), sampler=name)
        noise = SampleNoise.from_seeds([1, 2])
        b = get_sampler(name).fn(gm, noise.randn(SHAPE) * float(sigmas[0]), sigmas,
                                 noise=SampleNoise.from_seeds([1, 2]))
        assert torch.equal(a, b), name


def test_start_is_each_pictures_noise_at_sigma_max():
    sigmas = karras(4, sigma_min=0.01, sigma_max=80.0)
    x = start(SampleNoise.from_seeds([3, 4]), SHAPE, sigmas)
    assert torch.equal(x, SampleNoise.from_seeds([3, 4]).randn(SHAPE) * 80.0)
    assert torch.equal(x[1:], start(SampleNoise.from_seeds([4]), SHAPE, sigmas))


def test_the_callback_sees_every_step_with_offsets():
    gm = GaussianMixture.random(SHAPE, components=4, seed=2)
    seen = []
    _paint(make_denoiser(gm), [0, 1], steps=6, callback=seen.append)
    assert [s.step for s in seen] == list(range(6)) and {s.steps for s in seen} == {6}
    assert all(isinstance(s, StepInfo) and s.x.shape == (2, *SHAPE) and s.x0.shape == (2, *SHAPE) for s in seen)
    assert [s.sigma for s in seen] == pytest.approx([float(v) for v in karras(6, sigma_min=0.01, sigma_max=20.0)[:-1]])
    seen.clear()
    noise = SampleNoise.from_seeds([0])
    sigmas = karras(4, sigma_min=0.01, sigma_max=20.0)
    sample(make_denoiser(gm), start(noise, SHAPE, sigmas), sigmas, noise, callback=seen.append, step_offset=8,
           steps=20)
    assert [s.step for s in seen] == [8, 9, 10, 11] and {s.steps for s in seen} == {20}


def test_sample_passes_stats_only_to_samplers_that_keep_them():
    gm = GaussianMixture.random(SHAPE, components=4, seed=3)
    stats = {}
    _paint(make_denoiser(gm), [0], steps=4, sampler="dpmpp_2m", stats=stats)
    assert stats == {}
    _paint(make_denoiser(gm), [0], steps=4, sampler="langevin", stats=stats)
    assert "corrector_steps" in stats


# -- RePaint ----------------------------------------------------------------------------------------------------------
def test_repaint_keeps_the_known_pixels_and_calls_back_once_per_move_down():
    gm = GaussianMixture.random(SHAPE, components=4, seed=4)
    known = gm.sample(SampleNoise.from_seeds([5, 6])).to(torch.float32)
    keep = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    keep[..., :, :4] = True
    sigmas = karras(6, sigma_min=0.01, sigma_max=20.0)
    noise = SampleNoise.from_seeds([5, 6])
    seen = []
    out = sample(make_denoiser(gm), start(noise, SHAPE, sigmas), sigmas, noise, sampler=repaint, known=known,
                 keep=keep, jump_length=2, jumps=2, callback=seen.append, steps=repaint_moves(6, 2, 2))
    k = keep.expand_as(out)
    assert torch.equal(out[k], known[k])
    assert out[~k].abs().max() <= 1
    path = repaint_path(6, 2, 2)
    downs = [m for m in range(len(path) - 1) if path[m + 1] > path[m]]
    assert [s.step for s in seen] == downs and {s.steps for s in seen} == {len(path) - 1}
    assert [s.sigma for s in seen] == [float(sigmas[path[m]]) for m in downs]
    with pytest.raises(BadParameter, match="stochastic"):
        sample(make_denoiser(gm), start(noise, SHAPE, sigmas), sigmas, None, sampler=repaint, known=known, keep=keep)


def test_a_made_denoiser_is_a_denoiser():
    gm = GaussianMixture.random(SHAPE, components=4, seed=5)
    d = make_denoiser(gm)
    assert isinstance(d, Denoiser) and d.extra_args == {}
    x = torch.randn(2, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(d(x, 2.0), gm(x, torch.tensor([2.0, 2.0], dtype=torch.float64)))

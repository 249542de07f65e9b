"""The diffusion GAN's sampler: a latent per sample and step from the sample's own generator, the exact posterior of
the VE chain between steps (ddpm's step), x̂_0 at the end; per-picture inputs through the sampling core's
denoiser (guidance gives both halves the same z)."""
import math

import pytest
import torch

from noisebrush.diffusion import SampleNoise, ddgan, ddpm
from noisebrush.diffusion.sample import make_denoiser, sample
from noisebrush.diffusion.samplers import DIFFUSION_SAMPLERS, SAMPLERS, gan, get_sampler
from noisebrush.errors import BadParameter

LATENT = 5


def generator(x, sigma, *, z, **cond):
    """A stand-in generator: x̂_0 depends on x, σ and z (so the test sees which z each step got)."""
    s = sigma.to(x.dtype).reshape(-1, 1, 1, 1)
    return 0.3 * x / (1 + s) + z.mean(1).reshape(-1, 1, 1, 1) + 0.1 * z[:, :1, None, None]


def test_gan_is_registered_for_gan_models_only():
    info = get_sampler("gan")
    assert info.models == "gan" and info.stochastic and info.fixed_cost and info.steps_for_nfe(4) == 4
    assert "gan" not in DIFFUSION_SAMPLERS and set(DIFFUSION_SAMPLERS) == set(SAMPLERS) - {"gan"}


def test_each_step_draws_z_then_takes_the_exact_posterior():
    sig = ddgan(4)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)) * float(sig[0])
    seen = []
    out = gan(lambda x, s, z: seen.append(z.clone()) or generator(x, s, z=z), x.clone(), sig,
              latent=LATENT, noise=[7, 8])
    # by hand: per step, z first (from each sample's generator), then the posterior's noise
    gens = [torch.Generator().manual_seed(s) for s in (7, 8)]
    y = x.clone()
    for i in range(4):
        s, nxt = float(sig[i]), float(sig[i + 1])
        z = torch.stack([torch.randn(LATENT, generator=g) for g in gens])
        assert torch.equal(z, seen[i])
        x0 = generator(y, torch.full((2,), s, dtype=torch.float64), z=z)
        y = x0 + (nxt / s) ** 2 * (y - x0)
        if nxt > 0:
            y = y + (nxt / s) * math.sqrt(s * s - nxt * nxt) * torch.stack([torch.randn(3, 4, 4, generator=g)
                                                                             for g in gens])
    assert len(seen) == 4 and torch.allclose(out, y, atol=1e-6)


def test_the_last_step_returns_the_generators_prediction():
    sig = ddgan(1)
    x = torch.randn(1, 3, 4, 4) * float(sig[0])
    seen = []
    out = gan(lambda x, s, z: seen.append((x.clone(), z.clone())) or generator(x, s, z=z), x, sig, latent=3,
              noise=[0])
    xin, z = seen[0]
    assert torch.equal(out, generator(xin, torch.full((1,), float(sig[0]), dtype=torch.float64), z=z))


def test_with_a_denoiser_that_ignores_z_it_is_ddpm_up_to_the_latents_draws():
    """The posterior step is ddpm's; the only difference is that each step first spends a latent's worth of the
    sample's generator. A denoiser that ignores z therefore paints what ddpm paints from generators that skip
    those values — checked by drawing them in the same order by hand."""
    sig = ddgan(2)
    den = lambda x, s, z=None: 0.5 * x / (1 + s.to(x.dtype).reshape(-1, 1, 1, 1))  # noqa: E731
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3)) * float(sig[0])
    out = gan(den, x.clone(), sig, latent=4, noise=[11])

    class Skipping(SampleNoise):
        def randn_like(self, t):
            out = super().randn_like(t)
            for g in self.generators:
                torch.randn(4, generator=g)  # the latent the gan sampler draws next, after this step's noise
            return out

    noise = Skipping.from_seeds([11])
    for g in noise.generators:
        torch.randn(4, generator=g)  # the first step's latent
    want = ddpm(den, x.clone(), sig, noise=noise)
    assert torch.allclose(out, want, atol=1e-6)


def test_a_picture_does_not_depend_on_its_batch():
    sig = ddgan(4)
    noise = SampleNoise.from_seeds([3, 4, 5])
    x = noise.randn((3, 4, 4)) * float(sig[0])
    batch = gan(generator, x, sig, latent=LATENT, noise=noise)
    one = SampleNoise.from_seeds([4])
    alone = gan(generator, one.randn((3, 4, 4)) * float(sig[0]), sig, latent=LATENT, noise=one)
    assert torch.allclose(batch[1:2], alone, atol=1e-6)


@pytest.mark.parametrize("latent", [None, 0, 2.5, True])
def test_the_latent_size_is_required(latent):
    with pytest.raises(BadParameter, match="latent"):
        gan(generator, torch.zeros(1, 3, 4, 4), ddgan(2), latent=latent, noise=[0])


def test_the_gan_sampler_needs_noise():
    with pytest.raises(BadParameter, match="stochastic"):
        gan(generator, torch.zeros(1, 3, 4, 4), ddgan(2), latent=2)


def test_guidance_gives_both_halves_the_same_latent():
    """Through the sampling core: z is a per-picture input, not a condition — the conditional and the dropped
    half of classifier-free guidance see the same rows, per picture or batched."""
    calls = []

    def net(x, sigma, *, z, labels, drop=None):
        calls.append((z.clone(), labels.clone(), None if drop is None else drop.clone()))
        return x * 0 + z[:, :1, None, None] + labels.to(x.dtype).reshape(-1, 1, 1, 1) * (0 if drop is None else
                                                                                         (~drop).to(x.dtype).reshape(-1, 1, 1, 1))

    sig = ddgan(2)
    for batched in (False, True):
        calls.clear()
        den = make_denoiser(net, {"labels": torch.tensor([1, 2])}, cfg=2.0, batched=batched)
        noise = SampleNoise.from_seeds([5, 6])
        sample(den, noise.randn((3, 4, 4)) * float(sig[0]), sig, noise, sampler="gan", latent=3)
        for z, labels, drop in calls:
            k = z.shape[0] // 2
            assert torch.equal(z[:k], z[k:]) and drop[:k].logical_not().all() and drop[k:].all()
        assert len(calls) == (4 if not batched else 2)


def test_a_denoiser_called_directly_takes_a_latent_with_its_own_conditions():
    got = {}

    def net(x, sigma, *, z, labels):
        got.update(z=z, labels=labels)
        return x

    den = make_denoiser(net, {"labels": torch.tensor([4])})
    den(torch.zeros(1, 3, 2, 2), 1.0, z=torch.ones(1, 2))
    assert torch.equal(got["labels"], torch.tensor([4])) and torch.equal(got["z"], torch.ones(1, 2))

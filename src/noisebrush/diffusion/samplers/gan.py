"""The sampler of a Denoising Diffusion GAN (Xiao et al. 2022, "Tackling the Generative Learning Trilemma"): a few
large steps, each a generator's x̂_0 followed by the exact posterior of the VE chain.

* ``gan`` — at every step a fresh latent z ~ N(0, I) of ``latent`` values is drawn from each sample's own
  generator and handed to the denoiser as the input ``z`` (a conditional generator G(x_σ, z, σ | condition) → x̂_0);
  then x_{σ'} ~ q(x_{σ'} | x_σ, x̂_0), the same Gaussian posterior ``ddpm`` samples. With σ' = 0 the last step
  returns x̂_0. A one-step generator (a plain GAN, Diffusion-GAN) is this sampler on a one-step ladder.

The ladder is the model's own (:func:`noisebrush.diffusion.schedules.ddgan`): the generator learned those noise
levels only.
"""
from __future__ import annotations

from noisebrush.diffusion.samplers._common import prepare, require_noise
from noisebrush.diffusion.samplers.ancestral import posterior_step
from noisebrush.errors import BadParameter

__all__ = ["gan"]


def gan(denoiser, x, sigmas, *, latent: int | None = None, extra_args=None, callback=None, noise=None):
    """DDGAN's posterior chain; ``latent``: the generator's latent size (required). 1 evaluation per step."""
    if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
        raise BadParameter(f"latent: the gan sampler needs the generator's latent size (a whole number ≥ 1), "
                           f"got {latent!r}")
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    noise = require_noise(noise, "gan")
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        z = noise.randn((latent,), device=x.device)  # before the step's own noise: one fixed order per sample
        x0 = D(x, sig, z=z)
        if callback is not None:
            callback(x, x0, sig, i)
        x = posterior_step(x, x0, sig, nxt, noise)
    return x

"""The diffusion engine. Imports only torch (and noisebrush.errors, which is standard library).

σ-space formulation of Karras et al. 2022: x_σ = x_0 + σ·ε; a denoiser D(x, σ, **cond) ≈ E[x_0 | x_σ];
samplers are numerical solvers of the reverse SDE / probability-flow ODE driven by D.

    from noisebrush.diffusion import GaussianMixture, SampleNoise, karras, dpmpp_3m
    gm = GaussianMixture.random((3, 32, 32), components=16)
    noise = SampleNoise.from_seeds(range(4))
    sigmas = karras(10, sigma_min=0.01, sigma_max=80)
    x0 = dpmpp_3m(gm, noise.randn((3, 32, 32)) * sigmas[0], sigmas)

Painting goes through the sampling core, :mod:`noisebrush.diffusion.sample` (guidance, per-picture or batched
network calls, the step callback):

    from noisebrush.diffusion.sample import make_denoiser, sample, start
    x0 = sample(make_denoiser(gm), start(noise, (3, 32, 32), sigmas), sigmas, noise, sampler="dpmpp_3m")
"""
from noisebrush.diffusion.forward import add_noise, expand_sigma
from noisebrush.diffusion.guidance import cfg, guided_call, loss_gradient, x0_guidance
from noisebrush.diffusion.losses import edm_loss, edm_weight, min_snr_weight, sample_edm_sigma, vp_loss
from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.diffusion.precond import EDMPrecond, edm_coefficients
from noisebrush.diffusion.samplers import (
    DIFFUSION_SAMPLERS,
    SAMPLERS,
    adaptive,
    ddim,
    ddpm,
    dpmpp_2m,
    dpmpp_2m_sde,
    dpmpp_3m,
    euler,
    euler_ancestral,
    gan,
    get_sampler,
    heun,
    langevin,
    langevin_correct,
    repaint,
    repaint_moves,
    repaint_path,
)
# the sampling core; its ``sample`` function stays in noisebrush.diffusion.sample (a package attribute of that name
# would hide the module)
from noisebrush.diffusion.sample import Denoiser, StepInfo, make_denoiser, start
from noisebrush.diffusion.schedules import (
    SCHEDULES,
    alphas_cumprod_to_sigmas,
    cosine_alphas_cumprod,
    ddgan,
    exponential,
    karras,
    linear_alphas_cumprod,
    vp_cosine,
    vp_linear,
)
from noisebrush.diffusion.vp import VPDenoiser, alpha_cumprod_to_sigma, sigma_to_alpha_cumprod, vp_input_scale

__all__ = [name for name in dir() if not name.startswith("_")]

"""Samplers: plain functions ``sampler(denoiser, x_T, sigmas, *, extra_args, callback, noise, ...) -> x_0``.

* ``denoiser(x, sigma, **extra_args) -> x̂_0`` with σ a float64 tensor holding one value per sample;
* ``x_T`` is the starting noise at sigmas[0] (e.g. ``noise.randn(shape) * sigmas[0]``);
* ``sigmas`` is a descending schedule, normally ending in 0 (:mod:`noisebrush.diffusion.schedules`);
* ``callback(x, x0_hat, sigma, step)`` is called once per step;
* ``noise`` is a :class:`~noisebrush.diffusion.noise.SampleNoise` (or a list of seeds): one generator per
  sample, required by the stochastic samplers.

Step coefficients are computed in float64 from the σ values. ``SAMPLERS`` describes each one. ``repaint``
(inpainting, :mod:`noisebrush.diffusion.samplers.repaint`) is a sampler too, outside ``SAMPLERS`` because it needs
the known picture and its mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from noisebrush.diffusion.samplers.adaptive import adaptive
from noisebrush.diffusion.samplers.ancestral import ddpm, euler_ancestral
from noisebrush.diffusion.samplers.dpmpp import dpmpp_2m, dpmpp_2m_sde, dpmpp_3m
from noisebrush.diffusion.samplers.gan import gan
from noisebrush.diffusion.samplers.ipndm import ipndm, ipndm_v
from noisebrush.diffusion.samplers.langevin import langevin, langevin_correct
from noisebrush.diffusion.samplers.ode import ddim, euler, heun
from noisebrush.diffusion.samplers.repaint import repaint, repaint_moves, repaint_path
from noisebrush.diffusion.samplers.unipc import unipc
from noisebrush.errors import BadParameter


@dataclass(frozen=True)
class SamplerInfo:
    name: str
    fn: Callable
    summary: str
    stochastic: bool
    order: int | None  # order of convergence of the deterministic solve; None where it does not apply
    models: str = "diffusion"  # the models it paints: "diffusion" (any denoiser) or "gan" (a diffusion GAN's
                               #   generator, which takes a latent z: see noisebrush.diffusion.samplers.gan)

    @property
    def fixed_cost(self) -> bool:
        """False for samplers whose evaluations depend on the run (langevin's correctors, adaptive's tolerance)."""
        return self.name not in ("langevin", "adaptive")

    def steps_for_nfe(self, nfe: int) -> int:
        """The number of schedule steps that spends at most ``nfe`` network evaluations (at least 1)."""
        if not self.fixed_cost:
            raise BadParameter(f"{self.name}: its number of evaluations is set at run time "
                               "(corrector steps / error tolerance), not by the number of steps")
        if self.name == "heun":  # 2 per step, 1 for the final Euler step onto σ = 0
            return max(1, (nfe + 1) // 2)
        return max(1, nfe)


SAMPLERS: dict[str, SamplerInfo] = {
    i.name: i
    for i in [
        SamplerInfo("euler", euler, "Euler on the probability-flow ODE; first order, 1 NFE/step", False, 1),
        SamplerInfo("ddim", ddim, "DDIM (η=0 deterministic; η>0 adds noise); first order, 1 NFE/step", False, 1),
        SamplerInfo("heun", heun, "EDM Algorithm 2, Heun's 2nd-order method with optional churn; 2 NFE/step", False, 2),
        SamplerInfo("dpmpp_2m", dpmpp_2m, "DPM-Solver++(2M) multistep; second order, 1 NFE/step", False, 2),
        SamplerInfo("dpmpp_3m", dpmpp_3m, "third-order exponential multistep (exact quadratic); 1 NFE/step", False, 3),
        SamplerInfo("ipndm", ipndm, "iPNDM: Adams–Bashforth (4 slopes) in σ with the published equal-step weights "
                    "(order 2 on Karras' schedule); 1 NFE/step", False, 2),
        SamplerInfo("ipndm_v", ipndm_v, "iPNDM with weights for the actual unequal steps (variable-step "
                    "Adams–Bashforth); 1 NFE/step", False, 4),
        SamplerInfo("unipc", unipc, "UniPC-3 (bh2, x̂_0 form): third-order multistep predictor plus a corrector that "
                    "reuses the next step's evaluation, which makes it fourth order; 1 NFE/step", False, 4),
        SamplerInfo("ddpm", ddpm, "DDPM ancestral sampling from the exact posterior; 1 NFE/step", True, None),
        SamplerInfo("euler_ancestral", euler_ancestral, "Euler step plus fresh noise (η, s_noise); 1 NFE/step", True, None),
        SamplerInfo("dpmpp_2m_sde", dpmpp_2m_sde, "DPM-Solver++(2M) for the reverse SDE (η); 1 NFE/step", True, None),
        SamplerInfo("langevin", langevin, "predictor-corrector: Langevin random walk until steady state per level", True, None),
        SamplerInfo("gan", gan, "a diffusion GAN's posterior chain: generator x̂_0 with a fresh latent z, then the "
                    "exact posterior (its model's own few steps); 1 NFE/step", True, None, "gan"),
        SamplerInfo("adaptive", adaptive, "adaptive steps with rtol/atol error control (embedded DDIM/Heun pair)", False, 2),
    ]
}

#: the samplers of diffusion models (every denoiser D(x, σ)): all but the GAN chain
DIFFUSION_SAMPLERS: tuple[str, ...] = tuple(n for n, i in SAMPLERS.items() if i.models == "diffusion")


def get_sampler(name: str) -> SamplerInfo:
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):  # TypeError: not a name at all (a list from a damaged recipe)
        raise BadParameter(f"sampler: unknown {name!r}; choose one of {', '.join(SAMPLERS)}") from None


__all__ = ["SAMPLERS", "DIFFUSION_SAMPLERS", "SamplerInfo", "get_sampler", "langevin_correct", "repaint", "repaint_moves",
           "repaint_path"] + list(SAMPLERS)

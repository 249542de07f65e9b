"""VP (DDPM) models in σ-space: ᾱ ↔ σ, input scaling, and a wrapper for ε-, v- or x₀-prediction networks.

A VP model sees x_t = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε. Dividing by sqrt(ᾱ_t) gives the σ-space variable
x_σ = x_0 + σ·ε with σ = sqrt((1-ᾱ)/ᾱ) (Karras et al. 2022, Appendix C.1; Song et al. 2021). So every
sampler here drives a VP network through :class:`VPDenoiser`:

    den = VPDenoiser(eps_model, linear_alphas_cumprod(), prediction="eps")
    x0 = dpmpp_2m(den, x_T, vp_linear(20))
"""
from __future__ import annotations

import torch

from noisebrush.diffusion.schedules import alphas_cumprod_to_sigmas
from noisebrush.errors import BadParameter

__all__ = ["sigma_to_alpha_cumprod", "alpha_cumprod_to_sigma", "vp_input_scale", "VPDenoiser"]


def sigma_to_alpha_cumprod(sigma):
    """ᾱ = 1 / (1 + σ²)."""
    return 1.0 / (1.0 + sigma**2)


def alpha_cumprod_to_sigma(alpha_cumprod):
    """σ = sqrt((1 - ᾱ) / ᾱ)."""
    return ((1.0 - alpha_cumprod) / alpha_cumprod) ** 0.5


def vp_input_scale(sigma):
    """The factor that maps x_σ to the VP network's input x_t: sqrt(ᾱ) = 1 / sqrt(1 + σ²)."""
    return (1.0 + sigma**2) ** -0.5


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], *([1] * (x.ndim - 1)))


class VPDenoiser(torch.nn.Module):
    """Turns a VP network ``model(x_t, t, **cond)`` into a σ-space denoiser D(x_σ, σ, **cond) → x̂_0.

    ``prediction``: what the network outputs — 'eps' (ε), 'v' (Salimans & Ho 2022: v = α·ε - σ_vp·x_0)
    or 'x0'. ``quantize``: round t to the nearest training step (for networks that only saw integer t);
    otherwise t is interpolated linearly in log σ between table entries, as k-diffusion and diffusers do.
    """

    def __init__(self, model, alphas_cumprod: torch.Tensor, prediction: str = "eps", quantize: bool = False):
        super().__init__()
        if prediction not in ("eps", "v", "x0"):
            raise BadParameter(f"prediction: one of eps, v, x0; got {prediction!r}")
        self.model = model
        self.prediction = prediction
        self.quantize = quantize
        self.register_buffer("log_sigmas", alphas_cumprod_to_sigmas(alphas_cumprod).log(), persistent=False)

    @property
    def sigma_min(self) -> float:
        return float(self.log_sigmas[0].exp())

    @property
    def sigma_max(self) -> float:
        return float(self.log_sigmas[-1].exp())

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep for σ: piecewise linear in log σ over the training table (float64)."""
        ls = self.log_sigmas
        log_s = sigma.to(ls.dtype).clamp(min=1e-30).log()
        idx = torch.searchsorted(ls, log_s).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        w = ((log_s - lo) / (hi - lo)).clamp(0, 1)
        t = idx - 1 + w
        return t.round() if self.quantize else t

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.log_sigmas.dtype).clamp(0, len(self.log_sigmas) - 1)
        lo = t.floor().long().clamp(max=len(self.log_sigmas) - 2)
        w = t - lo
        return ((1 - w) * self.log_sigmas[lo] + w * self.log_sigmas[lo + 1]).exp()

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1).expand(x.shape[0])
        t = self.sigma_to_t(sigma)
        c_in = vp_input_scale(sigma)
        # t goes to the network as float32 whatever x's dtype: bf16 cannot hold 999 or 601 exactly
        out = self.model(x * _bcast(c_in, x).to(x.dtype), t.to(torch.float32), **cond)
        s = _bcast(sigma, x)
        if self.prediction == "eps":
            return x - (s * out.double()).to(x.dtype)
        if self.prediction == "v":
            # x_0 = α·x_t - σ_vp·v with α = c_in and σ_vp = σ·c_in, and x_t = c_in·x_σ.
            a = _bcast(c_in, x)
            return (a * a * x.double() - s * a * out.double()).to(x.dtype)
        return out

"""Cross-checks against diffusers: for the same VP network and the same time steps, our σ-space samplers reach
the same final sample as diffusers' schedulers (max |Δ| ≤ 1e-4, float32 throughout, as diffusers runs).

* ``ddim`` (η = 0)     vs ``DDIMScheduler``              — VPDenoiser(quantize=True), σ at the scheduler's timesteps;
* ``euler``            vs ``EulerDiscreteScheduler``     — Karras σ, float timesteps, VPDenoiser(quantize=False);
* ``dpmpp_2m``         vs ``DPMSolverMultistepScheduler`` — dpmsolver++, order 2, midpoint; with/without Karras σ.

The network is either the exact ε (or v) of a Gaussian mixture (:class:`GaussianMixture` is an oracle for
E[x_0 | x_σ]; a float t is mapped to σ by interpolating log σ linearly in the training table, like diffusers'
``_sigma_to_t`` in reverse), or an arbitrary smooth nonlinear function of (x_t, t). Besides the final sample,
each test checks that both sides call the network with the same timesteps.

Both sides start from the same Gaussian draw z: diffusers from its VP (or, for Euler, σ-space) sample, we from
the σ-space state x_σ = x_t·sqrt(1 + σ_0²). At σ = 0 the two spaces coincide, so the outputs compare directly.
"""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler  # noqa: E402

from noisebrush.diffusion import GaussianMixture, VPDenoiser, ddim, dpmpp_2m, euler  # noqa: E402
from noisebrush.diffusion.schedules import linear_alphas_cumprod, pick_timesteps  # noqa: E402

# diffusers' schedulers call np.array(tensor), which newer NumPy flags; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (2, 3, 8, 8)
T = 1000
TOL = 1e-4
F64 = torch.float64

_GM = GaussianMixture.random(SHAPE[1:], components=8, seed=7)


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (len(SHAPE) - 1)))


class Net:
    """A VP network ``net(x_t, t) -> ε or v`` in float32 (the input's dtype), recording the timesteps it sees.

    kind='gm': the exact ε / v of the Gaussian mixture ``_GM``: σ(t) by log-linear interpolation of the table,
    x_σ = x_t·sqrt(1+σ²), x̂_0 = E[x_0 | x_σ], ε = (x_σ - x̂_0)/σ, v = α·ε - σ_vp·x̂_0 with α = 1/sqrt(1+σ²).
    kind='tanh': a smooth nonlinear g(x_t, t) = tanh(0.8·x_t + 0.6·sin(t/300)) + 0.1·cos(t/170)·x_t as v, or as ε
    the ε = σ_vp·x_t + α·g with the same x̂_0 (α, σ_vp from the interpolated σ(t), so also continuous in t).
    """

    def __init__(self, alphas_cumprod: torch.Tensor, kind: str = "gm", prediction: str = "eps"):
        ac = alphas_cumprod.to(F64)
        self.log_sigmas = ((1 - ac) / ac).sqrt().log()
        self.kind = kind
        self.prediction = prediction
        self.ts: list[float] = []

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(F64).clamp(0, len(self.log_sigmas) - 1)
        lo = t.floor().long().clamp(max=len(self.log_sigmas) - 2)
        w = t - lo
        return ((1 - w) * self.log_sigmas[lo] + w * self.log_sigmas[lo + 1]).exp()

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1).expand(x_t.shape[0])
        self.ts.append(float(t[0]))
        s = _bcast(self.sigma(t))
        a = (1 + s * s).rsqrt()
        if self.kind == "tanh":
            tt = _bcast(t.to(F64))
            xd = x_t.to(F64)
            g = torch.tanh(0.8 * xd + 0.6 * torch.sin(tt / 300)) + 0.1 * torch.cos(tt / 170) * xd
            # as v: g itself; as ε: the ε with the same x̂_0 = α·x_t - σ_vp·g, which stays data-sized
            # (a raw g as ε would give x̂_0 ~ g/α ≈ 150·g at t = 999 and samples of size ~100)
            out = g if self.prediction == "v" else s * a * xd + a * g
            return out.to(x_t.dtype)
        xs = x_t.to(F64) / a
        x0 = _GM(xs, s.reshape(-1)).to(F64)
        eps = (xs - x0) / s
        out = eps if self.prediction == "eps" else a * eps - s * a * x0
        return out.to(x_t.dtype)


def _noise(seed: int) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _run_diffusers(sched, net: Net, x: torch.Tensor, **step_kwargs) -> torch.Tensor:
    """The denoising loop of a diffusers pipeline (without guidance)."""
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)
        out = net(inp, t)
        x = sched.step(out, t, x, **step_kwargs).prev_sample
    return x


def _compare(ours: torch.Tensor, theirs: torch.Tensor, net_ours: Net, net_theirs: Net, t_atol: float = 0.0):
    assert ours.dtype == theirs.dtype == torch.float32
    assert torch.isfinite(ours).all() and torch.isfinite(theirs).all()
    # the same network evaluations at the same timesteps
    assert len(net_ours.ts) == len(net_theirs.ts)
    dt = max(abs(a - b) for a, b in zip(net_ours.ts, net_theirs.ts))
    assert dt <= t_atol, (net_ours.ts, net_theirs.ts)
    err = (ours - theirs).abs().max().item()
    # a real sample, not a collapse to something trivial
    assert theirs.abs().max().item() > 0.1
    assert err <= TOL, f"max |ours - diffusers| = {err:.3g}"
    return err


def _pred(prediction: str) -> str:
    return {"eps": "epsilon", "v": "v_prediction"}[prediction]


# ---------------------------------------------------------------------------------------------------- DDIM


@pytest.mark.parametrize("kind", ["gm", "tanh"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_matches_diffusers(spacing, steps, prediction, kind):
    sched = DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
                          timestep_spacing=spacing, prediction_type=_pred(prediction))
    sched.set_timesteps(steps)
    ac = sched.alphas_cumprod  # float32, as diffusers uses it
    z = _noise(steps)

    net_d = Net(ac, kind, prediction)
    theirs = _run_diffusers(sched, net_d, z * sched.init_noise_sigma, eta=0.0)

    table = ((1 - ac.to(F64)) / ac.to(F64)).sqrt()
    sigmas = torch.cat([table[sched.timesteps], torch.zeros(1, dtype=F64)])
    net_o = Net(ac, kind, prediction)
    den = VPDenoiser(net_o, ac, prediction=prediction, quantize=True)
    ours = ddim(den, z * math.sqrt(1 + float(sigmas[0]) ** 2), sigmas, eta=0.0)

    _compare(ours, theirs, net_o, net_d)


@pytest.mark.parametrize("steps", [10, 25, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_pick_timesteps_matches_diffusers(spacing, steps):
    """Our timestep spacings are diffusers' (Euler/DDIM convention; T divisible by steps for DDIM's step size)."""
    sched = EulerDiscreteScheduler(num_train_timesteps=T, beta_schedule="linear", timestep_spacing=spacing)
    sched.set_timesteps(steps)
    theirs = sched.timesteps.round().long()
    assert torch.equal(pick_timesteps(steps, T, spacing), theirs)
    if spacing != "linspace":  # DDIM has no 'linspace' rounding of its own to compare
        dd = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
        dd.set_timesteps(steps)
        assert torch.equal(pick_timesteps(steps, T, spacing), dd.timesteps.long())


def test_alphas_cumprod_table_matches_diffusers():
    """Our float64 linear-β table against diffusers' float32 one: equal to float32 precision."""
    ours = linear_alphas_cumprod(T)
    theirs = DDIMScheduler(num_train_timesteps=T, beta_schedule="linear").alphas_cumprod
    assert torch.allclose(ours, theirs.to(F64), rtol=2e-5, atol=0)


# ---------------------------------------------------------------------------------------------------- Euler


@pytest.mark.parametrize("kind", ["gm", "tanh"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [10, 25])
def test_euler_matches_diffusers_karras(steps, prediction, kind):
    sched = EulerDiscreteScheduler(num_train_timesteps=T, beta_schedule="linear", use_karras_sigmas=True,
                                   prediction_type=_pred(prediction))
    sched.set_timesteps(steps)
    ac = sched.alphas_cumprod
    sigmas = sched.sigmas.to(F64)
    assert sigmas[-1] == 0 and len(sigmas) == steps + 1
    x_T = _noise(100 + steps) * sched.init_noise_sigma  # diffusers' Euler state is already x_σ

    net_d = Net(ac, kind, prediction)
    theirs = _run_diffusers(sched, net_d, x_T.clone())

    net_o = Net(ac, kind, prediction)
    den = VPDenoiser(net_o, ac, prediction=prediction, quantize=False)
    ours = euler(den, x_T.clone(), sigmas)

    # diffusers derives t from the float64 Karras σ, we from the float32 σ it keeps: equal to ~1e-4 steps
    _compare(ours, theirs, net_o, net_d, t_atol=1e-3)


# ---------------------------------------------------------------------------------------------------- DPM-Solver++(2M)


@pytest.mark.parametrize("kind", ["gm", "tanh"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("karras", [False, True])
def test_dpmpp_2m_matches_diffusers(karras, steps, prediction, kind):
    sched = DPMSolverMultistepScheduler(num_train_timesteps=T, beta_schedule="linear", algorithm_type="dpmsolver++",
                                        solver_order=2, solver_type="midpoint", use_karras_sigmas=karras,
                                        prediction_type=_pred(prediction))
    sched.set_timesteps(steps)
    ac = sched.alphas_cumprod
    sigmas = sched.sigmas.to(F64)
    assert sigmas[-1] == 0 and len(sigmas) == steps + 1
    z = _noise(200 + steps)

    net_d = Net(ac, kind, prediction)
    theirs = _run_diffusers(sched, net_d, z * sched.init_noise_sigma)

    # diffusers feeds the network integer timesteps (rounded, for Karras σ) while stepping with the exact σ:
    # that is VPDenoiser(quantize=True).
    net_o = Net(ac, kind, prediction)
    den = VPDenoiser(net_o, ac, prediction=prediction, quantize=True)
    ours = dpmpp_2m(den, z * math.sqrt(1 + float(sigmas[0]) ** 2), sigmas)

    _compare(ours, theirs, net_o, net_d)

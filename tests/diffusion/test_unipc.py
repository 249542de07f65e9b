"""UniPC (``unipc``) against diffusers' UniPCMultistepScheduler, and its order of convergence.

The cross-check drives diffusers' scheduler (predict_x0=True, solver_type "bh2" or "bh1", Karras σ or its default
spacing) with the exact Gaussian-mixture denoiser, fed the exact σ of each step as the samplers bench does, and runs
our ``unipc`` on the same σ from the same noise. diffusers keeps its σ in float32 and computes the step
coefficients from them; we hand it the same σ as float64 (``sched.sigmas = sched.sigmas.double()``, the values
unchanged), so both sides compute every coefficient in float64 and the endpoints agree to rounding: max |Δ| ≤ 1e-10
on samples of size ~2 (measured: ≤ 2e-13). With diffusers' own float32 coefficients (what the bench runs) they
agree to the float32 rounding of those coefficients instead (≤ 1e-4, measured ≤ 4e-6; tested below too).
"""
from __future__ import annotations

import math

import pytest
import torch

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.diffusion.samplers import SAMPLERS, dpmpp_2m, unipc
from noisebrush.diffusion.samplers.unipc import LOWER_ORDER_FINAL_BELOW, unipc_weights
from noisebrush.diffusion.schedules import karras
from noisebrush.errors import BadParameter

F64 = torch.float64
SHAPE = (3, 8, 8)
TOL = 1e-10
_GM = GaussianMixture.random(SHAPE, components=8, seed=7)

pytestmark = [pytest.mark.usefixtures("one_thread"),
              # diffusers' schedulers call np.array(tensor), which newer NumPy flags; not ours to fix
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def _z(n: int = 4) -> torch.Tensor:
    return SampleNoise.from_seeds(range(n)).randn(SHAPE, dtype=F64)


def _diffusers(order, steps, solver_type="bh2", karras_sigmas=True, lower_order_final=True, open_end=False,
               float64=True):
    """(our σ, diffusers' final sample in σ-space) for noise _z() through diffusers' UniPC."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=order,
                                              solver_type=solver_type, predict_x0=True,
                                              use_karras_sigmas=karras_sigmas, lower_order_final=lower_order_final)
    sched.set_timesteps(steps)
    if float64:
        sched.sigmas = sched.sigmas.double()
    if open_end:
        # stop at half the last σ instead of 0: without the lowered final order diffusers' step onto σ = 0 solves
        # a singular system, and its bh1 step onto 0 is 0·∞ = NaN; ours returns x̂_0 there
        sched.sigmas[-1] = sched.sigmas[-2] / 2
    sig = sched.sigmas.to(F64).clone()
    smax = float(sig[0])
    sample = _z() * (smax / math.sqrt(1 + smax**2))  # diffusers' VP state x_σ/sqrt(1 + σ²)
    for i, t in enumerate(sched.timesteps):
        s = float(sched.sigmas[i])
        x_sigma = sample * math.sqrt(1 + s * s)
        eps = (x_sigma - _GM(x_sigma, s)) / s
        sample = sched.step(eps, t, sample, return_dict=False)[0]
    return sig, sample.double() * math.sqrt(1 + float(sig[-1]) ** 2)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [5, 10])
@pytest.mark.parametrize("karras_sigmas", [True, False], ids=["karras", "linspace"])
def test_unipc_matches_diffusers(order, steps, karras_sigmas):
    sig, theirs = _diffusers(order, steps, karras_sigmas=karras_sigmas)
    assert sig[-1] == 0 and len(sig) == steps + 1
    ours = unipc(_GM, _z() * sig[0], sig, order=order)
    assert theirs.abs().max() > 0.5  # a real sample
    err = float((ours - theirs).abs().max())
    assert err <= TOL, f"max |ours - diffusers| = {err:.3g}"


@pytest.mark.parametrize("solver_type", ["bh1", "bh2"])
def test_unipc_matches_diffusers_without_lowered_final_order(solver_type):
    """20 steps (ours lowers no order there) against diffusers with lower_order_final=False, on an open end."""
    assert 20 >= LOWER_ORDER_FINAL_BELOW
    sig, theirs = _diffusers(3, 20, solver_type, lower_order_final=False, open_end=True)
    ours = unipc(_GM, _z() * sig[0], sig, order=3, solver_type=solver_type)
    assert float((ours - theirs).abs().max()) <= TOL


def test_unipc_matches_diffusers_float32_coefficients():
    """As the bench runs diffusers: its own float32 σ and coefficients; the difference is their rounding."""
    sig, theirs = _diffusers(3, 10, float64=False)
    ours = unipc(_GM, _z() * sig[0], sig, order=3)
    err = float((ours - theirs).abs().max())
    assert 0 < err <= 1e-4, err


def test_unipc_registry_and_lowered_final_order():
    info = SAMPLERS["unipc"]
    assert not info.stochastic and info.fixed_cost and info.steps_for_nfe(7) == 7 and info.order == 4
    # lower_order_final only changes runs shorter than LOWER_ORDER_FINAL_BELOW steps
    x = _z() * 40.0
    for n, differs in ((6, True), (LOWER_ORDER_FINAL_BELOW, False)):
        sig = karras(n, 0.01, 40.0)
        a, b = unipc(_GM, x, sig), unipc(_GM, x, sig, lower_order_final=False)
        assert (not torch.equal(a, b)) == differs, n


def test_unip2_bh2_is_dpmpp_2m():
    """The order-2 predictor with the paper's ρ = 1/2 and B(h) = 1 − e^{−h} is DPM-Solver++(2M) (midpoint)."""
    sig = karras(12, 0.01, 40.0)
    x = _z() * 40.0
    a = unipc(_GM, x, sig, order=2, corrector=False, lower_order_final=False)
    assert torch.allclose(a, dpmpp_2m(_GM, x, sig), rtol=0, atol=1e-12)


def test_unipc_weights_meet_the_order_conditions():
    """ρ solves Σ_k ρ_k r_k^{j−1} = j!·φ_{j+1}(−h)·(−h)/B̃(h); small steps (series) and large ones (recursion) agree
    with the closed forms of φ_2 and φ_3."""
    for h in (1e-4, 0.3, 2.0):
        c0 = -math.expm1(-h)
        phi2 = (math.expm1(-h) + h) / h**2          # φ_2(−h)
        phi3 = (math.expm1(-h) + h - h * h / 2) / -h**3  # φ_3(−h)
        rks = [-0.7, 1.0]
        big_b, rho = unipc_weights(h, rks, "bh2")
        assert big_b == c0
        want = [1 * phi2 * -h / -c0, 2 * phi3 * -h / -c0]
        got = [sum(r * rk ** (j - 1) for r, rk in zip(rho, rks)) for j in (1, 2)]
        assert got == pytest.approx(want, rel=1e-6 if h < 1e-3 else 1e-12), h
    assert unipc_weights(0.5, [-1.0])[1] == [0.5] and unipc_weights(0.5, []) == (-math.expm1(-0.5), [])


def test_unipc_bad_parameters():
    sig = karras(4, 0.01, 40.0)
    x = _z(1) * 40.0
    with pytest.raises(BadParameter, match="order: 1, 2 or 3"):
        unipc(_GM, x, sig, order=4)
    with pytest.raises(BadParameter, match="solver_type"):
        unipc(_GM, x, sig, solver_type="bh3")


def test_unipc_reads_a1111_name():
    from noisebrush.io.png import parse_a1111

    for name in ("UniPC", "UniPC Karras", "unipc"):
        assert parse_a1111(f"p\nSteps: 8, Sampler: {name}, Seed: 1")["sampler"] == "unipc", name

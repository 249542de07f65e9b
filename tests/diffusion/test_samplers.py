"""Samplers against the exact Gaussian-mixture oracle.

* distribution: every sampler's output gets closer (sliced Wasserstein) to exact data as it spends more NFE;
* on Gaussian data, the per-dimension variance of every sampler's output converges to the exact one;
* order of convergence of the deterministic solvers against a fine reference solve from the same noise, on a
  karras grid and on one whose steps alternate in size;
* batch invariance: a seed renders bit-identically alone and inside a batch;
* shape-agnostic: images, clips, voxels and point sets;
* the callback contract, missing noise, unknown names, the NFE budget and the equivalences the docstrings state.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.diffusion.samplers import DIFFUSION_SAMPLERS, SAMPLERS, adaptive, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m
from noisebrush.diffusion.samplers import get_sampler
from noisebrush.diffusion.samplers import ddim, ddpm, euler, euler_ancestral, ipndm, ipndm_v, unipc
from noisebrush.diffusion.samplers.ipndm import AB_COEFFICIENTS, adams_bashforth_weights
from noisebrush.diffusion.schedules import karras
from noisebrush.errors import BadParameter
from noisebrush.eval.swd import sliced_wasserstein

F64 = torch.float64
SIGMA_MIN, SIGMA_MAX = 0.01, 40.0
NAMES = list(DIFFUSION_SAMPLERS)  # the GAN chain (a generator with a latent) has its own tests (test_gan_sampler.py)
STOCHASTIC = [n for n in NAMES if SAMPLERS[n].stochastic]


pytestmark = pytest.mark.usefixtures("one_thread")


def _sched(n: int) -> torch.Tensor:
    """n steps from σ_max to 0 (the last step is the jump onto σ = 0)."""
    return karras(n, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)


def _sched_open(n: int) -> torch.Tensor:
    """n steps from σ_max down to σ_min, no final jump to 0."""
    return karras(n + 1, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)[:-1]


def _start(seeds, shape, sigma0, dtype=F64):
    noise = SampleNoise.from_seeds(seeds)
    return noise, noise.randn(shape, dtype=dtype) * float(sigma0)


# --------------------------------------------------------------------------------------------------------------
# 1. The sample distribution improves with NFE
# --------------------------------------------------------------------------------------------------------------

SWD_SHAPE = (2, 4, 4)
SWD_N = 512
SWD_SEED = 0  # projections


@functools.lru_cache(maxsize=None)
def _swd_problem():
    gm = GaussianMixture.random(SWD_SHAPE, components=4, seed=0)
    ref = gm.sample(range(10**6, 10**6 + SWD_N))
    # The noise floor: SWD between two independent exact sample sets of the same size.
    floor = sliced_wasserstein(gm.sample(range(2 * 10**6, 2 * 10**6 + SWD_N)), ref, seed=SWD_SEED)
    return gm, ref, floor


def _swd_run(name: str, level: str):
    """(SWD to exact data, mean NFE spent) for sampler ``name`` at a 'low' or 'high' budget."""
    gm, ref, _ = _swd_problem()
    info = SAMPLERS[name]
    kw: dict = {}
    if name == "adaptive":
        sigmas = _sched(10)
        kw = dict(rtol=0.5, atol=0.1) if level == "low" else dict(rtol=0.01, atol=0.002)
    elif name == "langevin":
        sigmas = _sched(3) if level == "low" else _sched(16)
        kw = dict(max_steps=1) if level == "low" else dict(max_steps=4)
    else:
        sigmas = _sched(info.steps_for_nfe(4 if level == "low" else 64))
    stats: dict = {}
    if name in ("adaptive", "langevin"):
        kw["stats"] = stats
    noise, x = _start(range(SWD_N), SWD_SHAPE, sigmas[0])
    calls = []

    def den(x, sigma):
        calls.append(1)
        return gm(x, sigma)

    y = info.fn(den, x, sigmas, noise=noise, **kw)
    assert y.shape == x.shape and torch.isfinite(y).all()
    nfe = sum(stats["nfe"]) / SWD_N if stats else float(len(calls))
    return sliced_wasserstein(y, ref, seed=SWD_SEED), nfe


@pytest.mark.parametrize("name", NAMES)
def test_distribution_improves_with_nfe(name):
    _, _, floor = _swd_problem()
    lo, nfe_lo = _swd_run(name, "low")
    hi, nfe_hi = _swd_run(name, "high")
    msg = f"{name}: SWD {lo:.4f} at NFE≈{nfe_lo:.1f}, {hi:.4f} at NFE≈{nfe_hi:.1f}; exact-vs-exact floor {floor:.4f}"
    assert nfe_hi > 4 * nfe_lo, msg
    assert hi < 0.5 * lo, msg  # clearly better with more evaluations
    assert hi < 1.25 * floor, msg  # and indistinguishable from exact samples at this sample size
    assert lo > 1.5 * floor, msg  # the low budget really is visibly off, so the comparison means something


# The SWD above, at this sample size, cannot see a few per cent of variance miscalibration (the mixture's
# between-component spread dominates it). On Gaussian data the exact variance is known per dimension, and the
# average variance ratio over 32 dimensions and 256 samples has a sampling error of ≈ 1.6 %.

GAUSS_D, GAUSS_N = 32, 256


@functools.lru_cache(maxsize=None)
def _gaussian():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(1, GAUSS_D, generator=g, dtype=F64) * 0.5
    var = torch.rand(1, GAUSS_D, generator=g, dtype=F64) * 0.5 + 0.1
    return GaussianMixture(means, var)


def _gauss_var_ratio(name: str, nfe: int) -> float:
    gm = _gaussian()
    info = SAMPLERS[name]
    kw: dict = {}
    if name == "langevin":  # (1 predictor + 2 corrector evaluations) per level
        sigmas, kw = _sched(max(2, nfe // 3)), dict(max_steps=2)
    elif name == "adaptive":
        sigmas, kw = _sched(10), dict(rtol={8: 0.5, 256: 0.003}[nfe], atol=1e-3)
    else:
        sigmas = _sched(info.steps_for_nfe(nfe))
    noise, x = _start(range(GAUSS_N), (GAUSS_D,), sigmas[0])
    y = info.fn(gm, x, sigmas, noise=noise, **kw)
    return float((y.var(0) / gm.variances[0]).mean())


@pytest.mark.parametrize("name", NAMES)
def test_gaussian_variance_converges(name):
    lo, hi = _gauss_var_ratio(name, 8), _gauss_var_ratio(name, 256)
    msg = f"{name}: per-dimension variance / exact, averaged: {lo:.3f} at NFE 8, {hi:.3f} at NFE 256"
    assert abs(hi - 1) < 0.06, msg
    assert abs(hi - 1) < abs(lo - 1), msg


# --------------------------------------------------------------------------------------------------------------
# 2. Order of convergence of the deterministic solvers
# --------------------------------------------------------------------------------------------------------------

ORDER_SHAPE = (2, 4, 4)
ORDER_N = 8
ORDER_STEPS = (64, 128, 256)  # the asymptotic regime for all of them on this problem (see the report)
REF_STEPS = 1000


@functools.lru_cache(maxsize=None)
def _order_problem():
    gm = GaussianMixture.random(ORDER_SHAPE, components=4, seed=0)
    _, x = _start(range(100, 100 + ORDER_N), ORDER_SHAPE, SIGMA_MAX)
    ref = dpmpp_3m(gm, x, _sched_open(REF_STEPS))
    return gm, x, ref


def _rms(a, b) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def test_reference_solutions_agree():
    """The dpmpp_3m reference is converged: it matches twice the steps and an independent tight adaptive solve."""
    gm, x, ref = _order_problem()
    finer = dpmpp_3m(gm, x, _sched_open(2 * REF_STEPS))
    e_fine = _rms(ref, finer)
    assert e_fine < 1e-6, f"dpmpp_3m {REF_STEPS} vs {2 * REF_STEPS} steps: RMS {e_fine:.2e}"
    stats: dict = {}
    ad = adaptive(gm, x[:4], _sched_open(10), rtol=1e-6, atol=1e-6, max_nfe=100_000, stats=stats)
    assert all(abs(s[-1] / SIGMA_MIN - 1) < 1e-9 for s in stats["sigmas"]), "adaptive did not reach σ_min"
    e_ad = _rms(ref[:4], ad)
    assert e_ad < 2e-5, f"adaptive(rtol=atol=1e-6) vs dpmpp_3m reference: RMS {e_ad:.2e}"
    scale = float(ref.std())
    assert scale > 0.1  # the errors above are small relative to the data


ORDER_CASES = {
    "euler": (euler, {}, (0.8, 1.3)),
    "ddim": (ddim, {}, (0.8, 1.3)),
    "heun": (SAMPLERS["heun"].fn, {}, (1.7, 2.5)),
    "dpmpp_2m-midpoint": (dpmpp_2m, dict(solver_type="midpoint"), (1.7, 2.5)),
    "dpmpp_2m-heun": (dpmpp_2m, dict(solver_type="heun"), (1.7, 2.5)),
    "dpmpp_3m": (dpmpp_3m, {}, (2.6, 3.6)),
    "ipndm_v": (ipndm_v, {}, (3.5, 4.5)),
    "unipc": (unipc, {}, (3.5, 4.5)),
}


def _sched_jittered(n: int, rho: float = 7.0) -> torch.Tensor:
    """Like _sched_open(n), but consecutive steps alternate 1:2 in the karras ramp variable, so multistep methods
    must really handle unequal steps (using h instead of the previous h would still be 2nd order on a smooth grid)."""
    w = torch.tensor([1.0 if i % 2 == 0 else 2.0 for i in range(n)], dtype=F64)
    u = torch.cat([torch.zeros(1, dtype=F64), w.cumsum(0) / w.sum()])
    lo, hi = SIGMA_MIN ** (1 / rho), SIGMA_MAX ** (1 / rho)
    s = (hi + u * (lo - hi)) ** rho
    s[0], s[-1] = SIGMA_MAX, SIGMA_MIN
    return s


@pytest.mark.parametrize("grid", ["karras", "jittered"])
@pytest.mark.parametrize("case", list(ORDER_CASES))
def test_order_of_convergence(case, grid):
    fn, kw, (lo, hi) = ORDER_CASES[case]
    gm, x, ref = _order_problem()
    sched = _sched_open if grid == "karras" else _sched_jittered
    errs = [_rms(fn(gm, x, sched(n), **kw), ref) for n in ORDER_STEPS]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    msg = (f"{case} on the {grid} grid: errors {['%.3e' % e for e in errs]} at {ORDER_STEPS} steps, "
           f"orders {['%.2f' % o for o in orders]}")
    assert all(lo <= o <= hi for o in orders), msg
    name = case.split("-")[0]
    # The registry's declared order agrees with the measured one.
    assert SAMPLERS[name].order == round(sum(orders) / len(orders)), msg


def test_ipndm_with_the_published_weights_is_second_order_on_a_smooth_grid_and_first_on_a_rough_one():
    """iPNDM's fixed Adams–Bashforth weights assume equal steps: on Karras' smooth ramp that costs two orders (the
    registry says 2), on steps alternating 1:2 three; ipndm_v's weights for the actual steps keep order 4 on both
    (ORDER_CASES)."""
    gm, x, ref = _order_problem()
    for sched, (lo, hi) in ((_sched_open, (1.7, 2.4)), (_sched_jittered, (0.8, 1.3))):
        errs = [_rms(ipndm(gm, x, sched(n)), ref) for n in ORDER_STEPS]
        orders = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
        assert all(lo <= o <= hi for o in orders), (sched.__name__, errs, orders)
    assert SAMPLERS["ipndm"].order == 2 and SAMPLERS["ipndm_v"].order == 4


@pytest.mark.parametrize("p", [2, 3])
def test_unipc_corrector_raises_the_order_by_one(p):
    """UniP-p alone converges with order p; with UniC-p after each step (no extra evaluation) with order p + 1, on
    both grids (the registry's 4 is UniPC-3 with its corrector, ORDER_CASES). Ranges as for the other solvers."""
    gm, x, ref = _order_problem()
    for sched in (_sched_open, _sched_jittered):
        for corrector, (lo, hi) in ((False, (p - 0.3, p + 0.5)), (True, (p + 0.6, p + 1.5))):
            errs = [_rms(unipc(gm, x, sched(n), order=p, corrector=corrector), ref) for n in ORDER_STEPS]
            orders = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
            assert all(lo <= o <= hi for o in orders), (p, corrector, sched.__name__, errs, orders)


def test_adams_bashforth_weights_reduce_to_the_fixed_ones_on_equal_steps():
    for k, fixed in AB_COEFFICIENTS.items():
        nodes = [8.0 + 0.5 * j for j in range(k)]  # newest first: σ falls, so the newest is the smallest
        h = -0.5
        w = adams_bashforth_weights(nodes, nodes[0], nodes[0] + h)
        assert w == pytest.approx([h * c for c in fixed], rel=1e-12, abs=1e-15), k
    # so on an equally spaced σ grid the two samplers agree
    gm, x, _ = _order_problem()
    even = torch.linspace(SIGMA_MAX, SIGMA_MIN, 12, dtype=F64)
    assert torch.allclose(ipndm(gm, x, even), ipndm_v(gm, x, even), rtol=1e-9, atol=1e-9)
    with pytest.raises(BadParameter, match="order: 1, 2, 3 or 4"):
        ipndm(gm, x, even, order=5)


# --------------------------------------------------------------------------------------------------------------
# 3. Batch invariance
# --------------------------------------------------------------------------------------------------------------

BATCH_SEEDS = [31, 32, 33, 34, 35, 36, 37, 38]
POS = 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_batch_invariance(name, dtype):
    shape = (3, 8, 8)
    gm = GaussianMixture.random(shape, components=3, seed=1)
    sigmas = _sched(12)
    kw_b: dict = {}
    kw_1: dict = {}
    if name in ("adaptive", "langevin"):
        kw_b["stats"], kw_1["stats"] = {}, {}
    nb, xb = _start(BATCH_SEEDS, shape, sigmas[0], dtype)
    n1, x1 = _start([BATCH_SEEDS[POS]], shape, sigmas[0], dtype)
    assert torch.equal(xb[POS:POS + 1], x1)
    yb = SAMPLERS[name].fn(gm, xb, sigmas, noise=nb, **kw_b)
    y1 = SAMPLERS[name].fn(gm, x1, sigmas, noise=n1, **kw_1)
    assert yb.dtype == dtype and y1.dtype == dtype
    diff = float((yb[POS:POS + 1].double() - y1.double()).abs().max())
    assert torch.equal(yb[POS:POS + 1], y1), f"{name} {dtype}: seed {BATCH_SEEDS[POS]} alone vs in batch, max |Δ| {diff}"
    assert not torch.equal(yb[POS], yb[0])  # different seeds, different pictures
    if name == "adaptive":
        sb, s1 = kw_b["stats"], kw_1["stats"]
        for key in ("nfe", "accepted", "rejected", "sigmas"):
            assert sb[key][POS] == s1[key][0], f"adaptive stats[{key!r}]: {sb[key][POS]} in batch vs {s1[key][0]} alone"
        # The batch really took different step sequences per sample, so the subset path was exercised.
        assert len(set(sb["nfe"])) > 1, sb["nfe"]
    if name == "langevin":
        sb, s1 = kw_b["stats"], kw_1["stats"]
        assert sb["levels"] == s1["levels"]
        per_b = [lvl[POS] for lvl in sb["corrector_steps"]]
        per_1 = [lvl[0] for lvl in s1["corrector_steps"]]
        assert per_b == per_1, f"langevin corrector steps: {per_b} in batch vs {per_1} alone"
        assert sb["nfe"][POS] == s1["nfe"][0]
        assert any(len(set(lvl)) > 1 for lvl in sb["corrector_steps"]), sb["corrector_steps"]


# --------------------------------------------------------------------------------------------------------------
# 6. Shape-agnostic
# --------------------------------------------------------------------------------------------------------------

SHAPES = {
    "image": (2, 4, 4),  # (N, C, H, W)
    "clip": (2, 3, 4, 4),  # (N, C, T, H, W)
    "voxels": (1, 4, 4, 4),  # (N, C, D, H, W)
    "points": (8, 3),  # (N, P, 3)
}


@functools.lru_cache(maxsize=None)
def _shape_problem(kind: str):
    shape = SHAPES[kind]
    gm = GaussianMixture.random(shape, components=3, seed=2)
    flat = GaussianMixture(gm.means, gm.variances, gm.weights)  # the same mixture on flattened samples
    lp_exact = gm.log_prob(gm.sample(range(5000, 5064)), SIGMA_MIN)
    return gm, flat, lp_exact


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("name", NAMES)
def test_shape_agnostic(name, kind):
    shape = SHAPES[kind]
    gm, flat, lp_exact = _shape_problem(kind)
    d = math.prod(shape)
    sigmas = _sched(16)
    seeds = [1, 2, 3]
    noise, x = _start(seeds, shape, sigmas[0])
    y = SAMPLERS[name].fn(gm, x, sigmas, noise=noise)
    assert y.shape == (3, *shape) and y.dtype == F64 and torch.isfinite(y).all()
    # The sampler treats a sample as an opaque block of numbers: the same problem on flattened samples gives
    # bit-identical results.
    noise_f, x_f = _start(seeds, (d,), sigmas[0])
    assert torch.equal(x_f, x.reshape(3, d))
    y_f = SAMPLERS[name].fn(flat, x_f, sigmas, noise=noise_f)
    assert torch.equal(y.reshape(3, d), y_f), f"{name} on {kind}: differs from the flattened run"
    # And the result looks like data: its density under the (nearly clean) mixture is in the range of exact
    # samples' (starting noise scores around -1e6 here).
    lp = gm.log_prob(y, SIGMA_MIN)
    assert lp.min() > lp_exact.min() - d, f"{name} on {kind}: log p {lp.tolist()} vs exact ≥ {float(lp_exact.min()):.1f}"


# --------------------------------------------------------------------------------------------------------------
# 7. Callback, missing noise, unknown names; NFE budget; equivalences the docstrings promise
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in NAMES if n != "adaptive"])
def test_callback_once_per_step(name):
    shape = (2, 4, 4)
    gm = GaussianMixture.random(shape, components=3, seed=3)
    sigmas = _sched(7)
    noise, x = _start([4, 5], shape, sigmas[0])
    seen = []

    def cb(x, x0_hat, sigma, step):
        seen.append((x, x.clone(), x0_hat.clone(), sigma, step))

    y = SAMPLERS[name].fn(gm, x, sigmas, noise=noise, callback=cb)
    assert [s[4] for s in seen] == list(range(len(sigmas) - 1))
    assert [s[3] for s in seen] == pytest.approx(sigmas[:-1].tolist(), rel=1e-12)
    assert all(isinstance(s[3], float) for s in seen)
    for live, xc, x0c, sigma, step in seen:
        assert xc.shape == x.shape and x0c.shape == x.shape
        assert torch.equal(live, xc), f"{name}: x handed to the callback at step {step} was modified afterwards"
        # x̂_0 is the denoiser's output at (x, σ) of that step
        assert torch.allclose(x0c, gm(xc, sigma), rtol=0, atol=1e-12), f"{name}: step {step}"
    assert torch.equal(seen[0][1], x)
    assert torch.isfinite(y).all()


def test_adaptive_callback_per_iteration():
    shape = (2, 4, 4)
    gm = GaussianMixture.random(shape, components=3, seed=3)
    sigmas = _sched(7)
    _, x = _start([4, 5, 6], shape, sigmas[0])
    seen, stats = [], {}
    adaptive(gm, x, sigmas, rtol=0.05, stats=stats,
             callback=lambda x, x0, sigma, step: seen.append((x.shape, x0.shape, sigma.clone(), step)))
    attempts = [a + r for a, r in zip(stats["accepted"], stats["rejected"])]
    assert [s[3] for s in seen] == list(range(max(attempts)))
    for xs, x0s, sig, _ in seen:
        assert xs == x.shape and x0s == x.shape
        assert sig.dtype == F64 and sig.shape == (3,)
    assert all((seen[i + 1][2] <= seen[i][2]).all() for i in range(len(seen) - 1))
    assert torch.allclose(seen[-1][2], torch.full((3,), SIGMA_MIN, dtype=F64), rtol=1e-10)


def _no_noise_cases():
    cases = [(n, {}) for n in STOCHASTIC]
    cases += [("ddim", dict(eta=0.5)), ("heun", dict(s_churn=5.0)), ("euler_ancestral", dict(eta=1.0)),
              ("dpmpp_2m_sde", dict(eta=0.5))]
    return cases


@pytest.mark.parametrize("name,kw", _no_noise_cases(), ids=lambda v: v if isinstance(v, str) else str(v))
def test_stochastic_samplers_need_noise(name, kw):
    gm = GaussianMixture.random((2, 4, 4), components=2, seed=4)
    sigmas = _sched(4)
    _, x = _start([0, 1], (2, 4, 4), sigmas[0])
    with pytest.raises(BadParameter, match="noise"):
        SAMPLERS[name].fn(gm, x, sigmas, **kw)


def test_deterministic_settings_need_no_noise():
    gm = GaussianMixture.random((2, 4, 4), components=2, seed=4)
    sigmas = _sched(4)
    _, x = _start([0, 1], (2, 4, 4), sigmas[0])
    for name, info in SAMPLERS.items():
        if not info.stochastic:
            assert torch.isfinite(info.fn(gm, x, sigmas)).all(), name
    # η = 0 switches the noise off
    assert torch.isfinite(euler_ancestral(gm, x, sigmas, eta=0.0)).all()
    assert torch.isfinite(dpmpp_2m_sde(gm, x, sigmas, eta=0.0)).all()


def test_get_sampler():
    for name in NAMES:
        assert get_sampler(name) is SAMPLERS[name]
        assert SAMPLERS[name].name == name
    with pytest.raises(BadParameter, match="sampler"):
        get_sampler("euler_maruyama_typo")
    with pytest.raises(BadParameter):
        get_sampler("")


FIXED_COST = [n for n in NAMES if SAMPLERS[n].fixed_cost]


@pytest.mark.parametrize("name", ["adaptive", "langevin"])
def test_steps_for_nfe_refuses_run_time_cost(name):
    with pytest.raises(BadParameter, match=name):
        SAMPLERS[name].steps_for_nfe(10)


@pytest.mark.parametrize("name", FIXED_COST)
def test_steps_for_nfe_spends_at_most_the_budget(name):
    gm = GaussianMixture.random((2, 4, 4), components=2, seed=5)
    info = SAMPLERS[name]
    for budget in (1, 2, 3, 4, 7, 10):
        sigmas = _sched(info.steps_for_nfe(budget))
        noise, x = _start([0, 1], (2, 4, 4), sigmas[0])
        calls = []

        def den(x, sigma):
            calls.append(1)
            return gm(x, sigma)

        info.fn(den, x, sigmas, noise=noise)
        assert len(calls) <= budget, f"{name}: {len(calls)} evaluations for a budget of {budget}"
        assert len(calls) >= budget - 1, f"{name}: only {len(calls)} evaluations for a budget of {budget}"


def test_ancestral_forms_coincide():
    """ddpm, euler_ancestral(η=1) and ddim(η=1) are the same chain (ancestral.py docstring); dpmpp_2m_sde with η=0
    is dpmpp_2m; ddim(η=0) is euler."""
    shape = (2, 4, 4)
    gm = GaussianMixture.random(shape, components=3, seed=6)
    sigmas = _sched(10)
    outs = []
    for fn, kw in [(ddpm, {}), (euler_ancestral, dict(eta=1.0)), (ddim, dict(eta=1.0))]:
        noise, x = _start([7, 8, 9], shape, sigmas[0])
        outs.append(fn(gm, x, sigmas, noise=noise, **kw))
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-10)
    assert torch.allclose(outs[0], outs[2], rtol=0, atol=1e-10)
    _, x = _start([7, 8, 9], shape, sigmas[0])
    for st in ("midpoint", "heun"):
        a = dpmpp_2m(gm, x, sigmas, solver_type=st)
        b = dpmpp_2m_sde(gm, x, sigmas, eta=0.0, solver_type=st)
        assert torch.allclose(a, b, rtol=0, atol=1e-10), st
    assert torch.equal(ddim(gm, x, sigmas), euler(gm, x, sigmas))

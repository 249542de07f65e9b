"""Sampler benchmark: every noisebrush sampler and diffusers' schedulers, driven by the same exact denoiser.

    python -m noisebrush.bench samplers [--quick] [--json out.json] [--nfe 5,10,20,50] [--samples 256]
                                        [--mixture default|tight|both]

The problem: a Gaussian mixture (:class:`~noisebrush.diffusion.oracle.GaussianMixture`) over 3×32×32 "images",
whose ideal denoiser is known in closed form, under DDPM's linear-β VP table (T = 1000, σ from 0.01 to 157.4).
Two mixtures (``--mixture``, both by default, reported separately):

* ``default`` — 16 components with per-pixel spreads 0.05–0.3 and means smooth on a 4×4 grid;
* ``tight`` — 64 components with spreads 0.02–0.08 and means smooth on an 8×8 grid: four times the boundaries a
  sample can fall across, and components so narrow that the denoiser's output moves from the component's mean to
  the noisy sample itself (its weight v/(v + σ²) from 0 to 1) only at σ ≈ 0.02–0.08, in the last step or two
  before σ_min, where the default mixture spreads that move over σ ≈ 0.05–0.3. The finer grid gives the 64 means
  192 directions to differ in (a 4×4 grid gives 48, fewer than the components).

Our samplers run on Karras' schedule (ρ = 7), and the Euler and multistep ones also on even steps in log σ
(``exponential`` rows, the spacing diffusers calls exponential σ). Everyone starts from the same noise
x_T = σ_max·z (held-out seeds, none used in tuning). For each sampler and
each budget of network evaluations (NFE — a Heun step costs 2) it measures

* ``endpoint_rmse`` — RMSE of the final sample to a fine solve of the same probability-flow ODE from the same
  noise (third-order multistep, 1000 Karras steps down to σ = 1e-4; deterministic samplers only); also the
  per-sample RMSE's median (``endpoint_median``) and 90th percentile (``endpoint_p90``), and ``flips``: samples
  that sit near a boundary between two mixture components can end in the other one (the most probable component
  of the endpoint at σ_min differs from the fine solve's; a flip costs a per-sample RMSE of 0.6–0.8 in either
  mixture), and at NFE ≤ 20 those 1–4% of samples dominate ``endpoint_rmse`` for every solver, ours and
  diffusers' alike; ``far`` counts the samples whose RMSE exceeds FLIP = 0.1 for any reason (a flip, or a solver
  that overshoots inside the right component, which the tight mixture provokes at NFE 5);
* ``swd`` — sliced Wasserstein distance to exact samples of the data;
* ``overhead_ms`` — wall time per step beyond the denoiser's own time; ``overhead_pct`` relates it to one
  forward pass of a 32×32 UNet (diffusers' UNet2DModel, about 9M parameters) at the same batch size.

diffusers' schedulers (DDIM, PNDM, Euler, Heun, LMS, DPM-Solver++ 2M/3M, UniPC 2/3, DEIS 2/3) each run with every
schedule option they have: Karras σ (the unmarked rows), their default spacing (``default``), and exponential
and beta σ; DDIM and PNDM, which have none of those, with 'trailing' spacing (unmarked, so they start at σ_max)
and their default 'leading' one. Every evaluation gets its exact σ (rounding of timesteps to the training grid
does not count against them). ``*+tuned`` rows use a σ-schedule learned for this mixture and NFE by gradient
descent through the solver on separate training noise, judged on separate held-out noise
(:func:`noisebrush.diffusion.tuning.learn_schedule`); the learned schedules ship in ``noisebrush/bench/tuned/``
(``--retune`` learns them again). The goal table (JSON ``"goal"``) puts, at NFE 5
and 10 for each mixture, our best row (lowest median) next to diffusers' best, with the ratio of the medians.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from noisebrush.bench.common import BenchParser, comma_separated, write_report
from noisebrush.diffusion import SAMPLERS, GaussianMixture, SampleNoise, exponential, karras, vp_linear
from noisebrush.diffusion.schedules import alphas_cumprod_to_sigmas, linear_alphas_cumprod
from noisebrush.diffusion.tuning import learn_schedule, load_schedule, save_schedule
from noisebrush.errors import BadParameter
from noisebrush.eval.swd import sliced_wasserstein

TUNED_DIR = Path(__file__).with_name("tuned")
DETERMINISTIC = ["ddim", "euler", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "ipndm_v", "unipc", "adaptive"]
STOCHASTIC = ["ddpm", "euler_ancestral", "dpmpp_2m_sde", "langevin"]
QUICK = ["euler", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "unipc", "ddpm", "langevin", "adaptive"]
TUNED = ["dpmpp_2m", "dpmpp_3m"]
#: ours also on evenly spaced log σ (``schedules.exponential``), the spacing diffusers offers as exponential σ
EXPONENTIAL = ["euler", "dpmpp_2m", "dpmpp_3m", "ipndm_v", "unipc"]
QUICK_EXPONENTIAL = ["dpmpp_2m", "unipc"]
TRAIN_SEED, VALID_SEED, EVAL_SEED, DATA_SEED = 500_000, 600_000, 0, 1_000_000
#: the two problems (GaussianMixture.random's arguments); the module docstring says why these two
MIXTURES = {"default": dict(components=16, std_range=(0.05, 0.3), coarse=4),
            "tight": dict(components=64, std_range=(0.02, 0.08), coarse=8)}
GOAL_NFE = (5, 10)  # the budgets of the goal table (issue 19: "fewer steps at the same quality")
F64 = torch.float64


class Timed:
    """A denoiser wrapper that adds up the time spent inside the denoiser."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, x, sigma, **kw):
        t = time.perf_counter()
        out = self.fn(x, sigma, **kw)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


class BatchDenoiser:
    """The mixture's exact denoiser computed for all samples at one σ in a few matrix products
    (:meth:`GaussianMixture.denoise_batch`) instead of sample by sample (about ten times faster at 256 samples
    here), equal up to the rounding of batched kernels (~1e-15, tested), which no metric here can see. Samples at
    different σ (``adaptive``) are grouped by σ. Every sampler of the bench, ours and diffusers', goes through it."""

    def __init__(self, gm: GaussianMixture):
        self.gm = gm

    def __call__(self, x: torch.Tensor, sigma, **_) -> torch.Tensor:
        n = x.shape[0]
        s = torch.as_tensor(sigma, dtype=F64).detach().cpu().reshape(-1).expand(n)
        xs = x.detach().to("cpu", F64)
        out = torch.empty_like(xs)
        for v in s.unique().tolist():
            idx = (s == v).nonzero().squeeze(1)
            out[idx] = self.gm.denoise_batch(xs[idx], torch.tensor(v, dtype=F64))
        return out.to(x.dtype)

    def component(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The most probable mixture component of each sample seen at noise level σ (its mode)."""
        return self.gm.component(x, sigma)


@dataclass
class Problem:
    gm: GaussianMixture
    components: int
    seed: int
    shape: tuple
    sigma_min: float
    sigma_max: float
    alphas_cumprod: torch.Tensor
    x_T: torch.Tensor
    reference: torch.Tensor
    reference_check: float
    data: torch.Tensor
    reference_modes: torch.Tensor | None = None  # the component each reference sample ends in
    mixture: str = "default"
    den: BatchDenoiser | None = None  # the fast exact denoiser every run uses (the mixture itself when None)

    @property
    def key(self) -> str:
        tag = "" if self.mixture == "default" else f"-{self.mixture}"  # the default's key names its tuned files
        return f"gmm{self.components}{tag}-{'x'.join(map(str, self.shape))}-seed{self.seed}"

    @property
    def denoiser(self):
        return self.den if self.den is not None else self.gm


def reference_solve(gm, x_T: torch.Tensor, sigma_max: float, steps: int) -> torch.Tensor:
    """A fine solve of the probability-flow ODE: 3rd-order multistep on Karras steps down to σ = 1e-4, then x̂_0."""
    sig = torch.cat([karras(steps, 1e-4, sigma_max)[:-1], torch.zeros(1, dtype=torch.float64)])
    return SAMPLERS["dpmpp_3m"].fn(gm, x_T, sig)


def make_problem(samples: int, data_samples: int, mixture: str = "default", seed: int = 0, ref_steps: int = 1000,
                 shape=(3, 32, 32), log=print) -> Problem:
    spec = MIXTURES[mixture]
    gm = GaussianMixture.random(shape, components=spec["components"], seed=seed, std_range=spec["std_range"],
                                coarse=spec["coarse"])
    den = BatchDenoiser(gm)
    ac = linear_alphas_cumprod(1000)
    table = alphas_cumprod_to_sigmas(ac)
    smin, smax = float(table[0]), float(table[-1])
    x_T = SampleNoise.from_seeds(range(EVAL_SEED, EVAL_SEED + samples)).randn(shape, dtype=torch.float64) * smax
    t = time.perf_counter()
    ref = reference_solve(den, x_T, smax, ref_steps)
    k = min(samples, CHECK_SAMPLES)
    half = reference_solve(den, x_T[:k], smax, ref_steps // 2)
    check = float((ref[:k] - half).pow(2).mean().sqrt())
    log(f"{mixture} mixture: reference {ref_steps} steps in {time.perf_counter() - t:.1f}s; differs from a "
        f"{ref_steps // 2}-step solve by {check:.1e} RMSE (first {k} samples)")
    data = gm.sample(range(DATA_SEED, DATA_SEED + data_samples))
    return Problem(gm, spec["components"], seed, tuple(shape), smin, smax, ac, x_T, ref, check, data,
                   den.component(ref, smin), mixture, den)


TRIM = 0.1  # learning ignores the worst 10% of training samples (mode-boundary samples; see diffusion.tuning)
TUNE_ITERS = 300  # Adam steps of a learned schedule (a few seconds each on the batched mixture)
FLIP = 0.1  # a per-sample RMSE above this: far from the fine solve (``far``; before this metric there was "flips")
CHECK_SAMPLES = 32  # the reference's accuracy is checked against a half-as-fine solve of this many samples
P90 = 0.9   # the upper quantile of the per-sample RMSE the goal table reports (linear interpolation)


def _metrics(p: Problem, out: torch.Tensor, deterministic: bool) -> dict:
    m = {"endpoint_rmse": None, "endpoint_median": None, "endpoint_p90": None, "flips": None, "far": None}
    if deterministic:
        per = (out.double() - p.reference).pow(2).flatten(1).mean(1).sqrt()
        modes = p.denoiser.component(out, p.sigma_min) if isinstance(p.denoiser, BatchDenoiser) else None
        m = {"endpoint_rmse": float(per.pow(2).mean().sqrt()), "endpoint_median": float(per.median()),
             "endpoint_p90": float(torch.quantile(per, P90)), "far": int((per > FLIP).sum()),
             "flips": None if modes is None else int((modes != p.reference_modes).sum())}
    return {**m, "swd": sliced_wasserstein(out, p.data, projections=128, seed=0)}


def _run(p: Problem, fn, steps: int) -> tuple[torch.Tensor, float, Timed]:
    """(output, overhead seconds per step, the timed denoiser with its call count)."""
    den = Timed(p.denoiser)
    t = time.perf_counter()
    out = fn(den)
    total = time.perf_counter() - t
    return out, (total - den.seconds) / max(steps, 1), den


# ---------------------------------------------------------------- noisebrush


def tuned_schedule(p: Problem, sampler: str, nfe: int, retune: bool, train: int, log=print) -> torch.Tensor:
    """The stored learned schedule of ``sampler`` at ``nfe`` for this mixture, or (``retune``) a new one, learned
    by :func:`noisebrush.diffusion.tuning.learn_schedule` on ``train`` training noises and judged on 64 held-out
    ones, all separate from the evaluation noises."""
    path = tuned_path(p, sampler, nfe)
    if path.exists() and not retune:
        return load_schedule(str(path))
    steps = SAMPLERS[sampler].steps_for_nfe(nfe)
    den = p.denoiser or p.gm
    x_T = SampleNoise.from_seeds(range(TRAIN_SEED, TRAIN_SEED + train)).randn(p.shape, dtype=torch.float64) * p.sigma_max
    xv = SampleNoise.from_seeds(range(VALID_SEED, VALID_SEED + 64)).randn(p.shape, dtype=torch.float64) * p.sigma_max
    ref, rv = (reference_solve(den, x, p.sigma_max, 1000) for x in (x_T, xv))
    init = karras(steps, p.sigma_min, p.sigma_max)
    sig, info = learn_schedule(p.gm.denoise_batch, sampler, nfe, x_T, ref, init, valid=(xv, rv), iters=TUNE_ITERS,
                               lr=0.05, batch=min(64, train), trim=TRIM, every=10, valid_denoiser=den)
    info.update(problem=p.key, train_seeds=[TRAIN_SEED, TRAIN_SEED + train], validation_seeds=[VALID_SEED, VALID_SEED + 64])
    log(f"learned {sampler}@{nfe}: held-out median per-sample RMSE {info['held_out_before']['median']:.2e} (Karras) "
        f"-> {info['held_out_after']['median']:.2e} in {info['seconds']}s")
    TUNED_DIR.mkdir(exist_ok=True)
    save_schedule(str(path), sig, info)
    return sig


def ours(p: Problem, name: str, nfe: int, tuned: torch.Tensor | None = None, schedule: str = "karras") -> dict:
    """One row of our sampler ``name`` at ``nfe``: on Karras' schedule (DDIM: its trailing VP grid), on
    ``schedule='exponential'`` (even steps in log σ), or on a ``tuned`` schedule."""
    info = SAMPLERS[name]
    n = len(p.x_T)
    noise = lambda: SampleNoise.from_seeds(range(EVAL_SEED + 7919, EVAL_SEED + 7919 + n))  # noqa: E731
    if tuned is not None:
        schedule = "tuned"
    elif name == "ddim":
        schedule = "trailing"
    label = name + ("+tuned" if tuned is not None else f" {schedule}" if schedule == "exponential" else "")
    row = {"impl": "noisebrush", "mixture": p.mixture, "sampler": label, "schedule": schedule, "nfe": nfe}
    if name == "adaptive":
        # the loosest-to-tightest tolerance whose mean NFE stays within the budget (calibrated on 8 samples)
        sig = karras(4, p.sigma_min, p.sigma_max)
        chosen = None
        for rtol in [0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.003, 0.002, 0.001]:
            st: dict = {}
            info.fn(p.denoiser, p.x_T[:8], sig, rtol=rtol, atol=rtol / 10, stats=st)
            if statistics.mean(st["nfe"]) > nfe:
                break
            chosen = rtol
        if chosen is None:
            return {**row, "endpoint_rmse": None, "endpoint_median": None, "endpoint_p90": None, "flips": None,
                    "far": None, "swd": None, "overhead_ms": None, "nfe_used": None,
                    "note": "no tolerance fits the budget"}
        st = {}
        out, ovh, den = _run(p, lambda d: info.fn(d, p.x_T, sig, rtol=chosen, atol=chosen / 10, stats=st),
                             max(1, round(statistics.mean(st.get("nfe", [nfe])))))
        used = statistics.mean(st["nfe"])
        return {**row, **_metrics(p, out, True), "overhead_ms": ovh * 1e3, "nfe_used": used, "note": f"rtol={chosen}"}
    if name == "langevin":
        levels = max(1, (nfe + 1) // 2)
        sig = karras(levels, p.sigma_min, p.sigma_max)
        st = {}
        out, ovh, den = _run(p, lambda d: info.fn(d, p.x_T, sig, noise=noise(), max_steps=1, stats=st), nfe)
        return {**row, **_metrics(p, out, False), "overhead_ms": ovh * 1e3, "nfe_used": statistics.mean(st["nfe"]),
                "note": "1 corrector step per level"}
    steps = info.steps_for_nfe(nfe)
    if tuned is not None:
        sig = tuned
    elif name == "ddim":
        sig = vp_linear(steps, spacing="trailing")  # DDIM's own discretization (matches diffusers' DDIM)
    elif schedule == "exponential":
        sig = exponential(steps, p.sigma_min, p.sigma_max)
    else:
        sig = karras(steps, p.sigma_min, p.sigma_max)
    sig = sig.clone()
    sig[0] = p.sigma_max
    kw = {"noise": noise()} if info.stochastic else {}
    out, ovh, den = _run(p, lambda d: info.fn(d, p.x_T, sig, **kw), steps)
    return {**row, **_metrics(p, out, not info.stochastic), "overhead_ms": ovh * 1e3, "nfe_used": den.calls}


def tuned_path(p: Problem, sampler: str, nfe: int) -> Path:
    """Where :func:`tuned_schedule` keeps the fitted schedule of (problem, sampler, NFE)."""
    return TUNED_DIR / f"{p.key}-{sampler}-nfe{nfe}.json"


# ---------------------------------------------------------------- diffusers

#: schedule options of the σ-based schedulers: (label, config); the Karras rows keep the scheduler's bare name
SIGMA_OPTIONS = [("karras", dict(use_karras_sigmas=True)), ("default", {}),
                 ("exponential", dict(use_exponential_sigmas=True)), ("beta", dict(use_beta_sigmas=True))]
#: DDIM and PNDM have only timestep spacings: 'trailing' (starts at σ_max) unmarked, their default 'leading'
SPACING_OPTIONS = [("trailing", dict(timestep_spacing="trailing")), ("default", {})]


def diffusers_configs(quick: bool):
    """[(row name, schedule label, scheduler, state space)] for every scheduler and each of its schedule options.
    ``space``: 'vp' schedulers hold x_σ/sqrt(1 + σ²), 've' ones x_σ itself. ``quick`` keeps the Karras/trailing
    and default rows."""
    import diffusers as df  # lazy: diffusers is a test/bench extra; the rest of this bench runs without it

    base = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    dpm = dict(algorithm_type="dpmsolver++")
    families = [
        ("DDIM", df.DDIMScheduler, dict(set_alpha_to_one=True, clip_sample=False), "vp", SPACING_OPTIONS),
        ("PNDM", df.PNDMScheduler, dict(skip_prk_steps=True, set_alpha_to_one=True), "vp", SPACING_OPTIONS),
        ("Euler", df.EulerDiscreteScheduler, {}, "ve", SIGMA_OPTIONS),
        ("Heun", df.HeunDiscreteScheduler, {}, "ve", SIGMA_OPTIONS),
        ("LMS", df.LMSDiscreteScheduler, {}, "ve", SIGMA_OPTIONS),
        ("DPM++2M", df.DPMSolverMultistepScheduler, dict(solver_order=2, **dpm), "vp", SIGMA_OPTIONS),
        ("DPM++3M", df.DPMSolverMultistepScheduler, dict(solver_order=3, **dpm), "vp", SIGMA_OPTIONS),
        ("UniPC-2", df.UniPCMultistepScheduler, dict(solver_order=2), "vp", SIGMA_OPTIONS),
        ("UniPC-3", df.UniPCMultistepScheduler, dict(solver_order=3), "vp", SIGMA_OPTIONS),
        ("DEIS-2", df.DEISMultistepScheduler, dict(solver_order=2), "vp", SIGMA_OPTIONS),
        ("DEIS-3", df.DEISMultistepScheduler, dict(solver_order=3), "vp", SIGMA_OPTIONS),
    ]
    out = []
    for name, cls, kw, space, options in families:
        for i, (label, opt) in enumerate(options):
            if quick and i > 1:
                continue
            out.append((name if i == 0 else f"{name} {label}", label, cls(**base, **kw, **opt), space))
    return out


def _fit_steps(sched, nfe: int) -> int:
    """The most inference steps whose evaluations (len(timesteps): Heun 2 per step, PNDM one extra) fit in nfe."""
    for steps in range(nfe, 0, -1):
        sched.set_timesteps(steps)
        if len(sched.timesteps) <= nfe:
            return steps
    raise BadParameter(f"--nfe: {nfe} is too few evaluations for {type(sched).__name__}")


def theirs(p: Problem, name: str, schedule: str, sched, space: str, nfe: int) -> dict:
    steps = _fit_steps(sched, nfe)
    table = alphas_cumprod_to_sigmas(sched.alphas_cumprod.double())
    sig0 = float(sched.sigmas[0]) if hasattr(sched, "sigmas") else float(table[int(sched.timesteps[0])])
    x = p.x_T * (sig0 / p.sigma_max)
    if space == "vp":
        x = x / math.sqrt(1 + sig0**2)

    def run(den):
        sample = x.clone()
        for i, t in enumerate(sched.timesteps):
            sigma = float(sched.sigmas[i]) if hasattr(sched, "sigmas") else float(table[int(t)])
            model_in = sched.scale_model_input(sample, t)
            x_sigma = model_in.double() * math.sqrt(1 + sigma**2)
            eps = (x_sigma - den(x_sigma, sigma)) / sigma
            sample = sched.step(eps, t, sample, return_dict=False)[0]
        return sample

    out, ovh, den = _run(p, run, steps)
    return {"impl": "diffusers", "mixture": p.mixture, "sampler": name, "schedule": schedule, "nfe": nfe,
            **_metrics(p, out, True), "overhead_ms": ovh * 1e3, "nfe_used": den.calls}


def unet_forward_ms(batch: int, shape) -> float | None:
    """Median wall time of one forward pass of a ~9M-parameter 32×32 UNet2DModel (diffusers) at this batch size."""
    try:
        from diffusers import UNet2DModel  # lazy: optional dependency (see above)
    except ImportError:
        return None
    torch.manual_seed(0)
    net = UNet2DModel(sample_size=shape[-1], in_channels=shape[0], out_channels=shape[0], layers_per_block=2,
                      block_out_channels=(64, 128, 256), down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).eval()
    x = torch.randn(batch, *shape)
    t = torch.full((batch,), 500)
    times = []
    with torch.inference_mode():
        net(x, t)
        for _ in range(3):
            s = time.perf_counter()
            net(x, t)
            times.append(time.perf_counter() - s)
    return statistics.median(times) * 1e3


# ---------------------------------------------------------------- report


def _fmt(v, spec):
    return "—" if v is None else format(v, spec)


def _names(rows: list[dict], need: str | None = None) -> list[tuple[str, str]]:
    """(impl, sampler) in the order the rows first name them; with ``need``, only those with that field in a row."""
    names = []
    for r in rows:
        k = (r["impl"], r["sampler"])
        if k not in names:
            names.append(k)
    if need is not None:
        have = {(r["impl"], r["sampler"]) for r in rows if r.get(need) is not None}
        names = [k for k in names if k in have]
    return names


def table(rows: list[dict], nfes: list[int]) -> str:
    by = {(r["impl"], r["sampler"], r["nfe"]): r for r in rows}
    head = "| impl | sampler | " + " | ".join(f"RMSE@{n}" for n in nfes) + " | " + " | ".join(f"SWD@{n}" for n in nfes) + " | overhead ms/step |"
    lines = [head, "|" + "---|" * (3 + 2 * len(nfes))]
    for impl, s in _names(rows):
        rs = [by.get((impl, s, n)) for n in nfes]
        rm = [_fmt(r and r["endpoint_rmse"], ".2e") for r in rs]
        sw = [_fmt(r and r["swd"], ".4f") for r in rs]
        ov = [r["overhead_ms"] for r in rs if r and r["overhead_ms"] is not None]
        lines.append(f"| {impl} | {s} | " + " | ".join(rm) + " | " + " | ".join(sw) + f" | {_fmt(statistics.median(ov) if ov else None, '.3f')} |")
    return "\n".join(lines)


def flips_table(rows: list[dict], nfes: list[int]) -> str:
    """Median and 90th percentile of the per-sample endpoint RMSE, the number of samples that ended in another
    component and the number farther than FLIP from the fine solve."""
    by = {(r["impl"], r["sampler"], r["nfe"]): r for r in rows}
    lines = ["| impl | sampler | " + " | ".join(f"median / p90 @{n} (flips, far)" for n in nfes) + " |",
             "|" + "---|" * (2 + len(nfes))]
    for impl, s in _names(rows, "endpoint_median"):
        cells = []
        for n in nfes:
            r = by.get((impl, s, n))
            cells.append("—" if not r or r.get("endpoint_median") is None
                         else f"{r['endpoint_median']:.2e} / {r['endpoint_p90']:.2e} ({r['flips']}, {r['far']})")
        lines.append(f"| {impl} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict], nfe: int) -> dict:
    def best(impl):
        c = [r for r in rows if r["impl"] == impl and r["nfe"] == nfe and r["endpoint_rmse"] is not None]
        return min(c, key=lambda r: r["endpoint_rmse"]) if c else None

    a, b = best("noisebrush"), best("diffusers")
    out = {"nfe": nfe, "ours_best": a and a["sampler"], "ours_rmse": a and a["endpoint_rmse"],
           "diffusers_best": b and b["sampler"], "diffusers_rmse": b and b["endpoint_rmse"]}
    if a and b:
        out["ratio"] = a["endpoint_rmse"] / b["endpoint_rmse"]
    return out


def _entry(r: dict) -> dict:
    return {"sampler": r["sampler"], "schedule": r["schedule"], "median": r["endpoint_median"],
            "p90": r["endpoint_p90"], "flips": r["flips"], "far": r["far"], "rmse": r["endpoint_rmse"],
            "nfe_used": r["nfe_used"]}


def goal(rows: list[dict], mixtures: list[str], nfes: list[int]) -> list[dict]:
    """Per mixture and goal NFE: our row with the lowest median per-sample error against diffusers' (every scheduler
    and schedule option), with ``ratio`` = ours/theirs of the medians (below 1: ours is better)."""
    out = []
    for m in mixtures:
        for nfe in [k for k in nfes if k in GOAL_NFE]:
            best = {}
            for impl in ("noisebrush", "diffusers"):
                c = [r for r in rows if r["mixture"] == m and r["nfe"] == nfe and r["impl"] == impl
                     and r["endpoint_median"] is not None]
                best[impl] = min(c, key=lambda r: r["endpoint_median"]) if c else None
            a, b = best["noisebrush"], best["diffusers"]
            e = {"mixture": m, "nfe": nfe, "ours": a and _entry(a), "theirs": b and _entry(b), "ratio": None}
            if a and b:
                e["ratio"] = a["endpoint_median"] / b["endpoint_median"]
            out.append(e)
    return out


def goal_table(entries: list[dict]) -> str:
    def fl(e):
        return "—" if e.get("flips") is None else f"{e['flips']} ({e['far']})"

    lines = ["| mixture | NFE | ours: best (median) | median | p90 | flips (far) | diffusers: best (median) | median "
             "| p90 | flips (far) | ours/theirs |", "|" + "---|" * 11]
    for e in entries:
        a, b = e["ours"] or {}, e["theirs"] or {}
        lines.append(f"| {e['mixture']} | {e['nfe']} | {a.get('sampler', '—')} | {_fmt(a.get('median'), '.2e')} | "
                     f"{_fmt(a.get('p90'), '.2e')} | {fl(a)} | {b.get('sampler', '—')} | "
                     f"{_fmt(b.get('median'), '.2e')} | {_fmt(b.get('p90'), '.2e')} | {fl(b)} | "
                     f"{_fmt(e['ratio'], '.3f')} |")
    return "\n".join(lines)


def _nfe_list(text: str) -> list[int]:
    vals = comma_separated(text, "--nfe", int, "a comma-separated list of integers")
    if not vals or min(vals) < 2:
        raise BadParameter(f"--nfe: values must be ≥ 2, got {text!r}")
    return vals


def main(argv: list[str] | None = None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench samplers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, samplers, budgets and schedule options: "
                    "about a minute")
    ap.add_argument("--json", metavar="FILE", help="write {rows: [{impl, mixture, sampler, schedule, nfe, "
                    "endpoint_rmse, endpoint_median, endpoint_p90, flips, far, swd, overhead_ms, ...}], "
                    "goal: [{mixture, nfe, ours, theirs, ratio}], mixtures: {...}, machine: {...}} as JSON")
    ap.add_argument("--nfe", default=None, help="comma-separated NFE budgets (default 5,10,20,50; quick: 5,10)")
    ap.add_argument("--samples", type=int, default=None, help="held-out noises per run (default 256; quick: 16)")
    ap.add_argument("--mixture", choices=["default", "tight", "both"], default="both",
                    help="which Gaussian mixture (default both, reported separately)")
    ap.add_argument("--no-diffusers", action="store_true", help="skip diffusers' schedulers")
    ap.add_argument("--retune", action="store_true", help="fit the tuned schedules again (also for a mixture that "
                    "has none stored) and store them")
    ap.add_argument("--tune-samples", type=int, default=128, help="training noises for a learned schedule (default 128)")
    ap.add_argument("--ref-steps", type=int, default=None, help="steps of the fine reference solve (default 1000; "
                    "quick: 400)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores; on a machine busy "
                    "with other work 1 is much faster: the small per-level products stall waiting for a second core)")
    args = ap.parse_args(argv)
    nfes = _nfe_list(args.nfe or ("5,10" if args.quick else "5,10,20,50"))
    n = args.samples or (16 if args.quick else 256)
    if n < 2:
        raise BadParameter("--samples: need at least 2")
    ref_steps = args.ref_steps or (400 if args.quick else 1000)
    if ref_steps < 8:
        raise BadParameter(f"--ref-steps: need at least 8, got {ref_steps}")
    if args.threads is not None and args.threads < 1:
        raise BadParameter(f"--threads: need at least 1, got {args.threads}")
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(parent, exist_ok=True)
    mixtures = list(MIXTURES) if args.mixture == "both" else [args.mixture]
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    t0 = time.perf_counter()
    names = QUICK if args.quick else DETERMINISTIC + STOCHASTIC
    cfgs = []
    if not args.no_diffusers:
        try:
            cfgs = diffusers_configs(args.quick)
        except ImportError:
            log("diffusers is not installed: its rows are skipped (pip install diffusers)")
    rows, problems = [], {}
    for mixture in mixtures:
        p = make_problem(n, 256 if args.quick else 1024, mixture, ref_steps=ref_steps, log=log)
        problems[mixture] = p
        for nfe in nfes:
            for name in names:
                rows.append(ours(p, name, nfe))
            for name in QUICK_EXPONENTIAL if args.quick else EXPONENTIAL:
                rows.append(ours(p, name, nfe, schedule="exponential"))
            for name in TUNED:
                if args.retune or tuned_path(p, name, nfe).exists():
                    rows.append(ours(p, name, nfe, tuned=tuned_schedule(p, name, nfe, args.retune, args.tune_samples,
                                                                        log)))
            for name, schedule, sched, space in cfgs:
                rows.append(theirs(p, name, schedule, sched, space, nfe))
            log(f"{mixture} mixture: NFE {nfe} done")
        if not any(tuned_path(p, s, k).exists() for s in TUNED for k in nfes):
            log(f"{mixture} mixture: no tuned schedules stored for {p.key}; its *+tuned rows are left out "
                "(--retune fits them)")
    unet = unet_forward_ms(n, problems[mixtures[0]].shape)
    for r in rows:
        r["overhead_pct"] = None if unet is None or r["overhead_ms"] is None else 100 * r["overhead_ms"] / unet
        r.update(samples=n, unet_forward_ms=unet)
    goals = goal(rows, mixtures, nfes)
    ovh = {impl: max((r["overhead_pct"] for r in rows if r["impl"] == impl and r["overhead_pct"] is not None), default=None)
           for impl in ("noisebrush", "diffusers")}
    for mixture, p in problems.items():
        mine = [r for r in rows if r["mixture"] == mixture]
        spec = MIXTURES[mixture]
        print(f"## Samplers on the {mixture} Gaussian mixture ({p.components} components, spreads "
              f"{spec['std_range'][0]}–{spec['std_range'][1]}, {'×'.join(map(str, p.shape))}), {n} samples; "
              f"reference accuracy ≈ {p.reference_check:.1e}\n")
        print(table(mine, nfes))
        print(f"\nMedian and 90th percentile of the per-sample endpoint RMSE, and (in brackets) how many of the {n} "
              "samples ended in a different mixture component than the fine solve (flips; they dominate the RMSE "
              f"above) and how many ended farther than {FLIP} from it for any reason (far):\n")
        print(flips_table(mine, nfes))
        print()
        for s in (summary(mine, k) for k in nfes):
            if "ratio" in s:
                print(f"NFE {s['nfe']}: best noisebrush {s['ours_best']} {s['ours_rmse']:.2e} vs best diffusers "
                      f"{s['diffusers_best']} {s['diffusers_rmse']:.2e} -> RMSE ratio {s['ratio']:.3f}")
        print()
    if goals:
        print(f"## Goal: our best against diffusers' best by the median per-sample error over {n} held-out noises\n")
        print(goal_table(goals))
    if unet is not None:
        print(f"\n32×32 UNet forward at batch {n}: {unet:.1f} ms; worst sampler overhead per step: "
              f"noisebrush {_fmt(ovh['noisebrush'], '.3f')}%, diffusers {_fmt(ovh['diffusers'], '.3f')}% of it")
    print(f"\n({time.perf_counter() - t0:.0f}s)")
    if args.json:
        info = {m: {**MIXTURES[m], "key": p.key, "reference_check": p.reference_check} for m, p in problems.items()}
        write_report(args.json, {"rows": rows, "goal": goals, "mixtures": info, "samples": n}, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

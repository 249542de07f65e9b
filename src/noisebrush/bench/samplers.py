"""Sampler benchmark: every noisebrush sampler and diffusers' schedulers, driven by the same exact denoiser.

    python -m noisebrush.bench samplers [--quick] [--json out.json] [--nfe 5,10,20,50] [--samples 256]

The problem: a Gaussian mixture (:class:`~noisebrush.diffusion.oracle.GaussianMixture`) with 16 components over
3×32×32 "images", whose ideal denoiser is known in closed form, under DDPM's linear-β VP table (T = 1000,
σ from 0.01 to 157.4). Everyone starts from the same noise x_T = σ_max·z. For each sampler and each budget of
network evaluations (NFE — a Heun step costs 2) it measures

* ``endpoint_rmse`` — RMSE of the final sample to a fine solve of the same probability-flow ODE from the same
  noise (third-order multistep, 1000 Karras steps down to σ = 1e-4; deterministic samplers only); also
  ``endpoint_median`` (median per-sample RMSE) and ``flips``: samples that sit near a boundary between two
  mixture components can end in the other one (per-sample RMSE ≈ 0.7), and at NFE ≤ 20 those 1–4% of samples
  dominate ``endpoint_rmse`` for every solver, ours and diffusers' alike;
* ``swd`` — sliced Wasserstein distance to exact samples of the data;
* ``overhead_ms`` — wall time per step beyond the denoiser's own time; ``overhead_pct`` relates it to one
  forward pass of a 32×32 UNet (diffusers' UNet2DModel, about 9M parameters) at the same batch size.

diffusers' schedulers get the same table, Karras σ where they support it, 'trailing' spacing for DDIM (so all
start at σ_max), and the exact σ of every evaluation (rounding of timesteps to the training grid does not
count against them). ``*+tuned`` rows use a σ-schedule fitted to this model and NFE on separate training noise
(:mod:`noisebrush.diffusion.tuning`); the fitted schedules ship in ``noisebrush/bench/tuned/``.
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
from noisebrush.diffusion import SAMPLERS, GaussianMixture, SampleNoise, karras, vp_linear
from noisebrush.diffusion.schedules import alphas_cumprod_to_sigmas, linear_alphas_cumprod
from noisebrush.diffusion.tuning import load_schedule, save_schedule, tune_schedule
from noisebrush.errors import BadParameter
from noisebrush.eval.swd import sliced_wasserstein

TUNED_DIR = Path(__file__).with_name("tuned")
DETERMINISTIC = ["ddim", "euler", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "ipndm_v", "adaptive"]
STOCHASTIC = ["ddpm", "euler_ancestral", "dpmpp_2m_sde", "langevin"]
TUNED = ["dpmpp_2m", "dpmpp_3m"]
TRAIN_SEED, VALID_SEED, EVAL_SEED, DATA_SEED = 500_000, 600_000, 0, 1_000_000


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

    @property
    def key(self) -> str:
        return f"gmm{self.components}-{'x'.join(map(str, self.shape))}-seed{self.seed}"


def reference_solve(gm, x_T: torch.Tensor, sigma_max: float, steps: int) -> torch.Tensor:
    """A fine solve of the probability-flow ODE: 3rd-order multistep on Karras steps down to σ = 1e-4, then x̂_0."""
    sig = torch.cat([karras(steps, 1e-4, sigma_max)[:-1], torch.zeros(1, dtype=torch.float64)])
    return SAMPLERS["dpmpp_3m"].fn(gm, x_T, sig)


def make_problem(samples: int, data_samples: int, components: int = 16, seed: int = 0, ref_steps: int = 1000,
                 shape=(3, 32, 32), log=print) -> Problem:
    gm = GaussianMixture.random(shape, components=components, seed=seed)
    ac = linear_alphas_cumprod(1000)
    table = alphas_cumprod_to_sigmas(ac)
    smin, smax = float(table[0]), float(table[-1])
    x_T = SampleNoise.from_seeds(range(EVAL_SEED, EVAL_SEED + samples)).randn(shape, dtype=torch.float64) * smax
    t = time.perf_counter()
    ref = reference_solve(gm, x_T, smax, ref_steps)
    half = reference_solve(gm, x_T, smax, ref_steps // 2)
    check = float((ref - half).pow(2).mean().sqrt())
    log(f"reference: {ref_steps} steps in {time.perf_counter() - t:.1f}s; differs from a {ref_steps // 2}-step solve by {check:.1e} RMSE")
    data = gm.sample(range(DATA_SEED, DATA_SEED + data_samples))
    return Problem(gm, components, seed, tuple(shape), smin, smax, ac, x_T, ref, check, data)


TRIM = 0.1  # tuning ignores the worst 10% of training samples (mode-boundary samples; see tuning.tune_schedule)
FLIP = 0.1  # a per-sample RMSE above this means the sample ended in another mixture component


def _metrics(p: Problem, out: torch.Tensor, deterministic: bool) -> dict:
    m = {"endpoint_rmse": None, "endpoint_median": None, "flips": None}
    if deterministic:
        per = (out.double() - p.reference).pow(2).flatten(1).mean(1).sqrt()
        m = {"endpoint_rmse": float(per.pow(2).mean().sqrt()), "endpoint_median": float(per.median()),
             "flips": int((per > FLIP).sum())}
    return {**m, "swd": sliced_wasserstein(out, p.data, projections=128, seed=0)}


def _run(p: Problem, fn, steps: int) -> tuple[torch.Tensor, float, Timed]:
    """(output, overhead seconds per step, the timed denoiser with its call count)."""
    den = Timed(p.gm)
    t = time.perf_counter()
    out = fn(den)
    total = time.perf_counter() - t
    return out, (total - den.seconds) / max(steps, 1), den


# ---------------------------------------------------------------- noisebrush


def tuned_schedule(p: Problem, sampler: str, nfe: int, retune: bool, train: int, log=print) -> torch.Tensor:
    path = TUNED_DIR / f"{p.key}-{sampler}-nfe{nfe}.json"
    if path.exists() and not retune:
        return load_schedule(str(path))
    steps = SAMPLERS[sampler].steps_for_nfe(nfe)
    x_T = SampleNoise.from_seeds(range(TRAIN_SEED, TRAIN_SEED + train)).randn(p.shape, dtype=torch.float64) * p.sigma_max
    ref = reference_solve(p.gm, x_T, p.sigma_max, 1000)
    t = time.perf_counter()
    init = karras(steps, p.sigma_min, p.sigma_max)
    if sampler == "dpmpp_3m":  # start from the tuned second-order schedule when there is one: 3M's landscape
        two = TUNED_DIR / f"{p.key}-dpmpp_2m-nfe{nfe}.json"  # from Karras steps is rough at small NFE
        if two.exists() and SAMPLERS["dpmpp_2m"].steps_for_nfe(nfe) == steps:
            init = load_schedule(str(two))
    sig, info = tune_schedule(p.gm, sampler, nfe, x_T, ref, init, max_evals=40 * steps, trim=TRIM)
    # held-out check: a schedule fitted to few noises can send a rare sample to the wrong mode
    xv = SampleNoise.from_seeds(range(VALID_SEED, VALID_SEED + 64)).randn(p.shape, dtype=torch.float64) * p.sigma_max
    rv = reference_solve(p.gm, xv, p.sigma_max, 1000)
    fn = SAMPLERS[sampler].fn
    val = {name: float((fn(p.gm, xv, s) - rv).pow(2).mean().sqrt())
           for name, s in (("karras", karras(steps, p.sigma_min, p.sigma_max)), ("init", init), ("tuned", sig))}
    info.update(problem=p.key, train_seeds=[TRAIN_SEED, TRAIN_SEED + train], seconds=round(time.perf_counter() - t, 1),
                validation_seeds=[VALID_SEED, VALID_SEED + 64], validation_rmse=val)
    log(f"tuned {sampler}@{nfe}: train RMSE {info['rmse_before']:.2e} -> {info['rmse_after']:.2e} in {info['seconds']}s; "
        f"held-out RMSE karras {val['karras']:.2e}, tuned {val['tuned']:.2e}")
    TUNED_DIR.mkdir(exist_ok=True)
    save_schedule(str(path), sig, info)
    return sig


def ours(p: Problem, name: str, nfe: int, tuned: torch.Tensor | None = None) -> dict:
    info = SAMPLERS[name]
    n = len(p.x_T)
    noise = lambda: SampleNoise.from_seeds(range(EVAL_SEED + 7919, EVAL_SEED + 7919 + n))  # noqa: E731
    row = {"impl": "noisebrush", "sampler": name + ("+tuned" if tuned is not None else ""), "nfe": nfe}
    if name == "adaptive":
        # the loosest-to-tightest tolerance whose mean NFE stays within the budget (calibrated on 8 samples)
        sig = karras(4, p.sigma_min, p.sigma_max)
        chosen = None
        for rtol in [0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.003, 0.002, 0.001]:
            st: dict = {}
            info.fn(p.gm, p.x_T[:8], sig, rtol=rtol, atol=rtol / 10, stats=st)
            if statistics.mean(st["nfe"]) > nfe:
                break
            chosen = rtol
        if chosen is None:
            return {**row, "endpoint_rmse": None, "endpoint_median": None, "flips": None, "swd": None,
                    "overhead_ms": None, "nfe_used": None,
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
    else:
        sig = karras(steps, p.sigma_min, p.sigma_max)
    sig = sig.clone()
    sig[0] = p.sigma_max
    kw = {"noise": noise()} if info.stochastic else {}
    out, ovh, den = _run(p, lambda d: info.fn(d, p.x_T, sig, **kw), steps)
    return {**row, **_metrics(p, out, not info.stochastic), "overhead_ms": ovh * 1e3, "nfe_used": den.calls}


# ---------------------------------------------------------------- diffusers


def diffusers_configs(quick: bool):
    import diffusers as df  # lazy: diffusers is a test/bench extra; the rest of this bench runs without it

    base = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    dpm = dict(algorithm_type="dpmsolver++", use_karras_sigmas=True)
    cfgs = [
        ("DDIM", df.DDIMScheduler, dict(timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False), "vp", 1),
        ("Euler", df.EulerDiscreteScheduler, dict(use_karras_sigmas=True), "ve", 1),
        ("Heun", df.HeunDiscreteScheduler, dict(use_karras_sigmas=True), "ve", 2),
        ("DPM++2M", df.DPMSolverMultistepScheduler, dict(solver_order=2, **dpm), "vp", 1),
        ("DPM++3M", df.DPMSolverMultistepScheduler, dict(solver_order=3, **dpm), "vp", 1),
        ("UniPC-2", df.UniPCMultistepScheduler, dict(solver_order=2, use_karras_sigmas=True), "vp", 1),
        ("UniPC-3", df.UniPCMultistepScheduler, dict(solver_order=3, use_karras_sigmas=True), "vp", 1),
        ("DEIS-2", df.DEISMultistepScheduler, dict(solver_order=2, use_karras_sigmas=True), "vp", 1),
        ("DEIS-3", df.DEISMultistepScheduler, dict(solver_order=3, use_karras_sigmas=True), "vp", 1),
    ]
    return [(name, cls(**base, **kw), space, cost) for name, cls, kw, space, cost in cfgs]


def theirs(p: Problem, name: str, sched, space: str, cost: int, nfe: int) -> dict:
    steps = max(1, (nfe + 1) // 2) if cost == 2 else nfe
    sched.set_timesteps(steps)
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

    out, ovh, den = _run(p, run, len(sched.timesteps) // cost + (cost - 1))
    return {"impl": "diffusers", "sampler": name, "nfe": nfe, **_metrics(p, out, True), "overhead_ms": ovh * 1e3,
            "nfe_used": den.calls}


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


def table(rows: list[dict], nfes: list[int]) -> str:
    names = []
    for r in rows:
        k = (r["impl"], r["sampler"])
        if k not in names:
            names.append(k)
    by = {(r["impl"], r["sampler"], r["nfe"]): r for r in rows}
    head = "| impl | sampler | " + " | ".join(f"RMSE@{n}" for n in nfes) + " | " + " | ".join(f"SWD@{n}" for n in nfes) + " | overhead ms/step |"
    lines = [head, "|" + "---|" * (3 + 2 * len(nfes))]
    for impl, s in names:
        rs = [by.get((impl, s, n)) for n in nfes]
        rm = [_fmt(r and r["endpoint_rmse"], ".2e") for r in rs]
        sw = [_fmt(r and r["swd"], ".4f") for r in rs]
        ov = [r["overhead_ms"] for r in rs if r and r["overhead_ms"] is not None]
        lines.append(f"| {impl} | {s} | " + " | ".join(rm) + " | " + " | ".join(sw) + f" | {_fmt(statistics.median(ov) if ov else None, '.3f')} |")
    return "\n".join(lines)


def flips_table(rows: list[dict], nfes: list[int]) -> str:
    """Median per-sample endpoint RMSE and the number of samples that ended in another component."""
    names = []
    for r in rows:
        if r.get("endpoint_median") is not None and (r["impl"], r["sampler"]) not in names:
            names.append((r["impl"], r["sampler"]))
    by = {(r["impl"], r["sampler"], r["nfe"]): r for r in rows}
    lines = ["| impl | sampler | " + " | ".join(f"median@{n} (flips)" for n in nfes) + " |", "|" + "---|" * (2 + len(nfes))]
    for impl, s in names:
        cells = []
        for n in nfes:
            r = by.get((impl, s, n))
            cells.append("—" if not r or r.get("endpoint_median") is None else f"{r['endpoint_median']:.2e} ({r['flips']})")
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


def _nfe_list(text: str) -> list[int]:
    vals = comma_separated(text, "--nfe", int, "a comma-separated list of integers")
    if not vals or min(vals) < 2:
        raise BadParameter(f"--nfe: values must be ≥ 2, got {text!r}")
    return vals


def main(argv: list[str] | None = None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench samplers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and budgets: under a minute")
    ap.add_argument("--json", metavar="FILE", help="write {rows: [{impl, sampler, nfe, endpoint_rmse, endpoint_median, "
                    "flips, swd, overhead_ms, ...}], machine: {...}} as JSON")
    ap.add_argument("--nfe", default=None, help="comma-separated NFE budgets (default 5,10,20,50; quick: 5,10)")
    ap.add_argument("--samples", type=int, default=None, help="noise samples per run (default 256; quick: 16)")
    ap.add_argument("--no-diffusers", action="store_true", help="skip diffusers' schedulers")
    ap.add_argument("--retune", action="store_true", help="fit the tuned schedules again and store them")
    ap.add_argument("--tune-samples", type=int, default=64, help="training noises for tuning (default 64)")
    args = ap.parse_args(argv)
    nfes = _nfe_list(args.nfe or ("5,10" if args.quick else "5,10,20,50"))
    n = args.samples or (16 if args.quick else 256)
    if n < 2:
        raise BadParameter("--samples: need at least 2")
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(parent, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.perf_counter()
    p = make_problem(n, 256 if args.quick else 1024, ref_steps=400 if args.quick else 1000, log=log)
    rows = []
    names = DETERMINISTIC + STOCHASTIC if not args.quick else ["euler", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "ddpm", "langevin", "adaptive"]
    for nfe in nfes:
        for name in names:
            rows.append(ours(p, name, nfe))
        for name in TUNED:
            rows.append(ours(p, name, nfe, tuned=tuned_schedule(p, name, nfe, args.retune, args.tune_samples, log)))
        log(f"noisebrush samplers done at NFE {nfe}")
    if not args.no_diffusers:
        try:
            cfgs = diffusers_configs(args.quick)
        except ImportError:
            log("diffusers is not installed: its rows are skipped (pip install diffusers)")
            cfgs = []
        for nfe in nfes:
            for name, sched, space, cost in cfgs:
                rows.append(theirs(p, name, sched, space, cost, nfe))
            if cfgs:
                log(f"diffusers schedulers done at NFE {nfe}")
    unet = unet_forward_ms(n, p.shape)
    for r in rows:
        r["overhead_pct"] = None if unet is None or r["overhead_ms"] is None else 100 * r["overhead_ms"] / unet
        r.update(samples=n, unet_forward_ms=unet)
    summ = [summary(rows, k) for k in nfes]
    ovh = {impl: max((r["overhead_pct"] for r in rows if r["impl"] == impl and r["overhead_pct"] is not None), default=None)
           for impl in ("noisebrush", "diffusers")}
    print(f"## Samplers on an exact Gaussian mixture ({p.components} components, {'×'.join(map(str, p.shape))}), "
          f"{n} samples; reference accuracy ≈ {p.reference_check:.1e}\n")
    print(table(rows, nfes))
    print(f"\nMedian per-sample endpoint RMSE, and (in brackets) how many of the {n} samples ended in a different "
          f"mixture component than the fine solve (per-sample RMSE > {FLIP}); such flips dominate the RMSE above:\n")
    print(flips_table(rows, nfes))
    print()
    for s in summ:
        if "ratio" in s:
            print(f"NFE {s['nfe']}: best noisebrush {s['ours_best']} {s['ours_rmse']:.2e} vs best diffusers "
                  f"{s['diffusers_best']} {s['diffusers_rmse']:.2e} -> ratio {s['ratio']:.3f}")
    if unet is not None:
        print(f"\n32×32 UNet forward at batch {n}: {unet:.1f} ms; worst sampler overhead per step: "
              f"noisebrush {_fmt(ovh['noisebrush'], '.3f')}%, diffusers {_fmt(ovh['diffusers'], '.3f')}% of it")
    print(f"\n({time.perf_counter() - t0:.0f}s)")
    if args.json:
        write_report(args.json, {"rows": rows}, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

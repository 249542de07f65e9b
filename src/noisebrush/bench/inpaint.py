"""Inpainting, measured: are the known pixels untouched, and can the domain feature net see the seam?

    python -m noisebrush.bench inpaint --n 200 --json outputs/bench-inpaint.json

Held-out pictures of the built-in set get a hole (cycling through a centre square of a quarter of the area, the
right half, and the top half) and are inpainted from their own captions with RePaint (``--jumps``,
``--jump-length``). Against a separate reference set of real pictures it reports:

* ``fd_inpainted`` — fd_art of the inpainted pictures;
* ``fd_fresh`` — fd_art of pictures painted from scratch from the same captions and seeds (what the model does on
  its own);
* ``fd_real`` — fd_art of the untouched held-out pictures (the floor: two samples of the real set);
* the same for plain replacement without resampling (``jumps`` 1), to show what resampling buys;
* ``known_identical`` — the share of pictures whose known pixels came out bit-identical (must be 1.0).

A seam the feature net could see would push ``fd_inpainted`` above ``fd_fresh``; the goal is that they are close.
"""
from __future__ import annotations

import sys
import time

import torch
from rich.console import Console
from rich.table import Table

import noisebrush
from noisebrush.bench.common import BenchParser, finish
from noisebrush.checks import whole
from noisebrush.data.procedural import ProceduralArt
from noisebrush.diffusion import SampleNoise, karras
from noisebrush.diffusion.sample import sample, start
from noisebrush.diffusion.samplers.repaint import repaint
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.metrics import frechet_distance
from noisebrush.eval.sampling import batch_denoiser, sample_many
from noisebrush.io.images import to_uint8

MASKS = ("centre", "right-half", "top-half")


def hole(kind: str, size: int) -> torch.Tensor:
    """H×W bool, True where the picture is repainted."""
    m = torch.zeros(size, size, dtype=torch.bool)
    if kind == "centre":
        a, b = size // 4, size - size // 4
        m[a:b, a:b] = True
    elif kind == "right-half":
        m[:, size // 2:] = True
    elif kind == "top-half":
        m[: size // 2] = True
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    return m


@torch.no_grad()
def inpaint_batch(pipe, pictures, holes, prompts, seeds, *, steps=20, jump_length=4, jumps=3, cfg=3.0):
    """Batched RePaint (the engine's RePaint sampler, with the network run on whole batches as in evaluation)."""
    tok, mask = pipe.text_encoder.encode(list(prompts))
    den = batch_denoiser(pipe, {"text": tok, "text_mask": mask}, cfg, fast=True)
    sched = pipe.config.get("schedule") or {}
    sigmas = karras(steps, sigma_min=float(sched.get("sigma_min", 0.002)),
                    sigma_max=float(sched.get("sigma_max", 80.0)))
    noise = SampleNoise.from_seeds(seeds)
    return sample(den, start(noise, pictures.shape[1:], sigmas), sigmas, noise, sampler=repaint,
                  known=pictures, keep=~holes, jump_length=jump_length, jumps=jumps)


def run(*, n: int = 200, steps: int = 20, jump_length: int = 4, jumps: int = 3, cfg: float = 3.0, batch: int = 50,
        seed: int = 0, log=print) -> dict:
    pipe = noisebrush.load("builtin")
    fnet = load_feature_net()
    size = pipe.resolution
    ds = ProceduralArt(resolution=size, size=60_000, seed=0)
    items = list(range(50_000, 50_000 + n))
    reference = torch.stack([ds[i]["image"] for i in range(55_000, 55_000 + n)])
    real = torch.stack([ds[i]["image"] for i in items])
    real = to_uint8(real).to(torch.float32) / 127.5 - 1  # as a PNG would hold it
    prompts = [ds.caption(i) for i in items]
    holes = torch.stack([hole(MASKS[k % len(MASKS)], size) for k in range(n)]).unsqueeze(1)
    f_ref = fnet.features(reference)
    report = {"benchmark": "inpaint", "n": n, "steps": steps, "jump_length": jump_length, "jumps": jumps, "cfg": cfg,
              "masks": list(MASKS), "fd_real": frechet_distance(fnet.features(real), f_ref)}
    t = time.perf_counter()
    fresh, _ = sample_many(pipe, n, prompts=prompts, seed=seed, batch=batch, steps=steps, cfg=cfg)
    report["fd_fresh"] = frechet_distance(fnet.features(fresh), f_ref)
    report["seconds_fresh"] = time.perf_counter() - t
    log(f"fresh: fd {report['fd_fresh']:.2f} ({report['seconds_fresh']:.0f}s); real: fd {report['fd_real']:.2f}")
    for name, j in (("inpainted", jumps), ("replaced", 1)):
        t = time.perf_counter()
        out = []
        for i in range(0, n, batch):
            k = min(n, i + batch)
            out.append(inpaint_batch(pipe, real[i:k], holes[i:k], prompts[i:k], list(range(seed + i, seed + k)),
                                     steps=steps, jump_length=jump_length, jumps=j, cfg=cfg))
        x = torch.cat(out)
        known = ~holes.expand_as(x)
        same = [(to_uint8(x[b])[known[b]] == to_uint8(real[b])[known[b]]).all().item() for b in range(n)]
        report[f"fd_{name}"] = frechet_distance(fnet.features(x), f_ref)
        report[f"known_identical_{name}"] = sum(same) / n
        report[f"seconds_{name}"] = time.perf_counter() - t
        log(f"{name} (jumps {j}): fd {report[f'fd_{name}']:.2f}, known pixels identical in "
            f"{100 * report[f'known_identical_{name}']:.0f}% ({report[f'seconds_{name}']:.0f}s)")
    report["known_identical"] = report["known_identical_inpainted"]
    return report


def print_table(r: dict) -> None:
    t = Table(title=f"inpainting ({r['n']} held-out pictures, holes: {', '.join(r['masks'])}; {r['steps']} steps, "
                    f"RePaint jump length {r['jump_length']} × {r['jumps']})")
    for c in ("pictures", "fd_art", "known pixels identical"):
        t.add_column(c, justify="right" if c != "pictures" else "left")
    t.add_row("real (held-out, the floor)", f"{r['fd_real']:.2f}", "—")
    t.add_row("fresh paintings, same captions", f"{r['fd_fresh']:.2f}", "—")
    t.add_row(f"inpainted (RePaint, {r['jumps']} passes)", f"{r['fd_inpainted']:.2f}",
              f"{100 * r['known_identical_inpainted']:.0f}%")
    t.add_row("inpainted without resampling", f"{r['fd_replaced']:.2f}", f"{100 * r['known_identical_replaced']:.0f}%")
    Console().print(t)


def main(argv=None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench inpaint", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--jump-length", type=int, default=4)
    ap.add_argument("--jumps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    whole("--n", a.n, 4)
    report = run(n=a.n, steps=a.steps, jump_length=a.jump_length, jumps=a.jumps, batch=a.batch, seed=a.seed,
                 log=lambda s: print(s, file=sys.stderr))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())

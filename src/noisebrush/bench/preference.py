"""The simulated user: does a preference learned from 50 ratings make noisebrush paint more of what the user likes?

    python -m noisebrush.bench preference --json out/bench-preference.json          (~15 min on one CPU thread)
    python -m noisebrush.bench preference --likes cool --n 32                        (another taste, fewer pictures)
    python -m noisebrush.bench preference --quick                                    (a quick look)

The user likes one attribute: by default *warm colours*, meaning the main subject's colour (the sun, the flower,
the shapes, the rings, the swirl, the first grid colour) is red, orange or yellow as the domain feature network
(:mod:`noisebrush.eval.features`, 95–100% accurate per attribute on real pictures) reads it. ``--likes cool`` is
green, teal, blue or purple; ``--likes red,pink`` any list of colour names.

1. **Prompts that say nothing about colour.** Captions of random items of the built-in set with every colour word
   removed ("a small flower with three petals on the left", "four concentric rings, centred on the right"): the
   prompt distribution the model knows, so the colour is the model's own choice. The rating prompts and the
   measurement prompts are captions of two different item sets, and all pictures have distinct seeds.
2. **Ratings.** The model paints ``--ratings`` pictures (50) from the rating prompts; the user rates each up if it
   has the attribute, down otherwise, into a throw-away :class:`~noisebrush.workflows.preference.RatingStore`; the preference
   is fitted on those ratings alone.
3. **Measurement.** For each of ``--n`` measurement prompts the model paints ``max(--best-of)`` candidates (seed
   ``20000 + i·B + j``): *plain* is candidate 0, *best-of-k* keeps the best-scored of the first k. (That is
   :func:`~noisebrush.workflows.preference.best_of`'s rule on a nested candidate set, so best-of-4 and best-of-8 share
   candidates; ``best_of`` itself lays seeds out per k.) *guided s* paints candidate 0 again with
   :class:`~noisebrush.workflows.preference.PreferenceGuide` at scale s, from the same noise; *guided s + best-of-k* keeps
   the best of the first k guided candidates. Every arm reports the share of pictures the user would like.

Honesty checks printed alongside: the preference's accuracy on the plain measurement candidates (pictures it never
saw); the *oracle* share of best-of-k (a candidate set with any liked picture: the ceiling for a perfect
preference); and two checks that guidance, which follows the feature network's gradient, changed the picture
rather than fooled the network: the user's verdict on the picture seen blurred (halved and scaled back up, which
faint speckle does not survive; it reads generated pictures a little more strictly, so compare it across arms), and
a judge that shares nothing with the network, the share of pixels whose nearest palette colour is a liked one
(small subjects make it move little). A raw-gradient guide scored 1.00 liked with an unchanged pixel share: it had
learnt to fool the network, which is why :class:`~noisebrush.workflows.preference.PreferenceGuide` smooths its step.
Pictures are painted in batches (:func:`noisebrush.eval.sampling.sample_batch`: 20 steps of ``dpmpp_2m``, guidance
scale 3, as ``noisebrush paint``).
"""
from __future__ import annotations

import math
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import noisebrush
from noisebrush.bench.common import BenchParser, comma_separated, write_report
from noisebrush.data.procedural import ATTRIBUTES, COLOURS, make_scene
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.sampling import sample_batch
from noisebrush.io.images import make_grid, save_image
from noisebrush.workflows.preference import PreferenceGuide, PreferenceModel, RatingStore

PRESETS = {"warm": ("red", "orange", "yellow"), "cool": ("green", "teal", "blue", "purple")}
RATING_PROMPT_SEED, MEASURE_PROMPT_SEED = 101, 202  # ProceduralArt seeds whose captions become prompts
RATING_SEED, MEASURE_SEED = 10_000, 20_000          # picture seeds (disjoint ranges)
GOAL = 0.80


def parse_likes(text: str) -> tuple[str, ...]:
    if text in PRESETS:
        return PRESETS[text]
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in COLOURS]
    if not names or bad:
        raise BadParameter(f"--likes: warm, cool or colour names from {', '.join(COLOURS)}; got {text!r}")
    if len(set(names)) == len(COLOURS):
        raise BadParameter("--likes: a user who likes every colour teaches nothing")
    return names


def strip_colours(caption: str) -> str:
    """A caption with its colour words (and the words left dangling without them) removed."""
    s = re.sub(rf"\b({'|'.join(COLOURS)})\b", "", caption)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\ban (?=[^aeiou])", "a ", s)    # "an orange background" → "a background"
    s = re.sub(r"\bin and$", "", s)               # "a mondrian grid in red and blue" → "a mondrian grid"
    s = re.sub(r"\bon ?(,|$)", r"\1", s)          # "… on blue" / "… on blue, centred …"
    s = re.sub(r"\s+,", ",", s)
    return re.sub(r"\s+", " ", s).strip(" ,")


def prompts_for(seed: int, n: int) -> list[str]:
    return [strip_colours(make_scene(seed, i).caption) for i in range(n)]


def liked(images: torch.Tensor, likes: tuple[str, ...]) -> torch.Tensor:
    """The simulated user: True where the feature network reads the main colour as a liked one."""
    pred = load_feature_net().predict(images)["colour"]
    want = torch.tensor([ATTRIBUTES["colour"].index(c) for c in likes])
    return torch.isin(pred, want)


def blurred(images: torch.Tensor) -> torch.Tensor:
    """The pictures at half resolution, scaled back up: what survives of a speckle that fools the network."""
    return F.interpolate(F.avg_pool2d(images.float(), 2), size=images.shape[-2:], mode="bilinear",
                         align_corners=False)


def liked_pixels(images: torch.Tensor, likes: tuple[str, ...]) -> torch.Tensor:
    """The independent judge: per picture, the share of pixels whose nearest palette colour is a liked one."""
    pal = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 127.5 - 1          # K×3
    px = images.float().permute(0, 2, 3, 1).reshape(images.shape[0], -1, 3)             # N×P×3
    nearest = torch.cdist(px, pal.expand(images.shape[0], -1, -1)).argmin(-1)           # N×P
    want = torch.tensor([list(COLOURS).index(c) for c in likes])
    return torch.isin(nearest, want).float().mean(1)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _paint(pipe, prompts: list[str], seeds: list[int], *, steps: int, batch: int, guidance=None, log=None,
           what: str = "") -> torch.Tensor:
    out, t0 = [], time.perf_counter()
    for i in range(0, len(seeds), batch):
        out.append(sample_batch(pipe, prompts=prompts[i:i + batch], seeds=seeds[i:i + batch], steps=steps,
                                guidance=guidance))
        if log:
            log(f"  {what}: {min(i + batch, len(seeds))}/{len(seeds)} pictures, {time.perf_counter() - t0:.0f}s")
    return torch.cat(out)


def _arm(name: str, images: torch.Tensor, likes, model, *, candidates: torch.Tensor | None = None,
         k: int = 1, oracle: float | None = None) -> dict:
    ok = liked(images, likes)
    n, hits = int(ok.numel()), int(ok.sum())
    lo, hi = wilson(hits, n)
    return {"arm": name, "pictures": n, "candidates_per_picture": k, "liked_share": hits / n, "ci95": [lo, hi],
            "liked_share_blurred": float(liked(blurred(images), likes).double().mean()),
            "liked_pixel_share": float(liked_pixels(images, likes).mean()),
            "mean_p_up": float(model.probability(images).mean()), "oracle_share": oracle}


def _pick(cands: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """cands M×B×C×H×W, scores M×B → the best-scored of the first k candidates of each row."""
    j = scores[:, :k].argmax(1)
    return cands[torch.arange(cands.shape[0]), j]


def table(rows: list[dict]) -> str:
    head = ("| arm | pictures | liked share | 95% CI | oracle | liked, seen blurred | liked-colour pixels | "
            "mean P(up) |\n|---|---:|---:|---|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        oracle = f"{r['oracle_share']:.2f}" if r["oracle_share"] is not None else "–"
        lines.append(f"| {r['arm']} | {r['pictures']} | **{r['liked_share']:.2f}** | "
                     f"{r['ci95'][0]:.2f}–{r['ci95'][1]:.2f} | {oracle} | {r['liked_share_blurred']:.2f} | "
                     f"{r['liked_pixel_share']:.3f} | "
                     f"{r['mean_p_up']:.2f} |")
    return "\n".join(lines)


def _ints(text: str, name: str) -> list[int]:
    v = comma_separated(text, name, int, "whole numbers separated by commas")
    if not v or min(v) < 1:
        raise BadParameter(f"{name}: whole numbers ≥ 1, got {text!r}")
    return sorted(set(v))


def _floats(text: str, name: str) -> list[float]:
    v = comma_separated(text, name, float, "numbers separated by commas")
    if any(not (math.isfinite(s) and s >= 0) for s in v):
        raise BadParameter(f"{name}: numbers ≥ 0, got {text!r}")
    return v


def _rate(pipe, likes: tuple[str, ...], ratings: int, *, steps: int, batch: int, workdir: Path,
          log=print) -> tuple[list[str], torch.Tensor, torch.Tensor, PreferenceModel, float]:
    """Step 1: the user rates pictures painted from colour-free prompts, and a preference is fitted on them.

    Returns the prompts, the pictures, the user's verdicts, the fitted preference and the painting's seconds.
    """
    rprompts = prompts_for(RATING_PROMPT_SEED, ratings)
    t = time.perf_counter()
    rimg = _paint(pipe, rprompts, [RATING_SEED + i for i in range(ratings)], steps=steps, batch=batch, log=log,
                  what="rating pictures")
    paint_s = time.perf_counter() - t
    ups = liked(rimg, likes)
    if bool(ups.all()) or not bool(ups.any()):
        raise UserError(f"the simulated user liked {int(ups.sum())} of the {ratings} rating pictures; it needs some "
                        f"of each to learn from (more --ratings, or another --likes)")
    store = RatingStore(workdir / "ratings.sqlite")
    for img, up, p, s in zip(rimg, ups.tolist(), rprompts, range(RATING_SEED, RATING_SEED + ratings)):
        store.rate(img, up, recipe={"prompt": p, "seed": s, "steps": steps})
    model = PreferenceModel.fit_store(store)
    model.save(workdir / f"{model.hash}.safetensors")
    log(f"rated {ratings}: {int(ups.sum())} up, {ratings - int(ups.sum())} down; preference {model.hash}: "
        f"cross-validated accuracy {model.meta['cv_accuracy']}")
    return rprompts, rimg, ups, model, paint_s


def _heldout(scores: torch.Tensor, user: torch.Tensor) -> dict:
    """How often the preference (score ≥ 0) agrees with the user on pictures it never saw; balanced too."""
    agree = ((scores >= 0) == user).double()
    return {"accuracy": float(agree.mean()),
            "balanced_accuracy": 0.5 * (float(agree[user].mean()) if user.any() else 1.0)
            + 0.5 * (float(agree[~user].mean()) if (~user).any() else 1.0),
            "pictures": int(agree.numel())}


def _plain_arms(plain: torch.Tensor, scores: torch.Tensor, user: torch.Tensor, best_of: list[int], likes,
                model) -> tuple[list[dict], dict]:
    """The plain arm (candidate 0) and a best-of-k arm per k > 1; the rows and the pictures each arm kept."""
    rows = [_arm("plain", plain[:, 0], likes, model)]
    picks = {"plain": plain[:, 0]}
    for k in best_of:
        if k == 1:
            continue
        pick = _pick(plain, scores, k)
        picks[f"best-of-{k}"] = pick
        rows.append(_arm(f"best-of-{k}", pick, likes, model, k=k, oracle=float(user[:, :k].any(1).double().mean())))
    return rows, picks


def _guided_arms(pipe, model, prompts: list[str], seeds: list[list[int]], *, scales: list[float], combined: int,
                 likes, steps: int, batch: int, log=print) -> tuple[list[dict], dict, dict]:
    """Per scale, the guided arm (candidate 0 painted again with guidance) and, with ``combined`` > 1, best-of-
    ``combined`` on top; the rows, the pictures each arm kept, and the painting's seconds per scale."""
    n = len(prompts)
    rows, picks, timings = [], {}, {}
    for s in scales:
        guide = PreferenceGuide(model, s, per_picture=False)
        t = time.perf_counter()
        g = _paint(pipe, [p for p in prompts for _ in range(combined)],
                   [s_ for row in seeds for s_ in row[:combined]], steps=steps, batch=batch, guidance=[guide], log=log,
                   what=f"guided {s:g}")
        g = g.reshape(n, combined, *g.shape[1:])
        timings[f"guided_{s:g}_s"] = time.perf_counter() - t
        rows.append(_arm(f"guided {s:g}", g[:, 0], likes, model))
        picks[f"guided {s:g}"] = g[:, 0]
        if combined > 1:
            gs = model.score(g.flatten(0, 1)).reshape(n, combined)
            gl = liked(g.flatten(0, 1), likes).reshape(n, combined)
            pick = _pick(g, gs, combined)
            picks[f"guided {s:g} + best-of-{combined}"] = pick
            rows.append(_arm(f"guided {s:g} + best-of-{combined}", pick, likes, model, k=combined,
                             oracle=float(gl.any(1).double().mean())))
    return rows, picks, timings


def _save_sheets(folder: Path, ratings: torch.Tensor, picks: dict) -> None:
    """A contact sheet of the rating pictures, and one per arm, named after the arm."""
    folder.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(ratings, cols=10), folder / "ratings.png")
    for name, imgs in picks.items():
        save_image(make_grid(imgs, cols=8), folder / (re.sub(r"[^a-z0-9.]+", "-", name) + ".png"))


NOTES = ["prompts are captions of the built-in set with colour words removed; rating and measurement "
         "prompts come from different item sets, and every picture has its own seed",
         "the simulated user and the 'liked share' read the main colour with the feature network; the "
         "preference's inputs come from the same network (so the user's rule lies in its input space, "
         "which a real user's taste need not); 'liked-colour pixels' is a judge independent of it",
         "best-of-k arms keep the best-scored of the first k of the same B candidates per prompt; guided "
         "arms start from the same noise as the plain candidates",
         "oracle: the share of prompts with at least one liked candidate (a perfect preference's score)"]


def run(pipe, *, likes: tuple[str, ...], ratings: int, n: int, best_of: list[int], scales: list[float],
        combined: int, steps: int, batch: int, workdir: Path, log=print, sheets: Path | None = None) -> dict:
    """Rate, fit, then measure every arm on ``n`` colour-free prompts (the module docstring); the report."""
    t_start = time.perf_counter()
    rprompts, rimg, ups, model, rating_s = _rate(pipe, likes, ratings, steps=steps, batch=batch, workdir=workdir,
                                                 log=log)
    timings = {"rating_pictures_s": rating_s}

    # 2. candidates: plain (B per prompt) and guided (combined per prompt, per scale), same seeds
    B = max(best_of + [combined])
    mprompts = prompts_for(MEASURE_PROMPT_SEED, n)
    seeds = [[MEASURE_SEED + i * B + j for j in range(B)] for i in range(n)]
    t = time.perf_counter()
    flat_p = [p for p in mprompts for _ in range(B)]
    plain = _paint(pipe, flat_p, [s for row in seeds for s in row], steps=steps, batch=batch, log=log,
                   what="plain candidates").reshape(n, B, *rimg.shape[1:])
    timings["plain_candidates_s"] = time.perf_counter() - t
    plain_scores = model.score(plain.flatten(0, 1)).reshape(n, B)
    plain_liked = liked(plain.flatten(0, 1), likes).reshape(n, B)
    rows, picks = _plain_arms(plain, plain_scores, plain_liked, best_of, likes, model)
    guided_rows, guided_picks, guided_s = _guided_arms(pipe, model, mprompts, seeds, scales=scales,
                                                       combined=combined, likes=likes, steps=steps, batch=batch,
                                                       log=log)
    rows, picks, timings = rows + guided_rows, {**picks, **guided_picks}, {**timings, **guided_s}
    if sheets is not None:
        _save_sheets(sheets, rimg, picks)
    best = max(rows, key=lambda r: r["liked_share"])
    return {
        "likes": list(likes), "goal": GOAL, "goal_met": best["liked_share"] >= GOAL, "best_arm": best["arm"],
        "arms": rows, "ratings": {"n": ratings, "up": int(ups.sum()), "down": ratings - int(ups.sum()),
                                  "liked_share": float(ups.double().mean())},
        "preference": {"hash": model.hash, **model.meta}, "heldout": _heldout(plain_scores, plain_liked),
        "prompts": {"rating_examples": rprompts[:5], "measure_examples": mprompts[:5]},
        "settings": {"n": n, "best_of": best_of, "scales": scales, "combined": combined, "steps": steps,
                     "sampler": "dpmpp_2m", "cfg": 3.0, "batch": batch, "model": pipe.name, "model_hash": pipe.hash,
                     "rating_prompt_seed": RATING_PROMPT_SEED, "measure_prompt_seed": MEASURE_PROMPT_SEED,
                     "rating_seed": RATING_SEED, "measure_seed": MEASURE_SEED, "threads": torch.get_num_threads()},
        "timings": {**timings, "total_s": time.perf_counter() - t_start},
        "notes": list(NOTES),
    }


def main(argv: list[str] | None = None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench preference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--likes", default="warm", help="warm (red, orange, yellow), cool (green, teal, blue, purple) or "
                                                    "colour names, comma-separated (default warm)")
    ap.add_argument("--ratings", type=int, default=50, help="pictures the user rates (default 50)")
    ap.add_argument("--n", type=int, default=40, help="measurement prompts, one picture per arm each (default 40)")
    ap.add_argument("--best-of", default="4,8", help="candidate counts for best-of-N (default 4,8)")
    ap.add_argument("--scales", default="0.5,1", help="guidance scales (default 0.5,1)")
    ap.add_argument("--combined", type=int, default=4, help="best-of-N on top of guidance (default 4; 1: none)")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps (default 20)")
    ap.add_argument("--batch", type=int, default=64, help="pictures per network batch (default 64)")
    ap.add_argument("--model", default="builtin", help="a text-conditioned model (default builtin)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--sheets", metavar="DIR", help="write a contact sheet per arm into DIR")
    ap.add_argument("--quick", action="store_true", help="12 ratings, 6 prompts, best-of 2, one scale, 8 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.ratings, args.n, args.best_of, args.scales, args.combined, args.steps = 12, 6, "2", "1", 2, 8
    for name in ("ratings", "n", "combined", "steps", "batch"):
        if getattr(args, name) < 1:
            raise BadParameter(f"--{name}: a whole number ≥ 1, got {getattr(args, name)}")
    if args.ratings < 2:
        raise BadParameter("--ratings: at least 2 (one up and one down)")
    likes = parse_likes(args.likes)
    best_of, scales = _ints(args.best_of, "--best-of"), _floats(args.scales, "--scales")


    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    pipe = noisebrush.load(args.model, device="cpu")
    if pipe.condition != "text":
        raise UserError(f"{args.model}: the simulated user paints from prompts; this model is "
                        f"{pipe.condition}-conditioned")
    with tempfile.TemporaryDirectory(prefix="noisebrush-prefbench-") as tmp:
        res = run(pipe, likes=likes, ratings=args.ratings, n=args.n, best_of=best_of, scales=scales,
                  combined=args.combined, steps=args.steps, batch=args.batch, workdir=Path(tmp), log=log,
                  sheets=Path(args.sheets) if args.sheets else None)
    r = res["ratings"]
    print(f"## A simulated user who likes {', '.join(likes)} (main colour), {r['n']} ratings "
          f"({r['up']} up, {r['down']} down)\n")
    pm, h = res["preference"], res["heldout"]
    cv = f"{pm['cv_accuracy']:.2f}" if pm.get("cv_accuracy") is not None else "–"
    print(f"preference {pm['hash']}: cross-validated accuracy {cv} on the ratings; on {h['pictures']} unseen plain "
          f"candidates {h['accuracy']:.2f} (balanced {h['balanced_accuracy']:.2f})\n")
    print(table(res["arms"]))
    verdict = "met" if res["goal_met"] else "NOT met"
    print(f"\ngoal: liked share ≥ {GOAL:.2f} — {verdict} (best: {res['best_arm']}, "
          f"{max(a['liked_share'] for a in res['arms']):.2f}); {args.n} prompts, {args.steps} steps, "
          f"{res['timings']['total_s']:.0f}s")
    if args.json:
        write_report(args.json, res)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``noisebrush eval``: how good is a model, and does it copy its training pictures?

    from noisebrush.eval import evaluate
    report = evaluate("builtin", n=500)                 # the built-in model against ProceduralArt
    report = evaluate("runs/mine/model", data="my-pictures/")
    report = evaluate("builtin", prompts="my-prompts.tsv", per_prompt=2)   # adherence to a prompt set

It paints ``n`` pictures (batched, see :mod:`noisebrush.eval.sampling`) and compares them with ``n`` real pictures of
the data set:

* ``fd_art``, ``kid``, ``precision``, ``recall`` in the domain feature network's space;
* ``swd`` (×10³, the mean over Laplacian levels; ``swd_levels`` per level) on raw pixels;
* ``near_copy_fraction`` — the memorization check against every training picture;
* for a text model on the built-in set, **prompt adherence**: the prompts are captions of data-set items, and a
  picture adheres when the feature network reads back every *content* attribute of its caption — the family, the
  two colours (for a Mondrian grid, the pair in either order: its caption names no first colour), and the shape,
  sky or ground where the caption names one (``adherence``). Layout attributes
  (position, size, count) are scored apart (``adherence_layout``), and ``adherence_all`` asks for everything.
  ``adherence_real`` is the same score for the real pictures against their own captions: the feature network's
  ceiling, which says how far to trust the other numbers.

Prompts, reference pictures and seeds are all fixed by ``seed``: the same call gives the same report.

**Prompt sets.** With ``prompts`` (a TSV file of prompts and the attributes each asks for, or a list of pairs; see
:mod:`noisebrush.eval.prompts`, which also ships the held-out paraphrase set), each prompt is painted ``per_prompt``
times (default 1; picture j has seed ``seed + j``) and scored with the same :func:`adherence_scores` as the captions
above: ``adherence``, ``adherence_layout``, ``adherence_all``, per attribute, per family
(``adherence_per_family``), and ``worst``: the prompts adhered to least, with what the feature network read instead.
An attribute a row leaves out is not scored; a row naming none of a group's attributes counts as adhering to that
group, as a Mondrian caption does for layout. The report has **adherence only**: the distances compare with a data
set's pictures, and a prompt list has none (its mix of scenes is not the data set's), so ``data`` and ``n`` are
refused with ``prompts`` and the report's ``notes`` say so. Only the predictions are kept, a batch at a time, so the
set's size does not bound memory; :data:`MAX_PICTURES` bounds the pictures (``n``, or prompts × ``per_prompt``).
Prompts longer than the word pieces the model reads get one warning line.

**Small n.** Below as many pictures as the feature space has dimensions (256; :func:`reliable_n`) the sample
covariance is singular and ``fd_art`` is biased upward by roughly dim/n, and every distance is noisy: such numbers
compare only with others at the same ``n``. :func:`evaluate` says so in one warning line before painting and in the
report's ``notes``; a negative ``kid`` (the unbiased estimator scatters around 0 when the sets are alike and n is
small) gets a note too.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from noisebrush.data.folder import ImageFolder
from noisebrush.data.procedural import ATTRIBUTES, ProceduralArt
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.eval.features import load_feature_net
from noisebrush.checks import LIMITS, limited, whole
from noisebrush.eval.metrics import frechet_distance, kid, memorization as memo, precision_recall, swd_laplacian
from noisebrush.eval.prompts import as_items
from noisebrush.eval.sampling import sample_batches, sample_many
from noisebrush.paint.pipeline import load

__all__ = ["evaluate", "check_options", "reference_split", "CONTENT_ATTRIBUTES", "LAYOUT_ATTRIBUTES", "adherence_scores",
           "adherence_hits", "adherence_per_family", "reliable_n", "small_n_note", "negative_kid_note", "MAX_PICTURES", "DEFAULT_N", "WORST",
           "PROMPTS_NOTE"]

CONTENT_ATTRIBUTES = ("family", "colour", "colour2", "shape", "sky", "ground")
LAYOUT_ATTRIBUTES = ("position", "size", "count")
DEFAULT_N = 500
MAX_PICTURES = 100_000  # the most pictures one evaluation paints (--n, or prompts × --per-prompt)
WORST = 20  # prompts listed in a prompt-set report's "worst"
PROMPTS_NOTE = ("--prompts reports adherence only: fd_art, KID, precision/recall, SWD and the near-copy check compare "
                "with a data set's pictures, which a prompt list has none of")


def adherence_hits(pred: dict[str, torch.Tensor], table: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per picture and attribute: True where the prediction matches its row, or the attribute does not apply."""

    names = list(ATTRIBUTES)
    hits = {name: pred[name] == table[:, j] for j, name in enumerate(names)}
    # a Mondrian grid "in teal and pink" has no first and second colour: compare the pair, in either order
    grid = table[:, names.index("family")] == ATTRIBUTES["family"].index("mondrian")
    c1, c2 = table[:, names.index("colour")], table[:, names.index("colour2")]
    pair = ((pred["colour"] == c1) & (pred["colour2"] == c2)) | ((pred["colour"] == c2) & (pred["colour2"] == c1))
    hits["colour"] = torch.where(grid, pair, hits["colour"])
    hits["colour2"] = torch.where(grid, pair, hits["colour2"])
    return {name: hits[name] | (table[:, j] < 0) for j, name in enumerate(names)}


def adherence_scores(pred: dict[str, torch.Tensor], table: torch.Tensor) -> dict:
    """Adherence of predictions to attribute rows (N × len(ATTRIBUTES), -1 where one does not apply)."""

    names = list(ATTRIBUTES)
    n = table.shape[0]
    ok = adherence_hits(pred, table)
    per = {}
    for j, name in enumerate(names):
        applies = table[:, j] >= 0
        per[name] = float(ok[name][applies].double().mean()) if applies.any() else float("nan")

    def share(group):
        m = torch.ones(n, dtype=torch.bool)
        for g in group:
            m &= ok[g]
        return float(m.double().mean()) if n else float("nan")

    return {"adherence": share(CONTENT_ATTRIBUTES), "adherence_layout": share(LAYOUT_ATTRIBUTES),
            "adherence_all": share(names), "adherence_per_attribute": per}


def adherence_per_family(pred: dict[str, torch.Tensor], table: torch.Tensor) -> dict[str, float]:
    """Content adherence (:func:`adherence_scores`) of the rows of each family their table names."""
    family = list(ATTRIBUTES).index("family")
    out = {}
    for f, name in enumerate(ATTRIBUTES["family"]):
        rows = table[:, family] == f
        if rows.any():
            out[name] = adherence_scores({a: v[rows] for a, v in pred.items()}, table[rows])["adherence"]
    return out


def reliable_n(feature_dim: int = 256) -> int:
    """The smallest ``n`` whose feature covariance can be full rank: below it fd_art and KID mostly measure noise."""
    return int(feature_dim)


def small_n_note(n: int, feature_dim: int = 256) -> str | None:
    """One line saying why numbers at this ``n`` are not to be trusted, or None when n is large enough."""
    need = reliable_n(feature_dim)
    if n >= need:
        return None
    return (f"--n {n}: below {need} pictures fd_art is biased upward (~{feature_dim}/n) and every distance is "
            f"noisy; compare results only at the same --n, or use --n {need} or more")


def negative_kid_note(value, n: int) -> str | None:
    """One line explaining a negative KID (the unbiased estimator goes below 0 when the sets are alike), or None."""
    if value is None or not isinstance(value, float) or not math.isfinite(value) or value >= 0:
        return None
    return (f"kid {value:.3g} is below 0: the unbiased estimator scatters around 0 when the two sets are this alike "
            f"at n={n}; read it as 0 (no difference found)")


def _positive(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
    return v


def _training_data(pipe, data):
    """(kind, dataset) for ``data`` ("builtin", a folder, or None = what the model was trained on)."""
    prov = (pipe.config.get("provenance") or {})
    train_cfg = prov.get("config") or {}
    if data is None:
        data = prov.get("data") or "builtin"
    res = pipe.resolution
    if str(data) == "builtin":

        size = int(train_cfg.get("data_size", 60000)) if prov.get("data") == "builtin" else 60000
        return "builtin", ProceduralArt(resolution=res, size=size, seed=0)

    path = Path(data)
    if not path.is_dir():
        raise UserError(f"{data}: no such folder of pictures (--data)")
    return "folder", ImageFolder(path, resolution=res, crop="center", flip=False, seed=0)


def reference_split(size: int, n: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the reference pictures and of the prompt items: two disjoint random draws of n from a set of
    ``size`` (the prompts repeat items when the set holds fewer than 2n), fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed + 0x5EED)
    order = torch.randperm(size, generator=g)
    prompts = order[n:2 * n] if size >= 2 * n else order[torch.randint(size, (n,), generator=g)]
    return order[:n].tolist(), prompts.tolist()


def check_options(pipe, *, data=None, n=None, steps=None, sampler=None, cfg=3.0, seed=0, batch=64, prompts=None,
                  per_prompt=None) -> str:
    """Validate evaluation options before any work (BadParameter / UserError naming the first bad one); returns
    the sampler to use (default: the model's). ``prompts``: the list of :class:`~noisebrush.eval.prompts.PromptItem`
    (already read) when evaluating a prompt set."""
    if prompts is None:
        if per_prompt is not None:
            raise BadParameter("per_prompt: only with a prompt set")
        whole("n", DEFAULT_N if n is None else n, 4, MAX_PICTURES)
    else:
        if n is not None:
            raise BadParameter("n: not used with a prompt set (set the pictures per prompt instead)")
        if data is not None:
            raise BadParameter("data: not used with a prompt set, which is scored by adherence only, against no "
                               "data set")
        if pipe.condition != "text":
            takes = "class labels" if pipe.condition == "label" else "no condition"
            raise BadParameter(f"prompts: this model takes {takes}, not text; a prompt set needs a text model")
        k = whole("per_prompt", 1 if per_prompt is None else per_prompt, 1, int(LIMITS["n"].hard))
        if k * len(prompts) > MAX_PICTURES:
            raise BadParameter(f"per_prompt: {k} × {len(prompts)} prompts is {k * len(prompts)} pictures; at most "
                               f"{MAX_PICTURES}")
        limited("per_prompt", k, "n")  # many pictures per prompt: a notice with an ETA
    _positive("batch", batch)
    _positive("seed", seed, 0)
    sampler = sampler or (pipe.config.get("schedule") or {}).get("sampler") or "dpmpp_2m"
    pipe.check("", steps=steps, sampler=sampler, cfg=cfg, label=0 if pipe.condition == "label" else None)
    if data is not None and str(data) != "builtin" and not Path(data).is_dir():
        raise UserError(f"{data}: no such folder of pictures (--data)")
    return sampler


def evaluate(model="builtin", *, data=None, n: int | None = None, steps: int | None = None,
             sampler: str | None = None, cfg: float = 3.0, seed: int = 0, batch: int = 64, memorization: bool = True,
             feature_net=None, progress=None, pipe=None, prompts=None, per_prompt: int | None = None) -> dict:
    """The metrics of ``model`` against ``data`` (``n`` pictures, default 500), or with ``prompts`` (a prompt file or
    a list of (prompt, attributes) pairs, see :mod:`noisebrush.eval.prompts`) the adherence to a prompt set, each
    prompt painted ``per_prompt`` times (default 1); see the module docstring. ``progress(stage, done, total)``."""

    items = None if prompts is None else as_items(prompts)  # a bad file is refused before the model loads
    if pipe is None:

        pipe = load(model)
    steps = pipe.schedule.steps if steps is None else steps  # the model's own (10 for the built-in)
    cfg = 1.0 if pipe.is_gan else cfg  # a GAN paints without guidance: the report says what was used
    sampler = check_options(pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed, batch=batch,
                            prompts=items, per_prompt=per_prompt)
    fnet = feature_net or load_feature_net()
    if items is not None:
        return _evaluate_prompts(pipe, items, source=prompts, model=model, per_prompt=per_prompt or 1, steps=steps,
                                 sampler=sampler, cfg=cfg, seed=seed, batch=batch, fnet=fnet,
                                 say=progress or (lambda *a: None))
    n = DEFAULT_N if n is None else n
    notes = []
    note = small_n_note(n, int(getattr(fnet, "dim", 256)))
    if note:
        warn(note)
        notes.append(note)
    kind, ds = _training_data(pipe, data)
    say = progress or (lambda *a: None)
    t_start = time.perf_counter()

    ref_idx, prompt_idx = reference_split(len(ds), n, seed)

    def picture(i):
        return ds[i]["image"]

    reference = torch.stack([picture(i) for i in ref_idx])
    prompts = labels = None
    table = None
    if pipe.condition == "text":
        if kind == "builtin":
            prompts = [ds.caption(i) for i in prompt_idx]
            table = torch.tensor([ds.scene(i).attr_indices() for i in prompt_idx], dtype=torch.long)
        else:
            prompts = [ds.captions[i] for i in prompt_idx]
    elif pipe.condition == "label":
        if kind == "builtin":
            labels = [ds.scene(i).label for i in prompt_idx]
        else:
            labels = [ds.labels[i] for i in prompt_idx]
        if max(labels) >= len(pipe.classes):
            raise UserError(f"{data}: has more classes than the model ({len(pipe.classes)})")

    generated, per_image = sample_many(pipe, n, prompts=prompts, labels=labels, seed=seed, batch=batch,
                                       steps=steps, sampler=sampler, cfg=cfg,
                                       progress=lambda d, t: say("painting", d, t))
    say("features", 0, 1)
    f_gen, p_gen = fnet.features_and_predictions(generated)
    f_ref, p_ref = fnet.features_and_predictions(reference)
    precision, recall = precision_recall(f_ref, f_gen, k=3)
    report = {
        "model": str(model), "data": "builtin" if kind == "builtin" else str(data), "n": n, "steps": steps,
        "sampler": sampler, "cfg": cfg, "seed": seed, "condition": pipe.condition,
        "fd_art": frechet_distance(f_gen, f_ref),
        "kid": kid(f_gen, f_ref),
        "precision": precision, "recall": recall,
    }
    if table is not None:
        report.update(adherence_scores(p_gen, table))
        report["adherence_per_family"] = adherence_per_family(p_gen, table)
        ref_table = torch.tensor([ds.scene(i).attr_indices() for i in ref_idx], dtype=torch.long)
        report["adherence_real"] = adherence_scores(p_ref, ref_table)["adherence"]
    say("swd", 0, 1)
    swd = swd_laplacian(generated, reference, seed=seed)
    report["swd"], report["swd_levels"] = swd["mean"], swd["levels"]
    if memorization:
        say("memorization", 0, 1)
        chunks = _chunks(ds)
        m = memo(generated, chunks, size=min(16, pipe.resolution))
        report["near_copy_fraction"] = m["near_copy_fraction"]
        report["near_copy_threshold"] = m["threshold"]
        report["nearest_ratio_median"] = float(torch.tensor(m["ratios"]).median())
        report["training_pictures"] = m["training_pictures"]
    report["seconds_per_image"] = per_image
    report["seconds"] = time.perf_counter() - t_start
    note = negative_kid_note(report["kid"], n)
    if note:
        warn(note)
        notes.append(note)
    if notes:
        report["notes"] = notes
    _finite(report)
    return report


def _evaluate_prompts(pipe, items, *, source, model, per_prompt: int, steps: int, sampler: str, cfg: float,
                      seed: int, batch: int, fnet, say) -> dict:
    """Adherence to a prompt set: prompt i painted ``per_prompt`` times (pictures i·k … i·k + k - 1, seed
    ``seed +`` picture), each read back by the feature network; only the predictions are kept."""
    t_start = time.perf_counter()
    k = per_prompt
    _warn_cut(pipe, items, source)
    texts = [it.prompt for it in items for _ in range(k)]
    table = torch.tensor([it.attr_indices() for it in items for _ in range(k)], dtype=torch.long)
    total = len(texts)
    got: dict[str, list[torch.Tensor]] = {name: [] for name in ATTRIBUTES}
    t_paint = time.perf_counter()
    for _, pictures in sample_batches(pipe, total, prompts=texts, seed=seed, batch=batch, steps=steps,
                                      sampler=sampler, cfg=cfg, progress=lambda d, t: say("painting", d, t)):
        pred = fnet.predict(pictures)
        for name in ATTRIBUTES:
            got[name].append(pred[name].cpu())
    per_image = (time.perf_counter() - t_paint) / total
    pred = {name: torch.cat(v) for name, v in got.items()}
    report = {
        "model": str(model), "prompts": _source_name(source), "prompt_count": len(items), "per_prompt": k,
        "n": total, "steps": steps, "sampler": sampler, "cfg": cfg, "seed": seed, "condition": pipe.condition,
    }
    report.update(adherence_scores(pred, table))
    report["adherence_per_family"] = adherence_per_family(pred, table)
    report["worst"] = _worst(items, pred, table, k)
    report["seconds_per_image"] = per_image
    report["seconds"] = time.perf_counter() - t_start
    report["notes"] = [PROMPTS_NOTE]
    _finite(report)
    return report


def _source_name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) or hasattr(source, "__fspath__") else "list"


def _warn_cut(pipe, items, source) -> None:
    """One warning line when prompts have more word pieces than the model reads (their ends are not seen)."""
    enc = pipe.text_encoder
    keep = enc.max_tokens - 2
    cut = [it for it in items if enc.word_pieces(it.prompt) > keep]
    if cut:
        where = f"{_source_name(source)} line {cut[0].line}" if cut[0].line else f"prompt {cut[0].prompt!r}"
        warn(f"prompts: {len(cut)} of {len(items)} have more than the {keep} word pieces the model reads and are "
             f"cut (the first: {where})")


def _worst(items, pred, table, k: int, limit: int = WORST) -> list[dict]:
    """The prompts adhered to least (content first, then everything; file order among equals), each with what the
    feature network read instead of every attribute it missed (the most common wrong reading over its k seeds)."""
    names = list(ATTRIBUTES)
    ok = adherence_hits(pred, table)
    content = torch.ones(len(table), dtype=torch.bool)
    for a in CONTENT_ATTRIBUTES:
        content &= ok[a]
    every = content.clone()
    for a in LAYOUT_ATTRIBUTES:
        every &= ok[a]
    c = content.view(-1, k).double().mean(1)
    e = every.view(-1, k).double().mean(1)
    order = sorted(range(len(items)), key=lambda i: (float(c[i]), float(e[i]), i))
    out = []
    for i in order[:limit]:
        if c[i] == 1 and e[i] == 1:
            break
        rows = slice(i * k, (i + 1) * k)
        missed = {}
        for a in names:
            wrong = pred[a][rows][~ok[a][rows]]
            if len(wrong):
                missed[a] = ATTRIBUTES[a][int(torch.mode(wrong).values)]
        entry = {"prompt": items[i].prompt, "attributes": items[i].attributes_text(), "adherence": float(c[i]),
                 "adherence_all": float(e[i]), "read_instead": missed}
        if items[i].line:
            entry["line"] = items[i].line
        out.append(entry)
    return out


def _finite(report: dict) -> None:
    """Non-finite floats (an attribute no prompt names) become None: JSON has no NaN."""
    for key, v in list(report.items()):
        if isinstance(v, float) and not math.isfinite(v):
            report[key] = None
        elif isinstance(v, dict):
            for k2, v2 in list(v.items()):
                if isinstance(v2, float) and not math.isfinite(v2):
                    v[k2] = None


def _chunks(ds, chunk: int = 4096):
    """Every training picture, a chunk at a time (60,000 built-in pictures need not sit in memory at once)."""
    for k in range(0, len(ds), chunk):
        yield torch.stack([ds[i]["image"] for i in range(k, min(len(ds), k + chunk))])

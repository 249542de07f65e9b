"""Caption families: deterministic per rng, every attribute stated (parsed back with the training synonym lists),
a vocabulary that TRAIN_WORDS covers exactly, and the background clause dropped rarely."""
from __future__ import annotations

import collections
import random

import pytest

from noisebrush.data import captions
from noisebrush.data.captions import TRAIN_WORDS, phrase, words
from noisebrush.data.procedural import Scene, make_scene

# The training synonyms exactly as issue 13's plan gives them (helper B's held-out set uses other words): written
# out here, not imported, so that a word added to the module's tables fails the parse-back test.
COLOURS = {
    "red": ["red", "ruby", "cherry", "crimson"], "orange": ["orange", "tangerine", "amber"],
    "yellow": ["yellow", "lemon", "canary"], "green": ["green", "emerald", "grass green"],
    "teal": ["teal", "turquoise"], "blue": ["blue", "cobalt", "sapphire"], "purple": ["purple", "violet"],
    "pink": ["pink", "rose", "salmon pink"], "white": ["white", "snow white", "ivory"],
    "black": ["black", "jet black", "ebony"],
}
SHAPES = {"circle": ["circle", "disc", "dot"], "square": ["square", "block"], "triangle": ["triangle", "wedge"]}
SIZES = {"small": ["small", "little"], "medium": ["medium", "medium-sized"], "large": ["large", "big"]}
POSITIONS = {"left": ["on the left", "at the left"], "centre": ["in the centre", "in the center", "in the middle"],
             "right": ["on the right", "at the right"]}
NUMBERS = ["one", "two", "three", "four", "five", "six"]
GROUNDS = {"mountains": ["mountains", "peaks"], "hills": ["hills"], "sea": ["sea", "ocean"]}
EXTRAS = ["an illustration of", "a picture of", "simple", "lovely", "a drawing of"]
# words that carry no attribute
FILLER = {"a", "an", "the", "of", "on", "in", "at", "and", "with", "over", "centred", "illustration", "picture",
          "drawing", "simple", "lovely", "petals", "arm", "arms"}


def _table() -> dict[tuple[str, ...], tuple]:
    t: dict[tuple[str, ...], tuple] = {}

    def add(text, *item):
        t[tuple(text.split())] = item

    for v, ws in COLOURS.items():
        for w in ws:
            add(w, "colour", v)
    for v, ws in SHAPES.items():
        for w in ws:
            add(w, "shape", v, 1)
            add(w + "s", "shape", v, 2)
    for v, ws in SIZES.items():
        for w in ws:
            add(w, "size", v)
    for v, ws in POSITIONS.items():
        for w in ws:
            add(w, "position", v)
    for k, w in enumerate(NUMBERS):
        add(w, "count", w)
        add(str(k + 1), "count", w)
    for v, ws in GROUNDS.items():
        for w in ws:
            add(w, "ground", v)
    for w in ("mondrian grid", "mondrian painting", "grid of rectangles"):
        add(w, "family", "mondrian")
    for w in ("flower", "blossom"):
        add(w, "family", "flower")
    for w in ("swirl", "spiral"):
        add(w, "family", "swirl")
    add("concentric", "concentric")
    add("rings", "shape", "circle", 2, "rings")
    add("sun", "body", "sun")
    add("moon", "body", "moon")
    add("setting", "sky", "sunset")
    add("at sunset", "sky", "sunset")
    add("at night", "sky", "night")
    add("by day", "sky", "day")
    add("in daylight", "sky", "day")
    add("background", "bg")
    add("starry sky", "bg")
    return t


TABLE = _table()
LONGEST = max(len(k) for k in TABLE)


def parse(text: str) -> dict[str, str]:
    """The attributes a caption states, read with the training synonym lists only (fails on an unknown word)."""
    toks = words(text)
    items, i = [], 0
    while i < len(toks):
        for n in range(LONGEST, 0, -1):
            key = tuple(toks[i:i + n])
            if len(key) == n and key in TABLE:
                items.append(TABLE[key])
                i += n
                break
        else:
            assert toks[i] in FILLER, f"unknown word {toks[i]!r} in {text!r}"
            items.append(("word", toks[i]))
            i += 1
    kinds = collections.defaultdict(list)
    for it in items:
        kinds[it[0]].append(it)
    out: dict[str, str] = {}
    # colours: a colour followed by "background"/"starry sky", or after on/over/and (articles skipped), is colour2
    main, second = [], []
    for k, it in enumerate(items):
        if it[0] != "colour":
            continue
        prev = [x for x in items[:k] if x not in (("word", "a"), ("word", "an"))]
        is_bg = (k + 1 < len(items) and items[k + 1][0] == "bg") or \
            (prev and prev[-1][0] == "word" and prev[-1][1] in ("on", "over", "and"))
        (second if is_bg else main).append(it[1])
    assert len(main) == 1 and len(second) <= 1, (text, main, second)
    out["colour"] = main[0]
    if second:
        out["colour2"] = second[0]
    fam = {it[1] for it in kinds["family"]}
    if kinds["concentric"] or any(len(it) > 3 for it in kinds["shape"]):
        fam.add("rings")
    if kinds["body"]:
        fam.add("landscape")
    if not fam and kinds["shape"]:
        fam.add("shapes")
    assert len(fam) == 1, (text, fam)
    out["family"] = family = fam.pop()
    for name in ("size", "position", "ground", "count"):
        vals = [it[1] for it in kinds[name]]
        assert len(vals) <= 1, (text, name, vals)
        if vals:
            out[name] = vals[0]
    if kinds["shape"]:
        assert len(kinds["shape"]) == 1, text
        _, shape, number, *_ = kinds["shape"][0]
        out["shape"] = shape
        if family == "shapes":
            if number == 1:  # a singular noun states one ("a", "one" or a bare noun)
                assert out.get("count", "one") == "one", text
                out["count"] = "one"
            else:
                assert out.get("count", "one") != "one", text
    if family == "rings":
        out.setdefault("position", "centre")  # the canonical caption says nothing for the centre either
    if family == "landscape":
        (body,) = [it[1] for it in kinds["body"]]
        skies = {it[1] for it in kinds["sky"]}
        assert len(skies) <= 1, text
        sky = skies.pop() if skies else ("night" if body == "moon" else "day")
        assert (body == "moon") == (sky == "night"), text
        out["sky"] = sky
    return out


# ---------------------------------------------------------------------------------------------------------------


N_SCENES = 4000


def _phrasings(n=N_SCENES, per=2):
    for i in range(n):
        scene = make_scene(0, i)
        for j in range(per):
            yield scene, phrase(scene, random.Random(i * 1000 + j))


def test_canonical_captions_parse_back():
    """The parser itself is right: every canonical caption reads back as its scene's attributes."""
    for i in range(2000):
        scene = make_scene(0, i)
        assert parse(scene.caption) == dict(scene.attributes), scene.caption


def test_every_phrasing_states_every_attribute():
    droppable = collections.Counter()
    dropped = collections.Counter()
    for scene, text in _phrasings():
        want, got = dict(scene.attributes), parse(text)
        if scene.family == "mondrian":  # the canonical caption names no first colour either
            assert {got.get("colour"), got.get("colour2")} == {want["colour"], want["colour2"]}, text
            want.pop("colour"), want.pop("colour2"), got.pop("colour"), got.pop("colour2", None)
        elif scene.family != "landscape":
            droppable[scene.family] += 1
            if "colour2" not in got:  # the background clause was left out: allowed, rarely
                dropped[scene.family] += 1
                want.pop("colour2")
        assert got == want, (scene.caption, text)
    for family, n in droppable.items():
        assert 0.08 < dropped[family] / n < 0.25, (family, dropped[family], n)


def test_train_words_cover_exactly_what_phrase_can_emit():
    seen = set()
    for scene, text in _phrasings():
        seen.update(words(text))
        seen.update(words(scene.caption))
    assert seen - TRAIN_WORDS == set()
    assert TRAIN_WORDS - seen == set()  # no word listed that training never uses (it would bind the held-out set)
    for table in (COLOURS, SHAPES, SIZES, POSITIONS, GROUNDS):
        for ws in table.values():
            for w in ws:
                assert set(words(w)) <= TRAIN_WORDS, w
    assert all(set(words(e)) <= TRAIN_WORDS for e in EXTRAS)


def test_the_module_uses_exactly_the_planned_synonyms():
    assert {k: list(v) for k, v in captions.COLOUR_WORDS.items()} == COLOURS
    assert {k: list(v) for k, v in captions.SHAPE_WORDS.items()} == SHAPES
    assert {k: list(v) for k, v in captions.SIZE_WORDS.items()} == SIZES
    assert {k: list(v) for k, v in captions.POSITION_WORDS.items()} == POSITIONS
    assert {k: list(v) for k, v in captions.GROUND_WORDS.items()} == GROUNDS
    assert list(captions.EXTRA_WORDS) == EXTRAS


def test_one_rng_seed_gives_one_phrasing_and_seeds_vary_it():
    scene = make_scene(0, 8)  # four medium white squares on a black background
    for seed in range(50):
        assert phrase(scene, random.Random(seed)) == phrase(scene, random.Random(seed))
    rng = random.Random(5)
    assert [phrase(scene, rng) for _ in range(5)] == [phrase(scene, r) for r in [random.Random(5)] for _ in range(5)]
    variety = {phrase(scene, random.Random(seed)) for seed in range(300)}
    assert len(variety) > 150
    assert scene.caption in variety  # the canonical caption is one of the family
    # Pinned: a change of grammar changes what a resumed "family" run sees. Change these on purpose only.
    assert phrase(scene, random.Random(3)) == "on a black background, four medium-sized squares in snow white"
    assert phrase(make_scene(0, 13), random.Random(3)) == \
        "on salmon pink, two concentric lemon squares, centred at the right"


def test_an_unknown_family_is_one_error_line():
    from noisebrush.errors import BadParameter

    odd = Scene("cubes", {"family": "cubes"}, "a cube", ())
    with pytest.raises(BadParameter, match="no caption family"):
        phrase(odd, random.Random(0))

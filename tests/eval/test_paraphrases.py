"""The held-out paraphrase set (``src/noisebrush/eval/paraphrases.tsv``, issue 13): big enough, every family, valid
attributes, and held out — no word of it is a word the training captions use, function words and digits aside.

The set was written once by :func:`recipe` (``python tests/eval/test_paraphrases.py --write``) and then read by eye;
it is data, committed: the recipe is kept to show how, not re-run by the tests. The scenes (and so the attribute
combinations) are ProceduralArt's with data seed 1313, so every combination is one the data set draws; the words,
phrasings and orders are the recipe's own: synonyms training never uses, the background before the subject,
"X-coloured", possessives, relative-clause orders ("a box, huge and lime, rightmost"), positions as "leftmost" /
"off to the east" / "at the heart", counts as "a trio of", petals as "5-petalled", arms as "twin-tailed". Every
prompt fits in the word pieces the built-in model reads (14), so none is cut.
"""
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from noisebrush.data.procedural import ATTRIBUTES, FAMILIES, make_scene
from noisebrush.eval.prompts import PARAPHRASES, PromptItem, format_prompts, read_prompts

# Words the set may share with the training captions: articles and prepositions (and digits, which are no words here)
FUNCTION_WORDS = frozenset({"a", "an", "the", "of", "on", "in", "with", "and", "over", "at", "to"})

# The training vocabulary as issue 13's helper brief gives it (the caption family's synonym lists) and the canonical
# captions' own words (noisebrush.data.procedural): checked even before noisebrush.data.captions exists.
BRIEF_TRAIN_WORDS = frozenset("""
red ruby cherry crimson orange tangerine amber yellow lemon canary green emerald grass teal turquoise blue cobalt
sapphire purple violet pink rose salmon white snow ivory black jet ebony
circle circles disc discs dot dots square squares block blocks triangle triangles wedge wedges
small little medium sized large big left right centre center middle centred
one two three four five six sun moon setting sunset night day daylight by mountains peaks hills sea ocean
mondrian grid painting rectangles flower flowers blossom blossoms petals petal concentric rings ring swirl swirls
spiral spirals arm arms starry sky illustration picture simple lovely drawing background
""".split())


def _words(text: str) -> list[str]:
    """The words of ``text`` as the check sees them: runs of letters, lower case (so "mid-scale" is two words and a
    digit is none)."""
    return re.findall(r"[a-z]+", text.lower())


def _train_words() -> frozenset:
    try:
        from noisebrush.data.captions import TRAIN_WORDS  # lazy: helper A's module may not exist yet
    except ImportError as e:
        pytest.skip(f"noisebrush.data.captions.TRAIN_WORDS is not there yet ({e}); BRIEF_TRAIN_WORDS is checked")
    return frozenset(w for entry in TRAIN_WORDS for w in _words(entry))


@pytest.fixture(scope="module")
def items():
    return read_prompts(PARAPHRASES)


def test_size_families_and_attributes(items):
    assert len(items) >= 300
    assert len({it.prompt for it in items}) == len(items), "a prompt is there twice"
    families = Counter(it.attributes["family"] for it in items)
    assert set(families) == set(FAMILIES)
    assert min(families.values()) >= 0.5 * len(items) / len(FAMILIES), families  # in rough proportion
    shapes = [it.attributes for it in items if it.attributes["family"] == "shapes"]
    assert {a["shape"] for a in shapes} == set(ATTRIBUTES["shape"])
    assert {a["count"] for a in shapes} == {"one", "two", "three", "four", "five"}
    assert {a["size"] for a in shapes} == set(ATTRIBUTES["size"])
    assert {a.get("position") for a in shapes} >= set(ATTRIBUTES["position"])
    lands = [it.attributes for it in items if it.attributes["family"] == "landscape"]
    assert {a["sky"] for a in lands} == set(ATTRIBUTES["sky"]) and {a["ground"] for a in lands} == set(ATTRIBUTES["ground"])
    for it in items:  # read_prompts checked every name and value; each row also names the family and its colour
        assert {"family", "colour"} <= set(it.attributes), it


def test_held_out_of_the_briefs_training_words(items):
    banned = BRIEF_TRAIN_WORDS - FUNCTION_WORDS
    found = {(it.line, w) for it in items for w in _words(it.prompt) if w in banned}
    assert not found, sorted(found)[:20]


def test_held_out_of_the_caption_family(items):
    """Against the words noisebrush.data.captions can emit (helper A's module; skipped until it exists)."""
    banned = _train_words() - FUNCTION_WORDS
    found = {(it.line, w) for it in items for w in _words(it.prompt) if w in banned}
    assert not found, sorted(found)[:20]


def test_no_prompt_is_cut_by_the_built_in_model(items):
    """The built-in model reads max_tokens - 2 word pieces; a longer prompt would lose its end, and with it
    attributes the score still asks for."""
    import json

    from noisebrush.io.model_folder import BUILTIN
    from noisebrush.nets.text import TextEncoder

    conf = json.loads((Path(BUILTIN) / "config.json").read_text())
    enc = TextEncoder(max_tokens=conf["text_encoder"]["max_tokens"])
    try:
        long = [(it.line, enc.word_pieces(it.prompt)) for it in items if enc.word_pieces(it.prompt) > enc.max_tokens - 2]
    except Exception as e:  # noqa: BLE001 - the encoder package missing
        pytest.skip(f"text encoder not available: {e}")
    assert not long, long[:10]


# ------------------------------------------------------------------------------------------------------------------
# The recipe (run once; the file was then read by eye)
# ------------------------------------------------------------------------------------------------------------------

COLOUR = {
    "red": ["scarlet", "vermilion", "tomato-coloured"],
    "orange": ["pumpkin", "apricot", "carrot-coloured"],
    "yellow": ["gold", "golden", "mustard"],
    "green": ["lime", "jade", "leafy"],
    "teal": ["aqua", "cyan"],
    "blue": ["navy", "azure", "ultramarine"],
    "purple": ["lilac", "lavender", "plum", "mauve"],
    "pink": ["fuchsia", "magenta", "bubblegum"],
    "white": ["cream", "pearl", "milky"],
    "black": ["coal", "inky", "pitch-dark"],
}
TAKES_COLOURED = {"pumpkin", "apricot", "mustard", "lime", "jade", "plum", "mauve", "bubblegum", "cream", "pearl",
                  "coal", "lilac", "lavender"}
SHAPE = {"circle": (["ball", "orb", "round spot"], ["balls", "orbs", "round spots"]),
         "square": (["tile", "box", "cube"], ["tiles", "boxes", "cubes"]),
         "triangle": (["pyramid", "triangular form", "arrowhead"], ["pyramids", "triangular forms", "arrowheads"])}
SIZE = {"small": ["tiny", "petite", "wee"], "medium": ["middling", "moderate", "mid-scale"],
        "large": ["huge", "giant", "enormous"]}
PLACE = {"left": ["leftmost", "off to the west", "near the west edge"],
         "right": ["rightmost", "off to the east", "near the east edge"],
         "centre": ["at the heart", "midway across", "central"]}
COUNT = {"one": ["a single", "a lone", "a solitary"], "two": ["a pair of", "a couple of", "twin"],
         "three": ["a trio of"], "four": ["a quartet of"], "five": ["a quintet of"]}
BODY = {"day": ["solar orb", "solar globe", "fireball", "blazing orb"],
        "sunset": ["solar orb", "solar globe", "fireball", "blazing orb"],
        "night": ["lunar orb", "lunar globe", "crescent"]}
WHEN = {"day": ["", "", "at noon", "at midday", "in broad sunshine"], "sunset": ["at dusk", "at sundown", "as dusk falls"],
        "night": ["after dark", "at midnight"]}
GROUND = {"mountains": ["alps", "summits", "ranges", "crags"], "hills": ["downs", "knolls", "slopes"]}
GRID = ["de stijl composition", "de stijl panel", "neoplastic composition", "piet-style composition",
        "geometric abstract"]
BLOOM = ["bloom", "daisy", "wildflower"]
TAILS = {"one": ["single-tailed", "lone-tailed"], "two": ["twin-tailed", "double-tailed"], "three": ["triple-tailed"]}
TAILS_WITH = {"one": ["a lone tail", "a single tail"], "two": ["twin tails", "a pair of tails"],
              "three": ["a trio of tails", "triple tails"]}
NESTED = {"two": ["a pair of", "twin"], "three": ["a trio of", "triple"], "four": ["a quartet of"]}


def _a(*words: str) -> str:
    """The words that are not empty, after "a" or "an" as the first one asks."""
    words = [w for w in words if w]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def _and(size: str, colour: str) -> str:
    return f"{size} and {colour}" if size else colour


def _colour(rng, name: str, coloured: bool = True) -> str:
    word = rng.choice(COLOUR[name])
    if coloured and word in TAKES_COLOURED and rng.random() < 0.2:
        word += "-coloured"
    return word


def _backdrop(rng, c: str) -> str:
    return rng.choice([f"against {_a(c)} wall", f"on {_a(c)} backdrop", f"against {c}", f"on {_a(c)} canvas",
                       f"upon {c} paper", f"with {_a(c)} backdrop"])


def _size_pos(rng, at):
    """A size and a position word for ``at`` ("" where it names none)."""
    return (rng.choice(SIZE[at["size"]]) if "size" in at else "",
            rng.choice(PLACE[at["position"]]) if "position" in at else "")


def _shapes(rng, at):
    c, c2 = _colour(rng, at["colour"]), _colour(rng, at["colour2"], False)
    size, pos = _size_pos(rng, at)
    one, many = SHAPE[at["shape"]]
    cnt = rng.choice(COUNT[at["count"]])
    if at["count"] == "one":
        noun = rng.choice(one)
        options = [f"{cnt} {size} {c} {noun} {pos} {_backdrop(rng, c2)}",
                   f"against {_a(c2)} wall: {cnt} {size} {c} {noun} {pos}",
                   f"{_a(noun)}, {_and(size, c)}, {pos} {_backdrop(rng, c2)}",
                   f"{c2} backdrop; {pos}, {cnt} {size} {c} {noun}",
                   f"{_a(c2)} canvas's {size} {c} {noun}, {pos}",
                   f"{pos}: {_a(size, c, noun)}, {c2} behind it"]
    else:
        noun = rng.choice(many)
        options = [f"{cnt} {size} {c} {noun} {_backdrop(rng, c2)}",
                   f"against {_a(c2)} wall, {cnt} {size} {c} {noun}",
                   f"{cnt} {noun}, {_and(size, c)}, {_backdrop(rng, c2)}",
                   f"{_a(c2)} canvas holding {cnt} {size} {c} {noun}",
                   f"{cnt} {c} {noun}, each {size}, against {c2}" if size else f"{cnt} {c} {noun} against {c2}",
                   f"{_a(c2)} wall's {cnt.removeprefix('a ')} {size} {c} {noun}"]
    return options


def _landscape(rng, at):
    c, c2 = _colour(rng, at["colour"]), _colour(rng, at["colour2"], False)
    size, pos = _size_pos(rng, at)
    body, when = rng.choice(BODY[at["sky"]]), rng.choice(WHEN[at["sky"]])
    if at["ground"] == "sea":
        ground = rng.choice([f"{c2} waves", f"{c2} water", f"{_a(c2)} bay"])
    else:
        ground = f"{c2} {rng.choice(GROUND[at['ground']])}"
    options = [f"{_a(size, c, body)} {pos} above {ground} {when}",
               f"{ground} beneath {_a(size, c, body)}, {pos}, {when}",
               f"{pos}, {_a(size, c, body)} hangs over {ground} {when}",
               f"{when}: {_a(size, c, body)} {pos} above {ground}"]
    return options


def _mondrian(rng, at):
    c, c2 = _colour(rng, at["colour"], False), _colour(rng, at["colour2"], False)
    noun = rng.choice(GRID)
    return [f"{_a(noun)} in {c} and {c2}", f"{c} and {c2} {noun}", f"{noun}: {c} plus {c2} panels",
            f"{c} panels beside {c2} ones, de stijl", f"{_a(noun)} with {c} and {c2} panels",
            f"ruled panels of {c} and {c2}", f"geometric abstract of {c} and {c2} panels"]


def _flower(rng, at):
    c, c2 = _colour(rng, at["colour"]), _colour(rng, at["colour2"], False)
    size, pos = _size_pos(rng, at)
    petals = f"{ATTRIBUTES['count'].index(at['count']) + 1}-petalled"
    noun = rng.choice(BLOOM)
    return [f"{_a(size, c, petals, noun)} {pos} against {c2}",
            f"{c2} backdrop: {_a(size, c, petals, noun)} {pos}",
            f"{_a(noun)}, {_and(size, c)}, {petals}, {pos} on {c2}",
            f"{petals} {noun}, {_and(size, c)}, {pos}, {c2} behind",
            f"{pos}, {_a(size, petals, c, noun)} upon {c2}"]


def _rings(rng, at):
    c, c2 = _colour(rng, at["colour"]), _colour(rng, at["colour2"], False)
    _, pos = _size_pos(rng, at)
    cnt = rng.choice(NESTED[at["count"]])
    if at["shape"] == "circle":
        group = rng.choice([f"{cnt} nested {c} hoops", f"{cnt} nested {c} loops",
                            f"{_a(c)} bullseye of {cnt} bands", f"{_a(c)} target of {cnt} bands"])
    else:
        group = rng.choice([f"{cnt} nested {c} frames", f"{cnt} nested {c} boxes", f"{cnt} {c} boxes, nested"])
    return [f"{group} on {c2}, {pos}", f"{pos}: {group} against {c2}", f"{_a(c2)} canvas with {group} {pos}"]


def _swirl(rng, at):
    c, c2 = _colour(rng, at["colour"]), _colour(rng, at["colour2"], False)
    size, pos = _size_pos(rng, at)
    noun = rng.choice(["vortex", "whirlpool", "whirl"])
    tails, with_tails = rng.choice(TAILS[at["count"]]), rng.choice(TAILS_WITH[at["count"]])
    return [f"{_a(size, c, tails, noun)} {pos}, stars on {c2}",
            f"{_a(size, c, noun)} with {with_tails} {pos}, stars on {c2}",
            f"stars on {c2}: {_a(size, c, tails, noun)} {pos}",
            f"{_a(size, c, tails, noun)} {pos} amid stars, {c2} behind",
            f"star-filled {c2} heavens: {_a(size, c, noun)} with {with_tails} {pos}",
            f"{_a(noun)}, {_and(size, c)}, with {with_tails}, {pos}, stars on {c2}"]


PHRASE = {"shapes": _shapes, "landscape": _landscape, "mondrian": _mondrian, "flower": _flower, "rings": _rings,
          "swirl": _swirl}


def _tidy(text: str) -> str:
    """The punctuation an empty word leaves behind, removed."""
    text = " ".join(text.split())
    for _ in range(3):
        text = re.sub(r"\s+([,:;])", r"\1", text)
        text = re.sub(r"([,:;])(\s*[,:;])+", r"\1", text)
    return text.strip(",:; ")


def recipe(per_family: int = 60, seed: int = 1313, max_pieces: int = 14) -> list[PromptItem]:
    """The paraphrase set: ``per_family`` scenes of each family from ProceduralArt (data seed ``seed``), each phrased
    with a template picked at random and words drawn until the phrasing fits ``max_pieces`` word pieces, is new and
    uses no training word (the next template when none does). A scene whose every phrasing is too long loses its
    position, then its size (the row then does not score them)."""
    from noisebrush.nets.text import TextEncoder

    enc = TextEncoder(max_tokens=max_pieces + 2)
    rng = random.Random(seed)
    banned = BRIEF_TRAIN_WORDS - FUNCTION_WORDS
    got: dict[str, list[PromptItem]] = {f: [] for f in FAMILIES}
    seen = set()
    index = 0
    while any(len(v) < per_family for v in got.values()):
        scene = make_scene(seed, index)
        index += 1
        if len(got[scene.family]) >= per_family:
            continue
        for drop in ((), ("position",), ("size",), ("position", "size")):
            at = {k: v for k, v in scene.attributes.items() if k not in drop}
            templates = list(range(len(PHRASE[scene.family](rng, at))))
            rng.shuffle(templates)
            text = next((t for k in templates for t in (_tidy(PHRASE[scene.family](rng, at)[k]) for _ in range(60))
                         if t not in seen and not any(w in banned for w in _words(t))
                         and enc.word_pieces(t) <= max_pieces), None)
            if text is not None:
                seen.add(text)
                got[scene.family].append(PromptItem(text, at))
                break
        else:
            raise RuntimeError(f"no phrasing fits for {scene.caption!r}")
    return [it for f in FAMILIES for it in got[f]]


if __name__ == "__main__":
    if "--write" in sys.argv:
        PARAPHRASES.write_text(format_prompts(recipe()), encoding="utf-8")
        print(f"wrote {PARAPHRASES}")
    else:
        print(format_prompts(recipe()), end="")

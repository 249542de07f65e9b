"""Caption families: many phrasings of one ProceduralArt scene, so that a model trained on them learns the meaning
of a caption rather than the exact tokens of one template.

    import random
    from noisebrush.data.captions import TRAIN_WORDS, phrase, words
    from noisebrush.data.procedural import make_scene

    scene = make_scene(0, 8)      # scene.caption == "four medium white squares on a black background"
    phrase(scene, random.Random(3))   # e.g. "on a jet black background, 4 medium-sized snow white blocks"
    set(words(phrase(scene, random.Random(3)))) <= TRAIN_WORDS     # always True

``phrase(scene, rng)`` draws every choice from ``rng`` (a ``random.Random``) and from nothing else, so one rng seed
gives one phrasing. Training seeds it per sample from (run seed, global sample id) — see
:meth:`noisebrush.train.stream.SampleStream.caption_rng` — so a resumed run sees the same phrasings. The canonical
caption (``scene.caption``, the one template) is untouched: eval, the tests, old runs and the shipped model use it.

``TRAIN_WORDS`` is every word a phrasing (or a canonical caption) can contain, split as :func:`words` splits (lower
case, on white space, with ``,`` ``:`` ``;`` ``.`` stripped; ``medium-sized`` is one word, ``grass green`` two).
A held-out paraphrase set is held out when it avoids these words (function words aside).

The grammar
-----------

With probability ``P_TEMPLATE`` the phrasing is the canonical caption itself. Otherwise it is built from the scene's
attributes; ``{x|y}`` is a uniform choice, ``[x]`` an optional part, and these choices are made once per phrasing:

* **synonyms** (the only words used for each value; a held-out set uses other ones):

  - colours: red {red|ruby|cherry|crimson}; orange {orange|tangerine|amber}; yellow {yellow|lemon|canary};
    green {green|emerald|grass green}; teal {teal|turquoise}; blue {blue|cobalt|sapphire}; purple {purple|violet};
    pink {pink|rose|salmon pink}; white {white|snow white|ivory}; black {black|jet black|ebony}
  - shapes: circle {circle|disc|dot}; square {square|block}; triangle {triangle|wedge} (plural: + "s")
  - sizes: small {small|little}; medium {medium|medium-sized}; large {large|big}
  - positions: left {on the left|at the left}; centre {in the centre|in the center|in the middle};
    right {on the right|at the right}
  - counts: the word ("three") or, with probability ``P_DIGIT``, the digit ("3"); one shape is "a"/"an" or "one"
  - landscape: sun; moon (night); sunset {"setting" after the sun | "at sunset"}; night {"at night" | nothing (the
    moon says it), 1 in 4}; day {nothing | by day | in daylight}; ground: mountains {mountains|peaks}, hills
    {hills}, sea {sea|ocean}
  - mondrian {mondrian grid|mondrian painting|grid of rectangles}; flower {flower|blossom} "with N petals";
    rings: of circles {concentric rings|concentric circles|rings}, of squares {concentric squares} (the family's
    own noun distinction); swirl {swirl|spiral} "with N arm(s)" "… starry sky"

* **the subject** (shapes, landscape, flower, swirl): ``COUNT [EXTRA-ADJ] SIZE COLOUR NOUN`` (shapes 3 in 5,
  the others 3 in 4), ``COUNT [EXTRA-ADJ] COLOUR NOUN, SIZE`` (shapes only, 1 in 5) or
  ``COUNT [EXTRA-ADJ] SIZE NOUN in COLOUR`` (shapes 1 in 5, the others 1 in 4); for one shape, a flower, a sun
  or a swirl COUNT is the article "a"/"an" (shapes: or "one"); a flower adds "with N petals", a swirl
  "with N arm(s)".
  Rings: ``COUNT [EXTRA-ADJ] {concentric COLOUR | COLOUR concentric} NOUN`` (or ``COUNT COLOUR rings``).
  Mondrian: ``a [EXTRA-ADJ] MONDRIAN in C1 and C2`` or ``a [EXTRA-ADJ] C1 and C2 MONDRIAN`` (either colour first:
  the canonical caption names no first colour either).
* **the position** (where the canonical caption has one) right after the subject or at the end. Rings in the
  centre say it only sometimes (the canonical caption never does); rings on a side say "centred on the left" (the
  canonical form) or a position phrase.
* **the background clause** (shapes: "on a C2 background", after a position also "of a C2 background", or
  "on C2"; flower and rings: "on C2" or "on a C2 background"; swirl: "{of|in|on} a C2 starry sky") comes after the
  subject, or (``P_BACKGROUND_FIRST``) first, followed by a comma: "on a blue background, three small red
  squares". With probability ``P_NO_BACKGROUND`` it is left out — about 17 % of all phrasings of these families,
  under the 25 % that leaves the model painting a sensible background of its own choice for a bare subject.
  Mondrian and landscape have no background clause to drop: their second colour is a grid colour or the ground.
* **landscape**: ``[TIME,] SUBJECT [setting] [POSITION] over [a] C2 GROUND [POSITION] [TIME]``.
* **extra words** (``P_EXTRA``): one of "an illustration of", "a picture of", "a drawing of" in front (never with a
  clause moved to the front), or "simple"/"lovely" after the count or article.
* **articles** (``P_BARE``): every "a"/"an" that is not a count is dropped ("small red circle on the left of blue
  background"); one shape then stays singular, which still states its count.

Every phrasing states every attribute the canonical caption states (the test parses them back with the synonym
lists above), except the background colour when the background clause is dropped.

Length. Phrasings are longer than the template: with the encoder's default ``max_tokens = 16`` (14 word pieces)
about a fifth of the landscapes, a third of the flowers and most swirls lose their last words (so does every
canonical swirl caption, by one word); ``max_tokens = 24`` keeps every phrasing whole. A family run warns when its
phrasings are cut (:class:`noisebrush.train.objectives.EDMObjective`).
"""
from __future__ import annotations

import random
import re
from typing import Sequence

from noisebrush.data.procedural import ATTRIBUTES, Scene
from noisebrush.errors import BadParameter

__all__ = [
    "COLOUR_WORDS",
    "EXTRA_WORDS",
    "GROUND_WORDS",
    "MONDRIAN_WORDS",
    "POSITION_WORDS",
    "P_BACKGROUND_FIRST",
    "P_NO_BACKGROUND",
    "P_TEMPLATE",
    "RING_WORDS",
    "SHAPE_WORDS",
    "SIZE_WORDS",
    "SKY_WORDS",
    "TRAIN_WORDS",
    "phrase",
    "words",
]

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "ruby", "cherry", "crimson"),
    "orange": ("orange", "tangerine", "amber"),
    "yellow": ("yellow", "lemon", "canary"),
    "green": ("green", "emerald", "grass green"),
    "teal": ("teal", "turquoise"),
    "blue": ("blue", "cobalt", "sapphire"),
    "purple": ("purple", "violet"),
    "pink": ("pink", "rose", "salmon pink"),
    "white": ("white", "snow white", "ivory"),
    "black": ("black", "jet black", "ebony"),
}
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "dot"),
    "square": ("square", "block"),
    "triangle": ("triangle", "wedge"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": ("medium", "medium-sized"),
    "large": ("large", "big"),
}
POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "centre": ("in the centre", "in the center", "in the middle"),
    "right": ("on the right", "at the right"),
}
SKY_WORDS: dict[str, tuple[str, ...]] = {  # "" = nothing said
    "day": ("", "by day", "in daylight"),
    "sunset": ("setting", "at sunset"),
    "night": ("at night",),
}
GROUND_WORDS: dict[str, tuple[str, ...]] = {
    "mountains": ("mountains", "peaks"),
    "hills": ("hills",),
    "sea": ("sea", "ocean"),
}
MONDRIAN_WORDS: tuple[str, ...] = ("mondrian grid", "mondrian painting", "grid of rectangles")
FLOWER_WORDS: tuple[str, ...] = ("flower", "blossom")
RING_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("concentric rings", "concentric circles", "rings"),
    "square": ("concentric squares",),
}
SWIRL_WORDS: tuple[str, ...] = ("swirl", "spiral")
EXTRA_WORDS: tuple[str, ...] = ("an illustration of", "a picture of", "simple", "lovely", "a drawing of")
_EXTRA_ADJ = ("simple", "lovely")

_NUMBERS = ATTRIBUTES["count"]  # "one" .. "six"

P_TEMPLATE = 0.15          # the canonical caption itself
P_EXTRA = 0.3              # one of EXTRA_WORDS
P_BARE = 0.2               # articles dropped
P_DIGIT = 0.4              # counts as digits
P_NO_BACKGROUND = 0.2      # background clause left out (families that have one)
P_BACKGROUND_FIRST = 0.2   # background clause (landscape: the time of day) moved to the front

# Words only the glue of the grammar and the canonical captions use.
_GLUE = ("a", "an", "one", "of", "on", "in", "at", "the", "and", "with", "over", "background", "starry", "sky",
         "petals", "arm", "arms", "centred", "sun", "moon", "centre")

_SPLIT = re.compile(r"[\s,;:.]+")


def words(text: str) -> list[str]:
    """The words of a caption as ``TRAIN_WORDS`` counts them: lower case, split on white space and ``,;:.``."""
    return [w for w in _SPLIT.split(text.lower()) if w]


def _plural(noun: str) -> str:
    return noun + "s"


def _vocabulary() -> frozenset[str]:
    phrases: list[str] = [*_GLUE, *_NUMBERS, *(str(n) for n in range(1, len(_NUMBERS) + 1)), *MONDRIAN_WORDS,
                          *FLOWER_WORDS, *SWIRL_WORDS, *EXTRA_WORDS]
    for table in (COLOUR_WORDS, SIZE_WORDS, POSITION_WORDS, SKY_WORDS, GROUND_WORDS, RING_WORDS):
        for options in table.values():
            phrases += options
    for options in SHAPE_WORDS.values():
        phrases += options
        phrases += [_plural(w) for w in options]
    return frozenset(w for p in phrases for w in words(p))


TRAIN_WORDS: frozenset[str] = _vocabulary()
"""Every word :func:`phrase` can emit, canonical captions included (see :func:`words` for how text is split)."""


# ----------------------------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------------------------


class _Choices:
    """The per-phrasing choices, all drawn from the rng in a fixed order."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.bare = rng.random() < P_BARE
        self.extra = rng.choice(EXTRA_WORDS) if rng.random() < P_EXTRA else ""
        self.digit = rng.random() < P_DIGIT
        self.no_background = rng.random() < P_NO_BACKGROUND
        self.front = rng.random() < P_BACKGROUND_FIRST and self.extra in ("", *_EXTRA_ADJ)

    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(options)

    def colour(self, name: str) -> str:
        return self.pick(COLOUR_WORDS[name])

    def article(self, next_word: str) -> str:
        """'a' or 'an' for the word that follows, or nothing when articles are dropped."""
        if self.bare:
            return ""
        return "an" if next_word[:1] in "aeiou" else "a"

    def number(self, name: str) -> str:
        return str(_NUMBERS.index(name) + 1) if self.digit else name

    def adjective(self) -> str:
        return self.extra if self.extra in _EXTRA_ADJ else ""

    def front_extra(self) -> str:
        """The noun-phrase extra ("an illustration of" …) with its article dropped when articles are."""
        if not self.extra or self.extra in _EXTRA_ADJ:
            return ""
        return self.extra.split(" ", 1)[1] if self.bare else self.extra


def _join(parts: Sequence[str]) -> str:
    return " ".join(p for p in parts if p)


def _with_article(c: _Choices, rest: Sequence[str]) -> str:
    """'a'/'an' (agreeing with the first word of ``rest``) + rest."""
    body = _join(rest)
    return _join([c.article(body), body])


def _subject(c: _Choices, size: str, colour: str, noun: str, *, orders=("plain", "plain", "plain", "in")) -> list[str]:
    """SIZE COLOUR NOUN in one of the word orders (see the module docstring), without count or article."""
    sz, col = c.pick(SIZE_WORDS[size]), c.colour(colour)
    order = c.pick(orders)
    if order == "after":
        return [col, noun + ",", sz]
    if order == "in":
        return [sz, noun, "in", col]
    return [sz, col, noun]


def _background(c: _Choices, clause: str, parts: list[str]) -> list[str]:
    """``parts`` with the background clause at the end, at the front, or (when dropped) without it."""
    if c.no_background:
        return parts
    if c.front:
        return [clause + ",", *parts]
    return [*parts, clause]


def _on_background(c: _Choices, colour2: str, after_position: bool, plain_ok: bool) -> str:
    col = c.colour(colour2)
    forms = ["background"] + (["plain"] if plain_ok else [])
    if c.pick(forms) == "plain":
        return f"on {col}"
    prep = c.pick(("of", "on")) if after_position and not c.front else "on"
    return _join([prep, c.article(col), col, "background"])


def _finish(c: _Choices, parts: Sequence[str]) -> str:
    text = _join([c.front_extra(), *parts])
    return text.rstrip(",")


# ----------------------------------------------------------------------------------------------------------------
# the families
# ----------------------------------------------------------------------------------------------------------------


def _shapes(a: dict, c: _Choices) -> str:
    n = _NUMBERS.index(a["count"]) + 1
    noun = c.pick(SHAPE_WORDS[a["shape"]])
    noun = noun if n == 1 else _plural(noun)
    body = [c.adjective(), *_subject(c, a["size"], a["colour"], noun, orders=("plain", "plain", "plain", "after",
                                                                             "in"))]
    if n == 1:
        subject = _join(["one", *body]) if c.pick(("article", "article", "one")) == "one" else _with_article(c, body)
    else:
        subject = _join([c.number(a["count"]), *body])
    if n == 1:
        pos = c.pick(POSITION_WORDS[a["position"]])
        late = c.rng.random() < 0.3
        clause = _on_background(c, a["colour2"], after_position=not late, plain_ok=True)
        if late:
            return _finish(c, _background(c, clause, [subject]) + [pos])
        return _finish(c, _background(c, clause, [subject, pos]))
    clause = _on_background(c, a["colour2"], after_position=False, plain_ok=True)
    return _finish(c, _background(c, clause, [subject]))


def _mondrian(a: dict, c: _Choices) -> str:
    first, second = (a["colour"], a["colour2"]) if c.rng.random() < 0.5 else (a["colour2"], a["colour"])
    c1, c2 = c.colour(first), c.colour(second)
    noun = c.pick(MONDRIAN_WORDS)
    if c.rng.random() < 0.5:
        rest = [c.adjective(), noun, "in", c1, "and", c2]
    else:
        rest = [c.adjective(), c1, "and", c2, noun]
    return _finish(c, [_with_article(c, rest)])


def _landscape(a: dict, c: _Choices) -> str:
    body = "moon" if a["sky"] == "night" else "sun"
    subject = _with_article(c, [c.adjective(), *_subject(c, a["size"], a["colour"], body)])
    sky = c.pick(SKY_WORDS[a["sky"]])
    if a["sky"] == "night" and c.rng.random() < 0.25:
        sky = ""  # the moon says it is night
    setting = sky == "setting"
    time = "" if setting else sky
    ground = c.pick(GROUND_WORDS[a["ground"]])
    col2 = c.colour(a["colour2"])
    over = _join(["over", c.article(col2), col2, ground]) if a["ground"] == "sea" else f"over {col2} {ground}"
    pos = c.pick(POSITION_WORDS[a["position"]])
    late = c.rng.random() < 0.3
    parts = [subject, "setting" if setting else "", "" if late else pos, over, pos if late else ""]
    if time and c.front:
        return _finish(c, [time + ",", *parts])
    return _finish(c, [*parts, time])


def _count_clause(c: _Choices, count: str, noun: str, plural: str) -> str:
    return _join(["with", c.number(count), noun if count == "one" else plural])


def _flower(a: dict, c: _Choices) -> str:
    noun = c.pick(FLOWER_WORDS)
    subject = _with_article(c, [c.adjective(), *_subject(c, a["size"], a["colour"], noun),
                                _count_clause(c, a["count"], "petal", "petals")])
    clause = f"on {c.colour(a['colour2'])}" if c.rng.random() < 0.5 else \
        _on_background(c, a["colour2"], after_position=False, plain_ok=False)
    pos = c.pick(POSITION_WORDS[a["position"]])
    if c.rng.random() < 0.3:
        return _finish(c, _background(c, clause, [subject]) + [pos])
    return _finish(c, _background(c, clause, [subject, pos]))


def _rings(a: dict, c: _Choices) -> str:
    noun = c.pick(RING_WORDS[a["shape"]])
    col = c.colour(a["colour"])
    if noun.startswith("concentric "):
        ring = noun.split(" ", 1)[1]
        body = ["concentric", col, ring] if c.rng.random() < 0.6 else [col, "concentric", ring]
    else:
        body = [col, noun]
    subject = _join([c.number(a["count"]), c.adjective(), *body])
    clause = f"on {c.colour(a['colour2'])}" if c.rng.random() < 0.5 else \
        _on_background(c, a["colour2"], after_position=False, plain_ok=False)
    if a["position"] == "centre":
        pos = c.pick(POSITION_WORDS["centre"]) if c.rng.random() < 0.4 else ""
    elif c.rng.random() < 0.5:
        pos = "centred " + c.pick(POSITION_WORDS[a["position"]])
    else:
        pos = c.pick(POSITION_WORDS[a["position"]])
    if c.rng.random() < 0.5:  # the canonical place: after the background, with a comma
        parts = _background(c, clause, [subject])
        return _finish(c, [*parts[:-1], parts[-1] + ",", pos] if pos else parts)
    return _finish(c, _background(c, clause, [subject, pos]))


def _swirl(a: dict, c: _Choices) -> str:
    noun = c.pick(SWIRL_WORDS)
    subject = _with_article(c, [c.adjective(), *_subject(c, a["size"], a["colour"], noun),
                                _count_clause(c, a["count"], "arm", "arms")])
    pos = c.pick(POSITION_WORDS[a["position"]])
    late = c.rng.random() < 0.3
    col2 = c.colour(a["colour2"])
    prep = c.pick(("of", "in", "on")) if not late and not c.front else c.pick(("in", "on"))
    clause = _join([prep, c.article(col2), col2, "starry sky"])
    if late:
        return _finish(c, _background(c, clause, [subject]) + [pos])
    return _finish(c, _background(c, clause, [subject, pos]))


_FAMILIES = {"shapes": _shapes, "mondrian": _mondrian, "landscape": _landscape, "flower": _flower,
             "rings": _rings, "swirl": _swirl}


def phrase(scene: Scene, rng: random.Random) -> str:
    """One phrasing of ``scene``'s caption family (see the module docstring), every choice drawn from ``rng``."""
    build = _FAMILIES.get(scene.family)
    if build is None:
        raise BadParameter(f"scene: no caption family for a {scene.family!r} scene")
    if rng.random() < P_TEMPLATE:
        return scene.caption
    return build(dict(scene.attributes), _Choices(rng))

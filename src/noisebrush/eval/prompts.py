"""Prompt sets for ``noisebrush eval --prompts FILE.tsv``: prompts in a person's own words, each with the attributes
it asks for, scored by the domain feature network (:func:`noisebrush.eval.evaluate` with ``prompts=``).

    from noisebrush.eval.prompts import PARAPHRASES, read_prompts
    items = read_prompts(PARAPHRASES)          # the held-out paraphrase set shipped with noisebrush
    items[0].prompt, items[0].attributes       # "a wee scarlet orb, leftmost, ...", {"family": "shapes", ...}

**The file.** UTF-8 text, tab-separated, a header line and then one prompt per line::

    prompt<TAB>attributes
    a wee scarlet orb, leftmost, against a navy wall<TAB>family=shapes;colour=red;colour2=blue;shape=circle;size=small;count=one;position=left
    sundown over plum summits<TAB>family=landscape;sky=sunset;ground=mountains;colour2=purple

``attributes`` are ``key=value`` pairs separated by ``;``, with the feature network's attribute names and values
(:data:`noisebrush.data.procedural.ATTRIBUTES`): family, colour, colour2, shape, position, size, count, sky, ground.
``colour`` is the main subject's colour (the shapes, the sun or moon, the petals, the rings, the swirl, one grid
colour), ``colour2`` the second one (background, ground or sea, the other grid colour). Any attribute may be left out:
it is then not scored; a row needs at least one. Names and values are read without regard to case and spaces around
them; ``color``/``color2``, ``center`` and counts as digits (``count=3``) are accepted too. Blank lines are skipped; a
prompt cannot hold a tab. At most :data:`MAX_PROMPTS` rows of at most :data:`MAX_PROMPT_CHARS` characters (and
:data:`MAX_BYTES` in all): a bad file is one :class:`~noisebrush.errors.UserError` line naming the file and line.

:data:`PARAPHRASES` is the held-out paraphrase set: prompts in words, phrasings and word orders that the training
captions (:mod:`noisebrush.data.captions`) never use; ``tests/eval/test_paraphrases.py`` holds the recipe that
wrote it and checks that it stays held out. Keep it out of training and out of any tuning loop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from noisebrush.data.procedural import ATTRIBUTES
from noisebrush.errors import BadParameter, UserError

__all__ = ["PromptItem", "PARAPHRASES", "MAX_PROMPTS", "MAX_PROMPT_CHARS", "MAX_BYTES", "HEADER", "parse_attributes",
           "parse_prompts", "read_prompts", "as_items", "format_prompts"]

PARAPHRASES = Path(__file__).with_name("paraphrases.tsv")
"""The held-out paraphrase set shipped with noisebrush (see the module docstring)."""
MAX_PROMPTS = 10_000
MAX_PROMPT_CHARS = 1_000
MAX_BYTES = 16 * 1024 * 1024
HEADER = ("prompt", "attributes")

_KEY_ALIASES = {"color": "colour", "color2": "colour2"}
_VALUE_ALIASES = {"center": "centre", **{str(k + 1): v for k, v in enumerate(ATTRIBUTES["count"])}}


@dataclass(frozen=True)
class PromptItem:
    """One prompt and the attributes it asks for (name → value, in ``ATTRIBUTES`` order); ``line`` is its line in
    the file it came from (0 when it came from a list)."""

    prompt: str
    attributes: Mapping[str, str] = field(hash=False)
    line: int = 0

    def attr_indices(self) -> tuple[int, ...]:
        """Index of each attribute's value in ``ATTRIBUTES`` order; -1 where the prompt does not name one (a
        :meth:`noisebrush.data.procedural.Scene.attr_indices` row)."""
        return tuple(values.index(self.attributes[name]) if name in self.attributes else -1
                     for name, values in ATTRIBUTES.items())

    def attributes_text(self) -> str:
        """The attributes as the file writes them: ``family=shapes;colour=red``."""
        return ";".join(f"{k}={v}" for k, v in self.attributes.items())


def parse_attributes(text: str) -> dict[str, str]:
    """``"family=shapes; colour=red"`` → ``{"family": "shapes", "colour": "red"}`` in ``ATTRIBUTES`` order; a
    ValueError (message without a place) for anything else."""
    found: dict[str, str] = {}
    for piece in text.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        if "=" not in piece:
            raise ValueError(f"{_short(piece)} is not key=value (attributes are key=value pairs separated by ';')")
        key, value = (s.strip().lower() for s in piece.split("=", 1))
        key = _KEY_ALIASES.get(key, key)
        if key not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {_short(key)} (one of {', '.join(ATTRIBUTES)})")
        if key in found:
            raise ValueError(f"{key} given twice")
        value = _VALUE_ALIASES.get(value, value) if key in ("position", "count") else value
        if value not in ATTRIBUTES[key]:
            raise ValueError(f"{key}={_short(value)}: not a value of {key} (one of {', '.join(ATTRIBUTES[key])})")
        found[key] = value
    if not found:
        raise ValueError("no attributes, so nothing to score (give e.g. family=shapes;colour=red)")
    return {k: found[k] for k in ATTRIBUTES if k in found}


def _short(s: str, n: int = 40) -> str:
    """A user's text quoted for a message, cut to ``n`` characters."""
    return repr(s if len(s) <= n else s[:n] + "…")


def parse_prompts(text: str, *, source: str = "prompts") -> list[PromptItem]:
    """The rows of a prompt file's text (see the module docstring); errors name ``source`` and the line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise UserError(f"{source}: empty; a prompt file starts with the header line 'prompt<TAB>attributes'")
    head = tuple(c.strip().lower() for c in lines[0].rstrip("\r").split("\t"))
    if head != HEADER:
        raise UserError(f"{source} line 1: the header must be 'prompt<TAB>attributes', got "
                        f"{_short(lines[0].rstrip(chr(13)))}")
    items = []
    for number, raw in enumerate(lines[1:], start=2):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        if len(items) == MAX_PROMPTS:
            raise UserError(f"{source} line {number}: more than {MAX_PROMPTS} prompts; split the file")
        where = f"{source} line {number}"
        cells = raw.split("\t")
        if len(cells) == 1:
            raise UserError(f"{where}: no tab between the prompt and its attributes")
        if len(cells) > 2:
            raise UserError(f"{where}: {len(cells) - 1} tabs; one tab separates the prompt from its attributes")
        prompt = cells[0].strip()
        if not prompt:
            raise UserError(f"{where}: empty prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise UserError(f"{where}: a prompt of {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
        try:
            attributes = parse_attributes(cells[1])
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None
        items.append(PromptItem(prompt, attributes, number))
    if not items:
        raise UserError(f"{source}: no prompts after the header line")
    return items


def read_prompts(path) -> list[PromptItem]:
    """The rows of the prompt file at ``path``; a missing, oversized, non-UTF-8 or malformed file is one UserError
    line naming it (and the line)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise UserError(f"{path}: no such prompt file (--prompts)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e}) (--prompts)") from None
    if p.is_dir():
        raise UserError(f"{path}: a folder, not a prompt file (--prompts)")
    if size > MAX_BYTES:
        raise UserError(f"{path}: {size} bytes; a prompt file may hold at most {MAX_BYTES // 2 ** 20} MiB (--prompts)")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e}) (--prompts)") from None
    if len(data) > MAX_BYTES:  # it grew, or is not a regular file
        raise UserError(f"{path}: more than {MAX_BYTES // 2 ** 20} MiB; too big for a prompt file (--prompts)")
    if data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors write
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as "
                        f"UTF-8") from None
    return parse_prompts(text, source=str(path))


def as_items(prompts) -> list[PromptItem]:
    """``prompts`` as a list of :class:`PromptItem`: a prompt file's path (str or Path), or a sequence of items or of
    ``(prompt, attributes)`` pairs (attributes as a dict or ``"key=value;..."``), bounded like a file."""
    if isinstance(prompts, (str, os.PathLike)):
        return read_prompts(prompts)
    if not isinstance(prompts, Sequence):
        raise BadParameter(f"prompts: a prompt file or a list of (prompt, attributes) pairs, got "
                           f"{type(prompts).__name__}")
    if not prompts:
        raise BadParameter("prompts: an empty list")
    if len(prompts) > MAX_PROMPTS:
        raise BadParameter(f"prompts: {len(prompts)} prompts; at most {MAX_PROMPTS}")
    items = []
    for i, entry in enumerate(prompts):
        if isinstance(entry, PromptItem):
            prompt, attributes = entry.prompt, dict(entry.attributes)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            prompt, attributes = entry
        else:
            raise BadParameter(f"prompts[{i}]: a (prompt, attributes) pair, got {_short(repr(entry))}")
        if not isinstance(prompt, str) or not prompt.strip() or "\t" in prompt or "\n" in prompt:
            raise BadParameter(f"prompts[{i}]: a prompt is one line of text without tabs, got {_short(repr(prompt))}")
        if len(prompt.strip()) > MAX_PROMPT_CHARS:
            raise BadParameter(f"prompts[{i}]: a prompt of {len(prompt.strip())} characters; at most "
                               f"{MAX_PROMPT_CHARS}")
        if isinstance(attributes, Mapping):
            attributes = ";".join(f"{k}={v}" for k, v in attributes.items())
        if not isinstance(attributes, str):
            raise BadParameter(f"prompts[{i}]: attributes as a dict or 'key=value;...', got "
                               f"{type(attributes).__name__}")
        try:
            parsed = parse_attributes(attributes)
        except ValueError as e:
            raise BadParameter(f"prompts[{i}]: {e}") from None
        items.append(PromptItem(prompt.strip(), parsed, entry.line if isinstance(entry, PromptItem) else 0))
    return items


def format_prompts(items: Iterable[PromptItem]) -> str:
    """The text of a prompt file holding ``items`` (what :func:`parse_prompts` reads back)."""
    rows = ["\t".join(HEADER)]
    for it in items:
        if "\t" in it.prompt or "\n" in it.prompt:
            raise BadParameter(f"prompt {_short(it.prompt)}: a prompt cannot hold a tab or a line break")
        rows.append(f"{it.prompt}\t{it.attributes_text()}")
    return "\n".join(rows) + "\n"

"""360 prompts in the training captions' own words (issue 13): new scenes (ProceduralArt seed 777, which no model
trained on) phrased by noisebrush.data.captions.phrase, 60 per family, as a prompt TSV for `noisebrush eval --prompts`.
It separates "learned the trained synonyms" from "understands unseen words" (src/noisebrush/eval/paraphrases.tsv).

    .venv/bin/python docs/bench/in_family_prompts.py docs/bench/in-family-prompts.tsv
    noisebrush eval builtin --prompts docs/bench/in-family-prompts.tsv --json docs/bench/builtin-in-family.json

(The JSON reports here were run on an identical copy of the TSV in /tmp/nb.) colour2 is scored only where the
phrasing names the background (a sixth of phrasings leave it out).
"""
import random
import sys

from noisebrush.data.captions import phrase, COLOUR_WORDS
from noisebrush.data.procedural import make_scene
from noisebrush.eval.prompts import PromptItem, format_prompts
per = {}
items = []
i = 0
while len(items) < 360:
    s = make_scene(777, i); i += 1
    if per.get(s.family, 0) >= 60:
        continue
    per[s.family] = per.get(s.family, 0) + 1
    text = phrase(s, random.Random(i))
    attrs = dict(s.attributes)
    if "colour2" in attrs and s.family != "mondrian" and not any(w in text for w in COLOUR_WORDS[attrs["colour2"]]):
        del attrs["colour2"]  # the phrasing left the background out
    items.append(PromptItem(text, attrs))
open(sys.argv[1], "w").write(format_prompts(items))

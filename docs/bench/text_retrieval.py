"""Does MiniLM's sentence embedding place a prompt near captions of the same content? (issue 13) For each prompt of
a TSV, the nearest of 3000 canonical training captions (ProceduralArt seed 0) by cosine of the pooled embedding;
that caption's scene is scored on the prompt's content attributes (family, colour, colour2, shape, sky, ground;
a Mondrian's colours in either order), as eval scores adherence.

    .venv/bin/python docs/bench/text_retrieval.py src/noisebrush/eval/paraphrases.tsv docs/bench/in-family-prompts.tsv

Measured 1 December 2026 (CPU, under a minute): held-out paraphrases 0.042 (family 0.74, colour 0.23, colour2
0.19, shape 0.60, sky 0.70, ground 0.77); in-family prompts 0.392 (family 0.93, colour 0.60, shape 0.91).
"""
import sys

import torch

from noisebrush.data.procedural import ATTRIBUTES, make_scene
from noisebrush.eval.evaluation import adherence_scores
from noisebrush.eval.prompts import read_prompts
from noisebrush.nets.text import TextEncoder

enc = TextEncoder(max_tokens=24)
scenes = [make_scene(0, i) for i in range(3000)]
bank = enc.pooled([s.caption for s in scenes])
rows = torch.tensor([s.attr_indices() for s in scenes])
for path in sys.argv[1:]:
    items = read_prompts(path)
    nearest = (enc.pooled([it.prompt for it in items]) @ bank.T).argmax(1)
    table = torch.tensor([it.attr_indices() for it in items])
    pred = {name: rows[nearest, j] for j, name in enumerate(ATTRIBUTES)}
    r = adherence_scores(pred, table)
    print(path, "content match of nearest caption:", round(r["adherence"], 3),
          {k: round(v, 2) for k, v in r["adherence_per_attribute"].items() if v == v})

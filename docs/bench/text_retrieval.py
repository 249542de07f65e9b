"""Does MiniLM's sentence embedding place a prompt near captions of the same content? (issue 13) For each prompt of
a TSV, the nearest of 3000 canonical training captions (ProceduralArt seed 0) by cosine of the pooled embedding;
that caption's scene is scored on the prompt's content attributes (family, colour, colour2, shape, sky, ground;
a Mondrian's colours in either order), as eval scores adherence.

    .venv/bin/python docs/bench/text_retrieval.py src/noisebrush/eval/paraphrases.tsv docs/bench/in-family-prompts.tsv

Measured 1 December 2026 (CPU, under a minute): held-out paraphrases 0.042 (family 0.74, colour 0.23, colour2
0.19, shape 0.60, sky 0.70, ground 0.77); in-family prompts 0.392 (family 0.93, colour 0.60, shape 0.91).
"""
import sys, collections
import torch
from noisebrush.data.procedural import make_scene
from noisebrush.eval.prompts import read_prompts
from noisebrush.nets.text import TextEncoder
CONTENT = ("family", "colour", "colour2", "shape", "sky", "ground")
enc = TextEncoder(max_tokens=24)
scenes = [make_scene(0, i) for i in range(3000)]
bank = enc.pooled([s.caption for s in scenes])
for path in sys.argv[1:]:
    items = read_prompts(path)
    q = enc.pooled([it.prompt for it in items])
    nn = (q @ bank.T).argmax(1)
    ok_all, per = 0, collections.Counter(); tot = collections.Counter()
    for it, j in zip(items, nn.tolist()):
        a, b = it.attributes, scenes[j].attributes
        good = True
        for k in CONTENT:
            if k not in a: continue
            if k in ("colour", "colour2") and a.get("family") == "mondrian":
                hit = {a.get("colour"), a.get("colour2")} == {b.get("colour"), b.get("colour2")}
            else:
                hit = b.get(k) == a[k]
            tot[k] += 1; per[k] += hit; good &= hit
        ok_all += good
    print(path, "content match of nearest caption:", round(ok_all / len(items), 3),
          {k: round(per[k] / tot[k], 2) for k in tot})

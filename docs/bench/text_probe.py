"""Is a prompt's meaning in the text encoder at all? (issue 13) Linear probes on MiniLM's pooled sentence embedding,
trained on the training phrasings (noisebrush.data.captions.phrase of 3000 ProceduralArt seed-0 scenes, two
phrasings each), then tested on prompt TSVs: how much of each attribute of words the probe never saw can be read?

    .venv/bin/python docs/bench/text_probe.py src/noisebrush/eval/paraphrases.tsv docs/bench/in-family-prompts.tsv

Measured 1 December 2026 (CPU, about a minute): on the held-out paraphrases family 0.75, colour 0.17, shape 0.83,
sky 0.65, ground 0.67, size 0.76, count 0.81, position 0.62; on the in-family prompts 0.94-1.00 for every attribute.
"""
import random
import sys

import torch
from noisebrush.data.captions import phrase
from noisebrush.data.procedural import make_scene, ATTRIBUTES
from noisebrush.eval.prompts import read_prompts
from noisebrush.nets.text import TextEncoder
torch.manual_seed(0)
enc = TextEncoder(max_tokens=24)
texts, attrs = [], []
for i in range(3000):
    s = make_scene(0, i)
    for r in range(2):
        texts.append(phrase(s, random.Random(i * 7 + r))); attrs.append(s.attributes)
X = enc.pooled(texts)
KEYS = ("family", "colour", "shape", "sky", "ground", "size", "count", "position")
probes = {}
for k in KEYS:
    idx = [j for j, a in enumerate(attrs) if k in a]
    y = torch.tensor([ATTRIBUTES[k].index(attrs[j][k]) for j in idx])
    W = torch.zeros(384, len(ATTRIBUTES[k]), requires_grad=True); b = torch.zeros(len(ATTRIBUTES[k]), requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=0.05)
    for _ in range(300):
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(X[idx] @ W * 10 + b, y) + 1e-4 * W.pow(2).sum(); loss.backward(); opt.step()
    probes[k] = (W.detach(), b.detach())
    acc = ((X[idx] @ W * 10 + b).argmax(1) == y).float().mean().item()
    print(f"train {k}: {acc:.2f}", end="; ")
print()
for path in sys.argv[1:]:
    items = read_prompts(path)
    Q = enc.pooled([it.prompt for it in items])
    out = {}
    for k, (W, b) in probes.items():
        idx = [j for j, it in enumerate(items) if k in it.attributes and not (k == "colour" and it.attributes.get("family") == "mondrian")]
        if not idx: continue
        y = torch.tensor([ATTRIBUTES[k].index(items[j].attributes[k]) for j in idx])
        out[k] = round(((Q[idx] @ W * 10 + b).argmax(1) == y).float().mean().item(), 2)
    print(path, out)

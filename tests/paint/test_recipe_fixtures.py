"""PNGs written before the restructuring (tests/fixtures/recipes-v0.1) still reproduce pixel-identically.

Each fixture carries its recipe; the files it was painted from (its model folder, source picture and mask) lie
beside it. The recipe names them by the absolute paths they had then (under /tmp/fx), so the test writes a copy of
each PNG whose recipe points at the fixture folder instead (same pixels) and runs ``noisebrush reproduce`` on it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisebrush.io.png import read_recipe, save_png

HERE = Path(__file__).parents[1] / "fixtures" / "recipes-v0.1"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
PNGS = sorted(p.name for p in (HERE / "pngs").glob("*.png"))


def _relocate(value):
    """The fixture-folder path of a file the recipe names under the folder it was painted in; the built-in model
    they were painted with is kept in models/builtin (issue 13 shipped a retrained one)."""
    if value == "builtin":
        return str(HERE / "models" / "builtin")
    if isinstance(value, str) and value.startswith(MANIFEST["painted_from"]):
        rel = Path(value).relative_to(MANIFEST["painted_from"])
        return str(HERE / rel.relative_to("src") if rel.parts[0] == "src" else HERE / rel)
    return value


def _relocated(recipe: dict) -> dict:
    out = {k: _relocate(v) for k, v in recipe.items()}
    if isinstance(out.get("images"), list):
        out["images"] = [_relocated(r) for r in out["images"]]
    return out


def test_fixture_set_is_complete():
    assert len(PNGS) >= 10
    kinds = {read_recipe(HERE / "pngs" / p).get("mode", "paint") for p in PNGS}
    assert {"paint", "vary", "inpaint", "outpaint"} <= kinds


@pytest.mark.parametrize("name", PNGS)
def test_old_png_reproduces(name, tmp_path, capsys, monkeypatch):
    from noisebrush.apps.cli import main

    src = HERE / "pngs" / name
    recipe = _relocated(read_recipe(src))
    with Image.open(src) as im:
        pixels = im.convert("RGB")
    copy = save_png(pixels, tmp_path / name, recipe)
    model = recipe.get("model")
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(MANIFEST["threads"]))  # the count they were painted with
    torch.set_num_threads(MANIFEST["threads"])
    try:
        rc = main(["reproduce", str(copy), "--model", str(model), "--out", str(tmp_path / "again")])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    again = sorted((tmp_path / "again").glob("*.png"))
    assert again, out
    if torch.backends.cpu.get_cpu_capability() == MANIFEST["cpu_capability"]:
        assert rc == 0 and "pixel-identical" in out, out
    else:  # another instruction set may round float kernels differently (see the fixture README)
        with Image.open(again[-1]) as b:
            a, b = np.asarray(pixels, dtype=np.int16), np.asarray(b.convert("RGB"), dtype=np.int16)
        assert a.shape == b.shape
        diff = np.abs(a - b)
        assert diff.max() <= 2 and (diff > 0).mean() < 0.02, (diff.max(), (diff > 0).mean())

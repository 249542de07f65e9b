"""The inpainting benchmark, shrunk: known pixels stay bit-identical and every number is reported."""
import json

import torch

from noisebrush.bench.__main__ import main
from noisebrush.bench.inpaint import hole


def test_holes():
    assert hole("centre", 8).sum() == 16 and hole("right-half", 8)[:, 4:].all() and not hole("top-half", 8)[4:].any()


def test_inpaint_bench_quick(tmp_path, capsys):
    out = tmp_path / "i.json"
    assert main(["inpaint", "--n", "4", "--steps", "5", "--jump-length", "2", "--batch", "4", "--json",
                 str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["known_identical"] == 1.0 and r["known_identical_replaced"] == 1.0
    for k in ("fd_real", "fd_fresh", "fd_inpainted", "fd_replaced"):
        assert isinstance(r[k], float) and r[k] >= 0
    assert r["fd_inpainted"] != r["fd_replaced"]  # resampling changed the pictures
    assert "inpainting" in capsys.readouterr().out

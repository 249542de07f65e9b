"""The fine-tuning benchmark: its style folder, and an end-to-end run on a tiny model."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from _model_fixture import one_thread, reset_accelerate, tiny_model  # noqa: E402
from noisebrush.bench import finetune as bench  # noqa: E402
from noisebrush.errors import BadParameter  # noqa: E402


@pytest.fixture(autouse=True)
def _clean():
    with one_thread():
        yield
    reset_accelerate()


def test_style_palette_resembles_no_base_colour():
    from noisebrush.data.procedural import COLOURS

    closest_base_pair = min(math.dist(a, b) for i, a in enumerate(COLOURS.values())
                            for b in list(COLOURS.values())[i + 1:])
    for name, rgb in bench.STYLE_PALETTE.items():
        # farther from every base colour than the two closest base colours are from each other
        assert min(math.dist(rgb, c) for c in COLOURS.values()) > closest_base_pair, name


def test_make_style_folder(tmp_path):
    from noisebrush.data.folder import ImageFolder

    path = bench.make_style_folder(tmp_path / "style", n=5, seed=0, resolution=16)
    ds = ImageFolder(path, resolution=16)
    assert len(ds) == 5 and all("concentric" in c for c in ds.captions)
    words = set(" ".join(ds.captions).replace(",", " ").split())
    assert not words & {"red", "blue", "white", "mint", "umber", "olive"}  # captions name no colour
    images, captions = bench.style_images(5, seed=0, resolution=16)
    assert captions == ds.captions
    assert torch.allclose(torch.stack([ds[i]["image"] for i in range(5)]), images)  # the same pictures
    other, _ = bench.style_images(5, seed=1000, resolution=16)
    assert not torch.equal(images, other)  # the held-out set is another one


def test_quick_run_reports_every_number(tmp_path_factory, tmp_path, capsys):
    tiny = tiny_model(tmp_path_factory, "text")
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--base", str(tiny), "--json", str(out), "--figure", str(tmp_path / "f.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "f.png") as im:  # style, base, full, LoRA rows
        assert im.height > 3 * im.width // 8
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"base", "full", "lora"}
    for name in ("full", "lora"):
        row = res["rows"][name]
        for key in ("fd_style", "fd_drop", "adherence", "adherence_kept", "bytes", "train_cpu_seconds",
                    "cpu_seconds", "near_copy_fraction", "loss_before", "loss_after"):
            assert key in row, key
        assert row["cpu_seconds"] > 0 and row["bytes"] > 0
    assert res["rows"]["lora"]["bytes"] < res["rows"]["full"]["bytes"]
    text = capsys.readouterr().out
    assert "fd_art to the held-out style set" in text and "| base | full | lora |" in text.replace("| |", "|")


@pytest.mark.parametrize("argv, match", [(["--modes", "half"], "--modes"), (["--paint-n", "1"], "--paint-n"),
                                          (["--bogus"], "bogus")])
def test_bad_flags(argv, match):
    with pytest.raises(BadParameter, match=match):
        bench.main(argv)

"""The simulated-user benchmark: its pieces on real pictures, and a whole run on a tiny model."""
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from _model_fixture import one_thread, tiny_model  # noqa: E402
from noisebrush.bench import preference as bench  # noqa: E402
from noisebrush.data.procedural import COLOURS, ProceduralArt, decode_attrs  # noqa: E402
from noisebrush.errors import BadParameter, UserError  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_prompts_name_no_colour():
    prompts = bench.prompts_for(bench.MEASURE_PROMPT_SEED, 200)
    words = re.compile(rf"\b({'|'.join(COLOURS)})\b")
    assert not [p for p in prompts if words.search(p)]
    assert not [p for p in prompts if re.search(r"\b(in and|an [^aeiou]\w*)$|\bon$|\s,|\s\s", p)]
    assert bench.strip_colours("a mondrian grid in red and blue") == "a mondrian grid"
    assert bench.strip_colours("two concentric red rings on blue, centred on the left") == \
        "two concentric rings, centred on the left"
    assert bench.strip_colours("three small blue circles on an orange background") == \
        "three small circles on a background"


def test_the_simulated_user_reads_real_pictures():
    ds = ProceduralArt(resolution=32, size=40, seed=3)
    items = [ds[i] for i in range(40)]
    images = torch.stack([torch.as_tensor(it["image"]) for it in items])
    truth = torch.tensor([decode_attrs(it["attrs"])["colour"] in bench.PRESETS["warm"] for it in items])
    got = bench.liked(images, bench.PRESETS["warm"])
    assert (got == truth).double().mean() >= 0.9
    share = bench.liked_pixels(images, ("red",))
    assert share.shape == (40,) and ((share >= 0) & (share <= 1)).all()
    red = torch.tensor([0.69, -0.70, -0.67])[None, :, None, None].expand(1, 3, 8, 8)
    assert bench.liked_pixels(red, ("red",)).item() == 1.0 and bench.liked_pixels(red, ("blue",)).item() == 0.0


def test_parsing():
    assert bench.parse_likes("warm") == ("red", "orange", "yellow")
    assert bench.parse_likes("red,pink") == ("red", "pink")
    with pytest.raises(BadParameter, match="--likes"):
        bench.parse_likes("mauve")
    lo, hi = bench.wilson(40, 50)
    assert lo < 0.8 < hi and bench.wilson(0, 10)[0] == 0.0
    with pytest.raises(BadParameter, match="--best-of"):
        bench.main(["--best-of", "0"])


def _fake_user(images, likes):
    """Likes the redder half of every batch (a tiny model's pictures carry no reliable colour)."""
    redness = (images[:, 0] - images[:, 2]).mean((1, 2))
    return redness >= redness.median()


def test_quick_run_end_to_end(tmp_path_factory, tmp_path, monkeypatch, capsys):
    model = tiny_model(tmp_path_factory, "text")
    monkeypatch.setattr(bench, "liked", _fake_user)
    out = tmp_path / "pref.json"
    argv = ["--model", str(model), "--ratings", "8", "--n", "3", "--best-of", "2,3", "--scales", "0.3",
            "--combined", "2", "--steps", "2", "--json", str(out), "--sheets", str(tmp_path / "sheets")]
    assert bench.main(argv) == 0
    res = json.loads(out.read_text())
    arms = [a["arm"] for a in res["arms"]]
    assert arms == ["plain", "best-of-2", "best-of-3", "guided 0.3", "guided 0.3 + best-of-2"]
    for a in res["arms"]:
        assert a["pictures"] == 3 and 0 <= a["liked_share"] <= 1 and a["ci95"][0] <= a["liked_share"] <= a["ci95"][1]
    assert res["ratings"]["up"] + res["ratings"]["down"] == 8
    assert res["goal"] == 0.8 and isinstance(res["goal_met"], bool)
    assert res["preference"]["n_up"] == res["ratings"]["up"]
    assert res["heldout"]["pictures"] == 9
    assert (tmp_path / "sheets" / "best-of-3.png").is_file()
    text = capsys.readouterr().out
    assert "| plain |" in text and "goal: liked share ≥ 0.80" in text
    # a user who likes everything teaches nothing: one clear error
    monkeypatch.setattr(bench, "liked", lambda images, likes: torch.ones(len(images), dtype=torch.bool))
    with pytest.raises(UserError, match="liked 8 of the 8"):
        bench.main(argv)

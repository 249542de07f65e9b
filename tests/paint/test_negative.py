"""Negative prompts and prompt weighting through the Pipeline (issue 13): what they change, what they leave exactly
as it was, their recipes and replays. On the built-in model (text, 32 px) at 4 steps."""
import warnings

import pytest
import torch

import noisebrush
from _model_fixture import one_thread, write_model
from noisebrush.errors import BadParameter, NoisebrushWarning
from noisebrush.paint import recipe as recipes

PROMPT = "a red circle on a blue background"
KW = dict(steps=4, seed=3, n=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def pipe():
    return noisebrush.load("builtin", device="cpu")


@pytest.fixture(scope="module")
def plain(pipe):
    return pipe.generate(PROMPT, **KW)


def _warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, NoisebrushWarning)]


def test_negative_changes_the_picture_and_is_recorded(pipe, plain):
    x, rec = pipe.generate(PROMPT, negative="a red circle", **KW)
    assert (x - plain[0]).abs().max() > 0.1
    assert rec[0]["negative"] == "a red circle" and "negative" not in plain[1][0]


@pytest.mark.parametrize("negative", ["", None])
def test_no_negative_is_exactly_the_old_picture(pipe, plain, negative):
    x, rec = pipe.generate(PROMPT, negative=negative, **KW)
    assert torch.equal(x, plain[0]) and rec == plain[1]


def test_negative_at_cfg_one_warns_and_changes_nothing(pipe):
    (x, rec), said = _warnings(lambda: pipe.generate(PROMPT, negative="dark", cfg=1.0, **KW))
    assert torch.equal(x, pipe.generate(PROMPT, cfg=1.0, **KW)[0])
    assert any("--negative has no effect at --cfg 1" in s for s in said)


def test_replay_of_negative_and_weighted_recipes_is_pixel_identical(pipe):
    for prompt, negative in ((PROMPT, "murky, dark"), ("a (red:1.8) circle on a (blue:0.5) background", None),
                             ("a (red:2) circle", "a square")):
        x, rec = pipe.generate(prompt, negative=negative, **KW)
        again, rec2 = recipes.replay(pipe, rec[0])
        assert torch.equal(again, x) and rec2 == rec
        assert rec[0]["prompt"] == prompt  # as typed, weights and all


def test_prompt_without_weights_encodes_as_before(pipe):
    """No weight syntax: the condition is the encoder's own output for the prompt, bit for bit, and one pair."""
    tok, mask = pipe.text_encoder.encode([PROMPT])
    pairs = pipe.condition_mix(PROMPT)
    assert len(pairs) == 1 and pairs[0][1] == 1.0
    assert torch.equal(pairs[0][0]["text"], tok) and torch.equal(pairs[0][0]["text_mask"], mask)
    # a weight of exactly 1 is the plain prompt too
    x, _ = pipe.generate("a (red:1) circle on a blue background", **KW)
    assert torch.equal(x, pipe.generate(PROMPT, **KW)[0])


def test_weighted_prompt_changes_the_picture(pipe, plain):
    up, _ = pipe.generate("a (red:2) circle on a blue background", **KW)
    down, _ = pipe.generate("a (red:0) circle on a blue background", **KW)
    assert (up - plain[0]).abs().max() > 0.1 and (down - plain[0]).abs().max() > 0.1


def test_weighting_is_the_span_effect_times_the_weight(pipe):
    """D_w = D(p) + (w − 1)·(D(p) − D(p∖S)), S = the weighted word's pieces masked out, checked against the
    network called by hand (cfg 1: the conditional prediction alone)."""
    w = 1.7
    den = pipe.denoiser(f"a (red:{w}) circle", cfg=1.0)
    g = torch.Generator().manual_seed(0)
    x, sigma = torch.randn(1, 3, 32, 32, generator=g), torch.tensor([2.0], dtype=torch.float64)
    tok, mask = pipe.text_encoder.encode(["a red circle"])
    without = mask.clone()
    without[0, 2] = False  # [CLS] a red …: "red" is row 2
    d_p = pipe.den(x, sigma, text=tok, text_mask=mask)
    d_s = pipe.den(x, sigma, text=tok, text_mask=without)
    assert torch.allclose(den(x, sigma), d_p + (w - 1) * (d_p - d_s), atol=1e-5)


def test_bad_syntax_is_one_line_before_any_work(pipe):
    for prompt, words in (("a (red circle", "never closed"), ("a (red:9) circle", "from 0 to 3")):
        with pytest.raises(BadParameter) as e:
            pipe.check(prompt)
        assert str(e.value).startswith("prompt ") and words in str(e.value)
    with pytest.raises(BadParameter, match="^negative: weights such as"):
        pipe.check(PROMPT, negative="(dark:1.5)")
    with pytest.raises(BadParameter, match="^negative"):
        pipe.check(PROMPT, negative=3)


def test_edits_and_morph_take_the_negative(pipe, plain, tmp_path):
    """vary records and replays its negative; a morph's first frame is generate's picture, weights and negative
    included."""
    from noisebrush.io.png import save_png
    from noisebrush.io.images import to_pil

    src = tmp_path / "src.png"
    save_png(to_pil(plain[0][0]), src, plain[1][0])
    x, rec = pipe.vary(src, PROMPT, strength=0.5, negative="dark", **KW)
    assert rec[0]["negative"] == "dark"
    plain_vary, _ = pipe.vary(src, PROMPT, strength=0.5, **KW)
    assert not torch.equal(x, plain_vary)
    again, _ = recipes.replay(pipe, rec[0], where=str(src))
    assert torch.equal(again, x)
    weighted = "a (red:1.5) circle"
    frames, mrec = pipe.morph(weighted, to_prompt="a blue square", seed=3, frames=3, steps=4, negative="dark")
    first, _ = pipe.generate(weighted, negative="dark", steps=4, seed=3)
    assert torch.equal(frames[:1], first) and mrec["negative"] == "dark"


def test_a_model_without_text_warns_that_the_negative_is_ignored(tmp_path):
    folder = write_model(tmp_path / "vol", factorized=False)
    vol = noisebrush.load(folder, device="cpu")
    (x, rec), said = _warnings(lambda: vol.generate(negative="dark", steps=2, seed=0))
    assert any("the negative prompt 'dark' is ignored" in s for s in said)
    assert torch.equal(x, vol.generate(steps=2, seed=0)[0])

"""Palette control: parsing, the loss and its gradient, the guide's step, the distance, and a guided painting."""
import pytest
import torch

import noisebrush
from _model_fixture import one_thread, tiny_model
from noisebrush.diffusion.guidance import x0_guidance
from noisebrush.errors import BadParameter
from noisebrush.paint.guides import guidance_recipes, guides_from_recipe
from noisebrush.paint.palette import PaletteGuide, palette_distance, palette_hex, parse_palette


def test_parse_palette_forms():
    p = parse_palette("#aa3300, 002255,#fff")
    assert p.shape == (3, 3)
    assert torch.allclose(p[0] * 255, torch.tensor([170.0, 51.0, 0.0]))
    assert torch.allclose(p[2], torch.ones(3))
    assert torch.equal(parse_palette([(170, 51, 0)]), p[:1])
    assert palette_hex(p) == "#aa3300,#002255,#ffffff"


@pytest.mark.parametrize("bad", ["", "#12345", "red", "#gg0000", [(1, 2)], [(0, 0, 256)]])
def test_parse_palette_refuses(bad):
    with pytest.raises(BadParameter, match="palette"):
        parse_palette(bad)


def test_distance_is_zero_on_palette_colours_and_measures_rgb_distance():
    pal = parse_palette("#ff0000,#0000ff")
    img = torch.full((1, 3, 4, 4), -1.0)
    img[:, 0, :, :2] = 1  # red left half
    img[:, 2, :, 2:] = 1  # blue right half
    assert palette_distance(img, pal).item() == pytest.approx(0.0, abs=1e-6)
    black = torch.full((1, 3, 4, 4), -1.0)
    assert palette_distance(black, pal).item() == pytest.approx(1.0, abs=1e-6)


def test_gradient_points_from_the_nearest_colour():
    g = PaletteGuide("#ff0000,#0000ff", scale=1.0, tau=1e-4)
    x = torch.tensor([0.8, -0.9, -0.7]).reshape(1, 3, 1, 1)  # near red = (1, -1, -1) in [-1, 1]
    grad = g.gradient(x, torch.tensor([1.0], dtype=torch.float64))
    assert torch.allclose(grad, x - torch.tensor([1.0, -1.0, -1.0]).reshape(1, 3, 1, 1), atol=1e-4)


def test_scale_one_snaps_the_prediction_onto_the_palette():
    g = PaletteGuide("#ff0000,#0000ff", scale=1.0, tau=1e-4)
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    den = x0_guidance(lambda x, s: x, g.gradient, scale=1.0, weight=g.weight)
    out = den(x, torch.ones(2, dtype=torch.float64))
    assert palette_distance(out, g.palette).max() < 1e-3


def test_until_leaves_the_last_steps_unguided():
    g = PaletteGuide("#ff0000", scale=0.5, until=0.2)
    assert g.weight(torch.tensor([5.0, 0.2, 0.1], dtype=torch.float64)).tolist() == [1.0, 0.0, 0.0]
    g = PaletteGuide("#ff0000", scale=0.5, until=0.2, below=2.0)
    assert g.weight(torch.tensor([5.0, 2.0, 0.5, 0.1], dtype=torch.float64)).tolist() == [0.0, 1.0, 1.0, 0.0]
    with pytest.raises(BadParameter, match="palette scale"):
        PaletteGuide("#ff0000", scale=2)
    with pytest.raises(BadParameter, match="palette below"):
        PaletteGuide("#ff0000", until=1.0, below=0.5)


def test_recipe_round_trip():
    for g in (PaletteGuide("#b03a2e,#1f3a68", scale=0.12, tau=0.02, until=0.1),
              PaletteGuide("#b03a2e", scale=0.2, below=2.0)):
        (again,) = guides_from_recipe(guidance_recipes([g]))
        assert torch.equal(again.palette, g.palette)
        assert (again.scale, again.tau, again.until, again.below) == (g.scale, g.tau, g.until, g.below)


def test_guided_painting_moves_toward_the_palette(tmp_path_factory):
    with one_thread():
        pipe = noisebrush.load(tiny_model(tmp_path_factory, "text"), device="cpu")
        pal = "#20c040,#f0e020"
        plain, _ = pipe.generate("a red circle", seed=0, n=3, steps=6)
        guided, rec = pipe.generate("a red circle", seed=0, n=3, steps=6,
                                    guidance=[PaletteGuide(pal, scale=0.3, tau=0.01)])
    assert palette_distance(guided, pal).mean() < 0.5 * palette_distance(plain, pal).mean()
    assert rec[0]["guidance"] == [{"name": "palette", "scale": 0.3, "palette": "#20c040,#f0e020", "tau": 0.01,
                                   "until": 0.0}]

"""Variations, inpainting, outpainting and morphs (noisebrush.paint.edit) on a tiny text model."""
import numpy as np
import pytest
import torch
from PIL import Image

import noisebrush
from _model_fixture import one_thread, tiny_model
from noisebrush.diffusion.samplers.repaint import repaint_path
from noisebrush.paint.edit import parse_extend, slerp, strength_start, working_size
from noisebrush.errors import BadParameter, NoisebrushWarning, UserError
from noisebrush.io.images import to_pil, to_uint8


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return noisebrush.load(tiny_model(tmp_path_factory, "text"), device="cpu")


@pytest.fixture(scope="module")
def picture(pipe, tmp_path_factory):
    """A 16×16 PNG the tiny model painted (exactly representable in [-1, 1])."""
    x, _ = pipe.generate("a red circle", seed=5, steps=4)
    path = tmp_path_factory.mktemp("pic") / "pic.png"
    to_pil(x[0]).save(path)
    return path


def _u8(path):
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


# -- the walk and the schedule arithmetic ---------------------------------------------------------------------------
@pytest.mark.parametrize("steps,jl,jumps", [(20, 4, 3), (10, 3, 2), (7, 10, 1), (12, 1, 4), (5, 4, 2)])
def test_repaint_path_is_a_walk_that_resamples_each_stretch(steps, jl, jumps):
    path = repaint_path(steps, jl, jumps)
    assert path[0] == 0 and path[-1] == steps
    assert all(abs(b - a) == 1 for a, b in zip(path, path[1:]))
    assert min(path) >= 0 and max(path) == steps
    ups = sum(1 for a, b in zip(path, path[1:]) if b < a)
    boundaries = [i for i in range(jl, steps) if (steps - 1 - i) % jl == 0]
    assert ups == len(boundaries) * (jumps - 1) * jl
    downs = sum(1 for a, b in zip(path, path[1:]) if b > a)
    assert downs == steps + ups


def test_repaint_path_without_jumps_is_straight():
    assert repaint_path(6, 2, 1) == list(range(7))


def test_strength_start():
    assert strength_start(20, 0.0) == 20 and strength_start(20, 1.0) == 0 and strength_start(20, 0.5) == 10


def test_working_size_keeps_valid_pictures_and_resizes_others(pipe):
    step = 2  # the tiny net has two levels
    assert working_size(pipe, 16, 24) == (16, 24)
    h, w = working_size(pipe, 17, 33)
    assert h == 16 and w % step == 0 and abs(w - 33 * 16 / 17) <= step
    assert working_size(pipe, 512, 512) == (16, 16)  # far larger than the model's resolution
    assert working_size(pipe, 16, 16, size=8) == (8, 8)
    with pytest.raises(BadParameter, match="size"):
        working_size(pipe, 16, 16, size=0)


def test_slerp_ends_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    mid = slerp(a, b, 0.5)
    # between two draws of the same norm, the spherical midpoint keeps that norm (a linear one would shrink it)
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.05 * a.norm()
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-6)


def test_parse_extend():
    assert parse_extend("4,0,2,0") == (4, 0, 2, 0) and parse_extend("2") == (2, 2, 2, 2)
    for bad in ("1,2", "a,b,c,d", "0,0,0,0", "-1,0,0,0"):
        with pytest.raises(BadParameter, match="extend"):
            parse_extend(bad)


# -- variations -----------------------------------------------------------------------------------------------------
def test_vary_strength_zero_is_the_picture(pipe, picture):
    out, rec = pipe.vary(picture, "a red circle", strength=0.0, n=2, steps=6)
    assert (to_uint8(out) == torch.from_numpy(_u8(picture)).permute(2, 0, 1)).all()
    assert rec[0]["mode"] == "vary" and rec[0]["strength"] == 0.0 and rec[0]["source_sha256"]


def test_vary_strength_one_ignores_the_picture(pipe, picture):
    """From pure noise at σ_max the variation is exactly the painting `generate` makes with that seed."""
    out, _ = pipe.vary(picture, "a red circle", strength=1.0, n=1, seed=3, steps=6)
    fresh, _ = pipe.generate("a red circle", seed=3, steps=6)
    assert torch.equal(out, fresh)


def test_vary_in_between_stays_near_and_does_not_depend_on_the_batch(pipe, picture):
    x0 = torch.from_numpy(_u8(picture)).permute(2, 0, 1).float() / 127.5 - 1
    a, _ = pipe.vary(picture, "a red circle", strength=0.3, n=3, seed=10, steps=10)
    b, _ = pipe.vary(picture, "a red circle", strength=0.3, n=1, seed=12, steps=10)
    assert torch.equal(a[2], b[0])
    near = (a - x0).abs().mean()
    far, _ = pipe.vary(picture, "a red circle", strength=1.0, n=3, seed=10, steps=10)
    assert near < (far - x0).abs().mean()  # a light variation stays closer to its picture than a fresh painting


def test_vary_bad_strength(pipe, picture):
    for s in (-0.1, 1.5, "x", True):
        with pytest.raises(BadParameter, match="strength"):
            pipe.vary(picture, strength=s)


# -- inpainting and outpainting -------------------------------------------------------------------------------------
def test_inpaint_keeps_known_pixels_bit_identical(pipe, picture, tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 2:9] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    out, rec = pipe.inpaint(picture, tmp_path / "mask.png", "a blue square", n=2, steps=6, jump_length=2, jumps=2)
    u = to_uint8(out).permute(0, 2, 3, 1).numpy()
    known = mask == 0
    for img in u:
        assert np.array_equal(img[known], _u8(picture)[known])
    assert not np.array_equal(u[0][~known], _u8(picture)[~known])  # the hole was repainted
    assert rec[0]["mode"] == "inpaint" and rec[0]["sampler"] == "repaint" and rec[0]["jumps"] == 2


def test_inpaint_with_an_all_black_mask_is_refused_before_any_work(pipe, picture, tmp_path, monkeypatch):
    """Issue 12 point 8: an all-black mask ran for 14 s and returned the picture; now one line naming the mask."""
    import noisebrush.paint.edit as edit

    monkeypatch.setattr(edit, "sample", lambda *a, **k: pytest.fail("painted with nothing to repaint"))
    Image.new("L", (16, 16), 0).save(tmp_path / "black.png")
    for mask in (torch.zeros(16, 16), tmp_path / "black.png"):
        with pytest.raises(BadParameter, match="^mask.*nothing to repaint: the mask is all black; white = repaint"):
            pipe.inpaint(picture, mask, "a red circle", n=1, steps=3, jumps=1)


def test_inpaint_is_batch_independent(pipe, picture):
    m = torch.zeros(16, 16)
    m[:, 8:] = 1
    a, _ = pipe.inpaint(picture, m, "a red circle", n=2, seed=4, steps=4, jump_length=2, jumps=2)
    b, _ = pipe.inpaint(picture, m, "a red circle", n=1, seed=5, steps=4, jump_length=2, jumps=2)
    assert torch.equal(a[1], b[0])


def test_inpaint_mask_of_another_size_is_refused(pipe, picture, tmp_path):
    Image.new("L", (8, 8), 255).save(tmp_path / "small.png")
    with pytest.raises(UserError, match="small.png.*mask is 8×8 but the picture is 16×16"):
        pipe.inpaint(picture, tmp_path / "small.png")
    with pytest.raises(UserError, match="no such file"):
        pipe.inpaint(picture, tmp_path / "missing.png")
    with pytest.raises(BadParameter, match="jump_length"):
        pipe.inpaint(picture, torch.ones(16, 16), steps=4, jump_length=4, jumps=2)


def test_outpaint_keeps_the_picture_and_grows_the_canvas(pipe, picture):
    out, rec = pipe.outpaint(picture, (4, 2, 0, 2), "a landscape", n=1, steps=4, jumps=1)
    assert out.shape == (1, 3, 20, 20)
    u = to_uint8(out[0]).permute(1, 2, 0).numpy()
    assert np.array_equal(u[2:18, 4:20], _u8(picture))
    assert rec[0]["extend"] == [4, 2, 0, 2] and rec[0]["width"] == 20
    with pytest.raises(BadParameter, match="multiples of 2"):
        pipe.outpaint(picture, (3, 0, 0, 0))


def test_unreadable_picture_is_one_clear_error(pipe, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    with pytest.raises(UserError, match="bad.png: not a readable picture"):
        pipe.vary(bad)


# -- morphs ---------------------------------------------------------------------------------------------------------
def test_morph_ends_are_the_two_paintings(pipe):
    frames, rec = pipe.morph("a red circle", to_prompt="a blue square", seed=1, to_seed=2, frames=4, steps=5)
    a, _ = pipe.generate("a red circle", seed=1, steps=5)
    b, _ = pipe.generate("a blue square", seed=2, steps=5)
    assert frames.shape == (4, 3, 16, 16)
    assert torch.equal(frames[0], a[0]) and torch.equal(frames[-1], b[0])
    assert rec["mode"] == "morph" and rec["to_seed"] == 2 and rec["frames"] == 4
    # neighbouring frames are closer to each other than the two ends are
    steps_ = [(frames[i + 1] - frames[i]).abs().mean() for i in range(3)]
    assert max(steps_) < (frames[-1] - frames[0]).abs().mean()


def test_morph_needs_somewhere_to_go_and_a_deterministic_sampler(pipe):
    with pytest.raises(BadParameter, match="another prompt"):
        pipe.morph("a red circle", seed=1)
    with pytest.raises(BadParameter, match="deterministic"):
        pipe.morph("a red circle", to_seed=2, sampler="euler_ancestral")
    with pytest.raises(BadParameter, match="frames"):
        pipe.morph("a red circle", to_seed=2, frames=1)


# -- bounds, checked before any work (issue 12 points 2, 3, 8, 9) ----------------------------------------------------
@pytest.fixture
def no_painting(monkeypatch):
    """Any painting fails the test: the request must be refused before the sampler runs."""
    import noisebrush.paint.edit as edit

    monkeypatch.setattr(edit, "sample", lambda *a, **k: pytest.fail("painted a request that should be refused"))


def _half_mask():
    m = torch.zeros(16, 16)
    m[:, 8:] = 1
    return m


def test_jump_length_default_adapts_to_few_steps(pipe, picture):
    """`inpaint --steps 4` refused with "jump_length must be below steps"; the default now fits the steps and the
    recipe records the value used."""
    for steps, want in ((4, 3), (2, 1)):
        _, rec = pipe.inpaint(picture, _half_mask(), "a red circle", n=1, steps=steps, jumps=2)
        assert rec[0]["jump_length"] == want and rec[0]["jumps"] == 2
    _, rec = pipe.inpaint(picture, _half_mask(), "a red circle", n=1, steps=3, jumps=1)
    assert rec[0]["jump_length"] == 4  # no resampling: the old default, so such recipes read as before


def test_jump_length_default_is_the_old_one_for_enough_steps(pipe, picture, monkeypatch):
    import noisebrush.paint.edit as edit

    seen = {}
    monkeypatch.setattr(edit, "sample", lambda *a, **k: seen.update(k) or a[1])
    pipe.inpaint(picture, _half_mask(), "a red circle", n=1, steps=20)
    assert seen["jump_length"] == 4 and seen["jumps"] == 3


def test_jump_length_and_jumps_errors_name_them(pipe, picture, no_painting):
    with pytest.raises(BadParameter, match=r"^jump_length: must be below the number of steps \(4\) to resample, "
                                           r"got 4$"):
        pipe.inpaint(picture, _half_mask(), steps=4, jump_length=4, jumps=2)
    with pytest.raises(BadParameter, match="^jumps: resampling needs at least 2 steps"):
        pipe.inpaint(picture, _half_mask(), steps=1, jumps=2)
    with pytest.raises(BadParameter, match="^jumps: a whole number from 1 to 100, got 101"):
        pipe.inpaint(picture, _half_mask(), steps=4, jumps=101)
    with pytest.raises(BadParameter, match="^jump_length: a whole number from 1 to 1000, got 1001"):
        pipe.inpaint(picture, _half_mask(), steps=4, jump_length=1001, jumps=1)
    with pytest.raises(BadParameter, match="^frames: a whole number from 2 to 2000, got 2001"):
        pipe.morph("a red circle", to_seed=2, frames=2001)
    with pytest.raises(BadParameter, match="^n: a whole number from 1 to 10000, got 10001"):
        pipe.vary(picture, "a red circle", n=10_001)


def test_unusual_jumps_are_warned(pipe, picture):
    with pytest.warns(NoisebrushWarning, match="^jumps 11 is far beyond the usual 10"):
        pipe.inpaint(picture, _half_mask(), "a red circle", n=1, steps=2, jumps=11)


def test_vary_size_is_bounded_before_resizing(pipe, picture, no_painting):
    with pytest.raises(BadParameter, match="^size: a whole number from 2 to 128, got 1024"):
        pipe.vary(picture, "a red circle", size=1024)


def test_outpaint_extend_is_bounded(pipe, picture, no_painting):
    assert parse_extend("64", (16, 16)) == (64, 64, 64, 64)
    with pytest.raises(BadParameter, match=r"^extend: at most 4× the picture's side on each side \(64 left and right, "
                                           r"64 top and bottom for this 16×16 picture\), got 65,0,0,0$"):
        parse_extend("65,0,0,0", (16, 16))
    with pytest.raises(BadParameter, match="^extend: at most 4×"):
        pipe.outpaint(picture, 1000, "a landscape")
    with pytest.raises(BadParameter, match=r"^extend: the new canvas 144×144 is larger than this model paints "
                                           r"\(at most 128 a side\)"):
        pipe.outpaint(picture, 64, "a landscape")


def test_edits_check_memory_before_painting(pipe, picture, no_painting, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "100k")
    msg = r": needs about .* NOISEBRUSH_MEMORY_LIMIT is 100 kB \(set NOISEBRUSH_MEMORY_LIMIT to change\)$"
    with pytest.raises(BadParameter, match="^picture size 16×16" + msg):
        pipe.vary(picture, "a red circle", n=1)
    with pytest.raises(BadParameter, match="^size 8" + msg):
        pipe.vary(picture, "a red circle", n=1, size=8)
    with pytest.raises(BadParameter, match="^picture size 16×16" + msg):
        pipe.inpaint(picture, _half_mask(), "a red circle", n=1)
    with pytest.raises(BadParameter, match="^extend 4,0,4,0" + msg):
        pipe.outpaint(picture, (4, 0, 4, 0), "a red circle", n=1)
    with pytest.raises(BadParameter, match="^size 16" + msg):
        pipe.morph("a red circle", to_seed=2, frames=4)


def test_a_size_the_model_was_not_trained_at_is_warned(pipe, picture):
    with pytest.warns(NoisebrushWarning, match="^size 32: this model was trained at 16 px; expect repeated scenes"):
        pipe.vary(picture, "a red circle", n=1, size=32, strength=0.0)
    with pytest.warns(NoisebrushWarning, match="^size 32: this model was trained at 16 px"):
        pipe.check("a red circle", size=32)


def test_odd_masks_and_extents_are_one_user_error():
    """Found by the parser fuzz test: a mask in Pillow's 'La' mode gave Pillow's ValueError, infinite extents int()'s
    OverflowError."""
    from noisebrush.paint.edit import load_mask

    with pytest.raises(UserError, match="^mask: a La picture cannot be read as a grey mask"):
        load_mask(Image.new("La", (4, 4)), (4, 4))
    with pytest.raises(BadParameter, match="^extend: L,T,R,B as whole numbers"):
        parse_extend([float("inf")] * 4)

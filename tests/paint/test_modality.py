"""noisebrush.paint.modality: shapes, size rules, recipe fields and decoding per modality (no network needed)."""
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from noisebrush.errors import BadParameter, UserError
from noisebrush.paint.modality import MAX_SCALE, Clip, Image, Signal, Volume, modality_for


def config(dims=2, factorized=False, resolution=16, channel_mult=(1, 2, 2), channels=3, **top):
    return {"unet": {"dims": dims, "factorized": factorized, "channel_mult": list(channel_mult),
                     "in_channels": channels}, "resolution": resolution, **top}


def one_line_error(exc, fn, *args):
    with pytest.raises(exc) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_modality_for_each_network():
    assert isinstance(modality_for(config()), Image)
    assert isinstance(modality_for(config(dims=3, factorized=True)), Clip)
    assert isinstance(modality_for(config(dims=3)), Volume)
    assert isinstance(modality_for(config(dims=1)), Signal)
    m = modality_for(config(resolution=32))
    assert (m.step, m.default, m.channels, m.axes) == (4, (32, 32), 3, ("height", "width"))
    # the builtin model's config has no "factorized" under an old key set: defaults hold
    assert isinstance(modality_for({"unet": {}, "resolution": 32}), Image)


def test_default_frames_and_depth_come_from_the_config():
    assert modality_for(config(dims=3, factorized=True, frames=6)).default == (6, 16, 16)
    assert modality_for(config(dims=3, factorized=True)).default == (16, 16, 16)  # cubes, as before modalities
    assert modality_for(config(dims=3, depth=8)).default == (8, 16, 16)
    assert "frames" in one_line_error(BadParameter, modality_for, config(dims=3, factorized=True, frames=0))


def test_image_sizes():
    m = modality_for(config())
    assert m.check_size(None) == (16, 16)
    assert m.check_size(24) == (24, 24)
    assert m.check_size((8, 32)) == (8, 32) and m.check_size([8, 32]) == (8, 32)
    assert m.shape((8, 32)) == (3, 8, 32)
    for bad in (15, 0, -4, 2.5, "16", True, (8,), (8, 8, 8), (8, 10), (0, 8), 8 * 16 + 4):
        msg = one_line_error(BadParameter, m.check_size, bad)
        assert msg.startswith("size"), msg
    assert m.check_size(MAX_SCALE * 16) == (MAX_SCALE * 16,) * 2
    assert "size (width): a multiple of 4, got 10" == one_line_error(BadParameter, m.check_size, (8, 10))


def test_clip_never_pools_time():
    m = modality_for(config(dims=3, factorized=True, frames=4))
    assert m.check_size((5, 8, 12)) == (5, 8, 12)  # 5 frames: time is not pooled; 8 and 12 are multiples of 4
    assert m.check_size(8) == (4, 8, 8)  # an int sets height and width; frames keep the model's default
    assert m.check_size((1, 4, 4)) == (1, 4, 4)
    assert one_line_error(BadParameter, m.check_size, (0, 8, 8)).startswith("size (frames)")
    assert one_line_error(BadParameter, m.check_size, (4, 6, 8)).startswith("size (height)")
    assert one_line_error(BadParameter, m.check_size, (4, 8)).startswith("size:")


def test_volume_pools_every_axis():
    m = modality_for(config(dims=3))
    assert m.check_size(8) == (8, 8, 8) and m.check_size((4, 8, 12)) == (4, 8, 12)
    assert one_line_error(BadParameter, m.check_size, (5, 8, 8)).startswith("size (depth)")


@pytest.mark.parametrize("cfg, size, fields", [
    (config(), (8, 12), {"width": 12, "height": 8}),
    (config(dims=3, factorized=True), (5, 8, 12), {"frames": 5, "width": 12, "height": 8}),
    (config(dims=3), (4, 8, 12), {"depth": 4, "width": 12, "height": 8}),
    (config(dims=1), (16,), {"length": 16}),
])
def test_recipe_fields_round_trip(cfg, size, fields):
    m = modality_for(cfg)
    assert m.recipe_fields(size) == fields
    assert m.size_from_recipe({"prompt": "x", **fields}) == size
    assert m.size_from_recipe({"prompt": "x"}) is None  # nothing recorded: the model's default


def test_image_recipe_keys_are_the_old_ones_in_the_old_order():
    assert list(modality_for(config()).recipe_fields((16, 16))) == ["width", "height"]
    assert modality_for(config()).size_from_recipe({"width": 24}) == (24, 24)  # width alone: a square


def test_a_recipe_missing_an_axis_is_one_line():
    m = modality_for(config(dims=3, factorized=True))
    assert "frames" in one_line_error(BadParameter, m.size_from_recipe, {"width": 8, "height": 8})
    one_line_error(BadParameter, m.size_from_recipe, {"frames": "4", "width": 8, "height": 8})


def test_decode_image_is_pil():
    m = modality_for(config())
    x = torch.rand(2, 3, 8, 12) * 2 - 1
    pics = m.decode(x)
    assert len(pics) == 2 and all(isinstance(p, PILImage.Image) and p.size == (12, 8) for p in pics)
    assert m.preview(x)[0].tobytes() == pics[0].tobytes()


def test_decode_clip_to_frames():
    m = modality_for(config(dims=3, factorized=True))
    x = torch.rand(2, 3, 5, 8, 12) * 2 - 1
    clips = m.decode(x)
    assert len(clips) == 2 and len(clips[0]) == 5 and clips[0][0].size == (12, 8)
    arrays = m.frames(x)
    assert arrays[0].shape == (5, 8, 12, 3) and arrays[0].dtype == np.uint8
    assert np.array_equal(arrays[1][3], np.asarray(clips[1][3]))
    strip = m.preview(x)[0]
    assert strip.width > 5 * 12 and strip.height > 8
    with pytest.raises(BadParameter):
        m.decode(torch.zeros(1, 3, 8, 8))


def test_decode_volume_to_arrays_and_slices():
    m = modality_for(config(dims=3))
    x = torch.rand(1, 3, 4, 8, 8) * 2 - 1
    (v,) = m.decode(x)
    assert v.shape == (3, 4, 8, 8) and v.dtype == np.float32 and np.array_equal(v, x[0].numpy())
    (grid,) = m.preview(x)
    assert grid.size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)  # 4 slices in a 2×2 grid, 2-pixel gaps


def test_decode_signal():
    m = modality_for(config(dims=1, channels=2))
    x = torch.rand(3, 2, 16) * 2 - 1
    assert m.decode(x)[0].shape == (2, 16)
    assert m.preview(x)[0].size == (16, 1)


def test_edits_are_for_images_only():
    modality_for(config()).only_images("vary")
    msg = one_line_error(UserError, modality_for(config(dims=3, factorized=True)).only_images, "vary")
    assert msg.startswith("vary:") and "clip" in msg

"""The pattern folder (a stand-in for a user's own pictures): the same pictures for the same seed, captions that
say what is drawn, patterns too fine for a quarter-size copy, and bad options as one line."""
import numpy as np
import pytest
from PIL import Image

from noisebrush.bench.pattern_folder import COLOURS, PATTERNS, SHAPES, main, pattern_picture, write_pattern_folder


def test_same_seed_same_pictures_other_seed_other_pictures():
    a, ca = pattern_picture(5, 64, seed=0)
    b, cb = pattern_picture(5, 64, seed=0)
    c, _ = pattern_picture(5, 64, seed=1)
    assert ca == cb and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert a.size == (64, 64) and a.mode == "RGB"


@pytest.mark.parametrize("i", range(12))
def test_caption_names_what_is_drawn(i):
    pic, caption = pattern_picture(i, 128, seed=0)
    words = caption.split()
    c1, c2, pattern, shape = words[0], words[2], words[3], words[-1]
    assert c1 in COLOURS and c2 in COLOURS and pattern in PATTERNS and shape in SHAPES and words[-2] in COLOURS
    px = np.asarray(pic).reshape(-1, 3).astype(int)
    for colour in (c1, c2, words[-2]):  # each named colour is there, nearly pure, on many pixels
        near = (np.abs(px - np.array(COLOURS[colour])).sum(1) < 30).mean()
        assert near > 0.02, (caption, colour, near)
    assert words[-3] == ("an" if words[-2][0] in "aeiou" else "a")


def test_the_pattern_is_finer_than_a_quarter_size_copy_holds():
    """Box-averaged to 32 px and back, the pattern is mostly gone: high-frequency energy a 32 px base cannot give."""
    lost = []
    for i in range(8):
        pic, _ = pattern_picture(i, 128, seed=0)
        x = np.asarray(pic, float)
        small = x.reshape(32, 4, 32, 4, 3).mean(axis=(1, 3))
        back = np.repeat(np.repeat(small, 4, 0), 4, 1)
        lost.append(((x - back) ** 2).mean() / x.var())
    assert np.median(lost) > 0.2


def test_folder_pictures_and_captions(tmp_path):
    out = write_pattern_folder(tmp_path / "own", 3, size=32, seed=2)
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00000.txt", "00001.png", "00001.txt",
                                                     "00002.png", "00002.txt"]
    pic, caption = pattern_picture(1, 32, seed=2)
    assert (out / "00001.txt").read_text() == caption + "\n"
    assert np.array_equal(np.asarray(Image.open(out / "00001.png")), np.asarray(pic))


@pytest.mark.parametrize("argv, match", [(["--n", "0"], "n"), (["--size", "4"], "size"), (["--seed", "-1"], "--seed")])
def test_bad_options_are_one_line(tmp_path, argv, match, capsys):
    assert main([str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err
    assert not (tmp_path / "x").exists()

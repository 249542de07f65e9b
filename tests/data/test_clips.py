"""ProceduralClips: item format, determinism, the still scene inside each clip, variety of motions, captions that
name the motion, and motion that really goes the way the caption says (measured on the pixels)."""
from __future__ import annotations

import functools
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from noisebrush.data.clips import (
    MOTION_ATTRIBUTES,
    MOTIONS,
    ClipScene,
    ProceduralClips,
    _caption,
    decode_motion,
    frame_scene,
    make_clip,
    render_clip,
)
from noisebrush.data.procedural import ATTRIBUTES, FAMILIES, ProceduralArt, Scene, make_scene, render_scene
from noisebrush.errors import BadParameter

N_CLIPS = 600  # clips whose recipes the tests look at (no rendering)
CENTRED = ("sliding", "rising", "setting", "drifting", "rotating", "turning")  # passing the picture mid-clip


@functools.lru_cache(maxsize=None)
def clips(seed: int = 0) -> tuple[ClipScene, ...]:
    return tuple(make_clip(seed, i) for i in range(N_CLIPS))


def find(family: str, kind: str, n: int, **motion) -> list[ClipScene]:
    """The first n clips (of the first N_CLIPS) of this family and motion kind (and direction / speed if given)."""
    out = [c for c in clips() if c.family == family and c.motion["motion"] == kind
           and all(c.motion.get(k) == v for k, v in motion.items())]
    assert len(out) >= n, (family, kind, motion, len(out))
    return out[:n]


def pixels(scene: Scene, res: int) -> np.ndarray:
    """H x W x 3 float32."""
    return np.asarray(render_scene(scene, res), dtype=np.float32)


def with_params(scene: Scene, **changes) -> Scene:
    p = dict(scene.params)
    p.update(changes)
    return replace(scene, params=tuple(sorted(p.items())))


def centroid(weight: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass of an H x W weight map, in pixels (y down)."""
    ys, xs = np.mgrid[: weight.shape[0], : weight.shape[1]]
    total = weight.sum()
    assert total > 0
    return float((weight * xs).sum() / total), float((weight * ys).sum() / total)


def turn_angle(img: np.ndarray, centre: tuple[float, float], radius: float, fg, bg, m: int) -> float:
    """The orientation (radians, modulo 2π/m) of a pattern with m-fold symmetry around ``centre`` (pixels): the
    phase of the m-th angular harmonic of the foreground, divided by m. Angles are atan2(down, right) in pixel
    coordinates, so a growing angle is clockwise on the screen (checked in test_turn_angle_reads_the_screen)."""
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]] + 0.5
    dx, dy = xs - centre[0], ys - centre[1]
    d_fg = np.linalg.norm(img - np.asarray(fg, np.float32), axis=-1)
    d_bg = np.linalg.norm(img - np.asarray(bg, np.float32), axis=-1)
    weight = d_bg / (d_fg + d_bg + 1e-6) * (np.hypot(dx, dy) < radius)
    return float(np.angle((weight * np.exp(1j * m * np.arctan2(dy, dx))).sum()) / m)


def turned(a0: float, a1: float, m: int) -> float:
    """a1 - a0 folded into (-π/m, π/m]."""
    period = 2 * math.pi / m
    return (a1 - a0 + period / 2) % period - period / 2


# ---------------------------------------------------------------------------------------------------- the items


def test_item_format():
    ds = ProceduralClips(resolution=16, frames=4, size=50)
    assert len(ds) == 50 and ds.num_classes == len(FAMILIES) == 6 and ds.classes == list(FAMILIES)
    assert repr(ds) == "ProceduralClips(resolution=16, frames=4, size=50, seed=0, supersample=4)"
    for i in (0, 1, 37, 49):
        item = ds[i]
        x = item["clip"]
        assert x.shape == (3, 4, 16, 16) and x.dtype == torch.float32
        assert -1.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
        assert torch.equal(x, ds.clip_uint8(i).float() / 127.5 - 1)
        assert item["caption"] == ds.caption(i) == ds.clip(i).caption
        assert isinstance(item["label"], int) and FAMILIES[item["label"]] == ds.scene(i).family
        assert item["attrs"].dtype == torch.long and item["attrs"].shape == (len(ATTRIBUTES),)
        assert item["motion"].dtype == torch.long and item["motion"].shape == (len(MOTION_ATTRIBUTES),)
        assert decode_motion(item["motion"]) == dict(ds.clip(i).motion)
        assert item["index"] == i
    frames = ds.render(3)
    assert len(frames) == 4 and all(f.size == (16, 16) and f.mode == "RGB" for f in frames)
    assert [f.size for f in ds.render(3, resolution=24, frames=2)] == [(24, 24)] * 2
    assert ds[np.int64(5)]["index"] == 5
    assert ds.clip_uint8(5).dtype == torch.uint8 and ds.clip_uint8(5).shape == (3, 4, 16, 16)


def test_dataloader_batches():
    loader = torch.utils.data.DataLoader(ProceduralClips(resolution=16, frames=3, size=8), batch_size=4)
    batch = next(iter(loader))
    assert batch["clip"].shape == (4, 3, 3, 16, 16) and len(batch["caption"]) == 4
    assert batch["motion"].shape == (4, len(MOTION_ATTRIBUTES)) and batch["label"].dtype == torch.long


def test_a_single_frame_is_a_picture():
    ds = ProceduralClips(resolution=16, frames=1, size=40)
    art = ProceduralArt(resolution=16, size=40)
    for i in range(40):
        x = ds.clip_uint8(i)
        assert x.shape == (3, 1, 16, 16)
        if ds.clip(i).motion["motion"] in CENTRED or ds.clip(i).family == "mondrian":
            assert np.array_equal(x[:, 0].numpy(), np.asarray(art.render(i)).transpose(2, 0, 1))


def test_index_out_of_range():
    ds = ProceduralClips(resolution=16, frames=2, size=10)
    for bad in (-1, 10, 10**9):
        for get in (ds.__getitem__, ds.clip, ds.scene, ds.render, ds.caption, ds.clip_uint8):
            with pytest.raises(IndexError):
                get(bad)
    with pytest.raises(TypeError):
        ds["3"]


@pytest.mark.parametrize(
    "kwargs, name",
    [({"frames": 0}, "frames"), ({"frames": 257}, "frames"), ({"frames": 2.0}, "frames"),
     ({"resolution": 4}, "resolution"), ({"resolution": 2048}, "resolution"), ({"size": 0}, "size"),
     ({"supersample": 0}, "supersample"), ({"supersample": True}, "supersample"), ({"seed": "a"}, "seed")],
)
def test_bad_parameters(kwargs, name):
    with pytest.raises(BadParameter, match=name):
        ProceduralClips(**kwargs)


def test_bad_render_and_cache_parameters():
    ds = ProceduralClips(resolution=16, frames=2, size=10)
    clip = ds.clip(0)
    with pytest.raises(BadParameter, match="resolution"):
        ds.render(0, resolution=7)
    with pytest.raises(BadParameter, match="frames"):
        ds.render(0, frames=0)
    with pytest.raises(BadParameter, match="n must"):
        ds.cache_uint8(11)
    with pytest.raises(BadParameter, match="workers"):
        ds.cache_uint8(2, workers=0)
    with pytest.raises(BadParameter, match="f must"):
        frame_scene(clip, 4, 4)
    with pytest.raises(BadParameter, match="frames"):
        frame_scene(clip, 0, 0)
    with pytest.raises(BadParameter, match="supersample"):
        render_clip(clip, 16, 2, supersample=9)
    with pytest.raises(BadParameter, match="motion indices"):
        decode_motion([0, 1])


# ---------------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_clips_in_any_order():
    a, b = ProceduralClips(resolution=16, frames=3, size=100), ProceduralClips(resolution=16, frames=3, size=100)
    order = [42, 7, 99, 0, 7]
    first = {i: a.clip_uint8(i) for i in order}
    for i in reversed(order):
        assert torch.equal(b.clip_uint8(i), first[i])
        assert b.clip(i) == a.clip(i) and b.caption(i) == a.caption(i)
    other = ProceduralClips(resolution=16, frames=3, size=100, seed=1)
    assert sum(other.caption(i) != a.caption(i) for i in range(20)) > 15


def test_cache_matches_items_and_workers_agree():
    """Spawned workers are fresh interpreters with their own string-hash salt: equal clips mean no hash()."""
    ds = ProceduralClips(resolution=16, frames=4, size=12)
    seen = []
    cached = ds.cache_uint8(8, progress=lambda done, total: seen.append((done, total)), chunk=3)
    assert cached.shape == (8, 3, 4, 16, 16) and cached.dtype == torch.uint8
    assert seen == [(3, 8), (6, 8), (8, 8)]
    for i in range(8):
        assert torch.equal(cached[i], ds.clip_uint8(i))
    assert torch.equal(ds.cache_uint8(4, workers=2, chunk=2), cached[:4])


def test_the_scene_is_procedural_arts():
    art = ProceduralArt(size=N_CLIPS, seed=3)
    ds = ProceduralClips(size=N_CLIPS, seed=3)
    for i in range(0, N_CLIPS, 7):
        clip = ds.clip(i)
        assert clip.scene == ds.scene(i) == art.scene(i) == make_scene(3, i)
        assert clip.label == art.scene(i).label
        picture = dict(art.scene(i).attributes)
        if "position" not in clip.attributes:
            picture.pop("position", None)
        assert dict(clip.attributes) == picture


@pytest.mark.parametrize("kind", CENTRED)
def test_the_middle_frame_is_the_picture(kind):
    family = {"rising": "landscape", "setting": "landscape", "drifting": "landscape", "rotating": "rings",
              "turning": "swirl", "sliding": "shapes"}[kind]
    for clip in find(family, kind, 3):
        picture = pixels(clip.scene, 16)
        frames = render_clip(clip, 16, frames=5)
        assert np.array_equal(np.asarray(frames[2], np.float32), picture)
        assert not np.array_equal(np.asarray(frames[0], np.float32), picture)  # and it does move


def test_where_the_other_motions_meet_the_picture():
    """Sway, pulse and a Mondrian slide start from the picture; an opening flower ends in it."""
    for family, kind in (("flower", "swaying"), ("rings", "pulsing"), ("mondrian", "sliding")):
        for clip in find(family, kind, 2):
            frames = render_clip(clip, 16, frames=3)
            assert np.array_equal(np.asarray(frames[0], np.float32), pixels(clip.scene, 16))
            assert not np.array_equal(np.asarray(frames[2]), np.asarray(frames[0]))
    for speed, last in (("slowly", 17), ("quickly", 9)):  # 0.3 + rate·f reaches 1 at f = 15.6 / 7.8
        for clip in find("flower", "opening", 2, speed=speed):
            assert frame_scene(clip, last - 1, last) == clip.scene
            assert frame_scene(clip, last - 2, last) != clip.scene


# ---------------------------------------------------------------------------------------------------- variety


def test_every_motion_appears_early():
    by_family = {f: [c for c in clips() if c.family == f] for f in FAMILIES}
    for family, kinds in MOTIONS.items():
        got = [c.motion["motion"] for c in by_family[family]]
        assert set(got) == set(kinds), family
        for kind in kinds:
            assert got.count(kind) >= 0.15 * len(got), (family, kind, got.count(kind), len(got))
    for kind in MOTION_ATTRIBUTES["motion"]:
        of_kind = [c.motion for c in clips() if c.motion["motion"] == kind]
        assert {m["speed"] for m in of_kind} == {"slowly", "quickly"}, kind
        directions = {m.get("direction") for m in of_kind}
        expected = {"sliding": {"left", "right", "up", "down"}, "drifting": {"left", "right"},
                    "rotating": {"clockwise", "anticlockwise"}, "turning": {"clockwise", "anticlockwise"}}
        assert directions == expected.get(kind, {None}), kind
    for family in ("shapes", "mondrian"):  # both families slide all four ways
        assert {c.motion.get("direction") for c in by_family[family] if c.motion["motion"] == "sliding"} == \
            {"left", "right", "up", "down"}


def test_motions_fit_their_scenes():
    for c in clips():
        a = c.scene.attributes
        kind = c.motion["motion"]
        assert kind in MOTIONS[c.family]
        assert set(c.motion) == ({"motion", "direction", "speed"}
                                 if kind in ("sliding", "drifting", "rotating", "turning") else {"motion", "speed"})
        if c.family == "landscape":
            assert (kind == "drifting") == (a["sky"] == "night")
        if kind == "rotating":
            assert a["shape"] == "square"
        assert ("position" in c.attributes) == ("position" in a and c.family != "shapes" and kind != "drifting")
        assert all(c.attributes[k] == a[k] for k in c.attributes)
        indices = c.attr_indices()
        assert indices[list(ATTRIBUTES).index("family")] == c.label
        if "position" not in c.attributes:
            assert indices[list(ATTRIBUTES).index("position")] == -1


# ---------------------------------------------------------------------------------------------------- captions

PHRASE = (r"(?P<motion>\w+)(?: (?P<direction>left|right|up|down|clockwise|anticlockwise))? "
          r"(?P<speed>slowly|quickly)")
TEMPLATES = {
    "shapes": rf"(?:a|(?P<count>two|three|four|five)) (?P<size>\w+) (?P<colour>\w+) (?P<shape>circle|square|triangle)"
              rf"s? {PHRASE} on an? (?P<colour2>\w+) background",
    "mondrian": rf"a mondrian (?:grid|painting) in (?P<colour>\w+) and (?P<colour2>\w+) {PHRASE}",
    "landscape": rf"a (?P<size>\w+) (?P<colour>\w+) (?P<body>sun|moon) {PHRASE}(?: (?:in|on) the "
                 rf"(?P<position>left|centre|right))? over (?:a (?P<sea>\w+) sea|(?P<land>\w+) "
                 rf"(?P<ground>mountains|hills))(?: at (?P<sky>sunset|night))?",
    "flower": rf"a (?P<size>\w+) (?P<colour>\w+) flower with (?P<count>\w+) petals {PHRASE} (?:in|on) the "
              rf"(?P<position>left|centre|right) on (?P<colour2>\w+)",
    "rings": rf"(?P<count>two|three|four) concentric (?P<colour>\w+) (?P<noun>rings|squares) {PHRASE} on "
             rf"(?P<colour2>\w+)(?:, centred on the (?P<position>left|right))?",
    "swirl": rf"a (?P<size>\w+) (?P<colour>\w+) swirl with (?P<count>one|two|three) arms? {PHRASE} (?:in|on) the "
             rf"(?P<position>left|centre|right) of a (?P<colour2>\w+) starry sky",
}


def test_captions_follow_the_templates_and_match_the_labels():
    for c in clips():
        m = re.fullmatch(TEMPLATES[c.family], c.caption)
        assert m, c.caption
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        a = c.scene.attributes
        assert {k: g.get(k) for k in ("motion", "direction", "speed")} == \
            {k: c.motion.get(k) for k in ("motion", "direction", "speed")}, c.caption
        for name in ("colour", "colour2", "shape", "size", "count"):
            if name in g:
                assert g[name] == a[name], (name, c.caption)
        words = c.caption.replace(",", "").split()
        assert c.motion["motion"] in words and c.motion["speed"] in words
        assert c.motion.get("direction", c.motion["motion"]) in words
        assert decode_motion(c.motion_indices()) == dict(c.motion)
        assert decode_motion(torch.tensor(c.motion_indices())) == dict(c.motion)
        if c.family == "shapes":
            assert g.get("count", "one") == a["count"] and "position" not in c.attributes
            assert (" on the " not in c.caption) and (" in the " not in c.caption)
        elif c.family == "landscape":
            assert g["body"] == ("moon" if a["sky"] == "night" else "sun")
            assert g.get("sea", g.get("land")) == a["colour2"] and g.get("ground", "sea") == a["ground"]
            assert g.get("sky", "day") == a["sky"]
            assert g.get("position") == c.attributes.get("position")
        elif c.family == "rings":
            assert g["noun"] == ("rings" if a["shape"] == "circle" else "squares")
            assert g.get("position", "centre") == a["position"]
        elif c.family in ("flower", "swirl"):
            assert g["position"] == a["position"]


@pytest.mark.parametrize("family, attributes, motion, caption", [
    ("shapes", dict(colour="red", colour2="blue", shape="circle", size="small", count="one", position="left"),
     ("sliding", "left", "slowly"), "a small red circle sliding left slowly on a blue background"),
    ("shapes", dict(colour="red", colour2="orange", shape="circle", size="small", count="three"),
     ("bouncing", None, "quickly"), "three small red circles bouncing quickly on an orange background"),
    ("landscape", dict(colour="yellow", colour2="green", sky="day", ground="hills", position="left", size="small"),
     ("rising", None, "slowly"), "a small yellow sun rising slowly on the left over green hills"),
    ("landscape", dict(colour="red", colour2="blue", sky="sunset", ground="sea", position="centre", size="large"),
     ("setting", None, "quickly"), "a large red sun setting quickly in the centre over a blue sea at sunset"),
    ("landscape", dict(colour="white", colour2="purple", sky="night", ground="mountains", position="left",
                       size="small"),
     ("drifting", "right", "slowly"), "a small white moon drifting right slowly over purple mountains at night"),
    ("flower", dict(colour="red", colour2="blue", position="left", size="small", count="five"),
     ("opening", None, "slowly"), "a small red flower with five petals opening slowly on the left on blue"),
    ("rings", dict(colour="red", colour2="blue", shape="circle", position="left", count="three"),
     ("pulsing", None, "slowly"), "three concentric red rings pulsing slowly on blue, centred on the left"),
    ("rings", dict(colour="teal", colour2="black", shape="square", position="centre", count="two"),
     ("rotating", "clockwise", "quickly"), "two concentric teal squares rotating clockwise quickly on black"),
    ("swirl", dict(colour="yellow", colour2="blue", position="left", size="small", count="two"),
     ("turning", "anticlockwise", "slowly"),
     "a small yellow swirl with two arms turning anticlockwise slowly on the left of a blue starry sky"),
])
def test_caption_templates(family, attributes, motion, caption):
    scene = Scene(family, {"family": family, **attributes}, "the still's caption", ())
    kind, direction, speed = motion
    moving = {"motion": kind, **({"direction": direction} if direction else {}), "speed": speed}
    assert _caption(scene, moving) == caption


def test_mondrian_captions_keep_the_pictures_words():
    for c in find("mondrian", "sliding", 5):
        assert c.caption == f"{c.scene.caption} sliding {c.motion['direction']} {c.motion['speed']}"


# ---------------------------------------------------------------------------------------------------- motion on screen

STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def test_sliding_shapes_go_the_captioned_way_and_quickly_goes_farther():
    res, frames = 32, 9
    rate = {"slowly": [], "quickly": []}
    for direction in STEP:
        for clip in find("shapes", "sliding", 6, direction=direction):
            bare = pixels(with_params(clip.scene, objects=()), res)  # the background alone
            first, last = (pixels(frame_scene(clip, f, frames), res) for f in (0, frames - 1))
            (x0, y0), (x1, y1) = (centroid(np.abs(img - bare).sum(-1)) for img in (first, last))
            along = ((x1 - x0) * STEP[direction][0] + (y1 - y0) * STEP[direction][1]) / (frames - 1)
            across = ((x1 - x0) * STEP[direction][1] - (y1 - y0) * STEP[direction][0]) / (frames - 1)
            assert along > 0.15 and abs(across) < 0.2 * along, (clip.caption, along, across)
            rate[clip.motion["speed"]].append(along)
    slow, quick = np.mean(rate["slowly"]), np.mean(rate["quickly"])
    assert 0.25 < slow < 0.45 and quick > 1.8 * slow, (slow, quick)  # 0.012 and 0.028 of 32 px a frame


def test_bouncing_shapes_go_up_and_come_down():
    res = 32
    for clip in find("shapes", "bouncing", 6):
        period = {"slowly": 8, "quickly": 4}[clip.motion["speed"]]
        bare = pixels(with_params(clip.scene, objects=()), res)
        ys = [centroid(np.abs(pixels(frame_scene(clip, f, 2 * period), res) - bare).sum(-1))[1]
              for f in (0, period // 2, period)]
        assert ys[0] - ys[1] > 0.1 * res  # 0.15 of the picture up at the top of the bounce
        assert abs(ys[2] - ys[0]) < 0.02 * res  # and back down a period later


def test_mondrian_rolls_the_captioned_way():
    res = 32
    for direction in STEP:
        for clip in find("mondrian", "sliding", 2, direction=direction):
            px = {"slowly": 1, "quickly": 2}[clip.motion["speed"]]  # 1/32 or 2/32 of 32 px a frame
            frames = [np.asarray(f) for f in render_clip(clip, res, frames=4)]
            dx, dy = STEP[direction]
            for f in range(1, 4):
                # what was at (x, y) in frame 0 is at (x + dx·shift, y + dy·shift) in frame f, wrapping round
                expected = np.roll(frames[0], (dy * px * f, dx * px * f), axis=(0, 1))
                assert np.array_equal(frames[f], expected)
                assert not np.array_equal(frames[f], frames[0])


def test_every_mondrian_slide_shows():
    """A grid cut only into columns (or rows) looks the same rolled along them: it slides only across them."""
    for clip in find("mondrian", "sliding", 80):
        frames = render_clip(clip, 16, frames=3)  # 1 px at frame 2, even slowly
        assert not np.array_equal(np.asarray(frames[2]), np.asarray(frames[0])), clip.caption


@pytest.mark.parametrize("kind, direction, step", [("rising", None, (0, -1)), ("setting", None, (0, 1)),
                                                   ("drifting", "left", (-1, 0)), ("drifting", "right", (1, 0))])
def test_sun_and_moon_go_the_captioned_way(kind, direction, step):
    res, frames = 32, 5
    extra = {"direction": direction} if direction else {}
    for clip in find("landscape", kind, 4, **extra):
        x, y, r = dict(clip.scene.params)["sun"]
        moved = [frame_scene(clip, f, frames) for f in (0, frames - 1)]
        # the sun's own pixels (and glow, and reflection): the frame against the same frame with the sun far away
        c0, c1 = (centroid(np.abs(pixels(s, res) - pixels(with_params(s, sun=(-9.0, y, r)), res)).sum(-1))
                  for s in moved)
        along = (c1[0] - c0[0]) * step[0] + (c1[1] - c0[1]) * step[1]
        assert along > 0.5, (clip.caption, c0, c1)


def test_turn_angle_reads_the_screen():
    """A dot moving from 12 o'clock towards 1 o'clock (clockwise on the screen) reads as a growing angle."""
    def dot(angle_from_up):
        img = np.zeros((41, 41, 3), np.float32)
        row, col = 20.5 - 12 * math.cos(angle_from_up), 20.5 + 12 * math.sin(angle_from_up)
        img[int(row) - 1: int(row) + 2, int(col) - 1: int(col) + 2] = 255
        return img

    a0, a1 = (turn_angle(dot(t), (20.5, 20.5), 20, (255, 255, 255), (0, 0, 0), 1) for t in (0.0, 0.4))
    assert 0.25 < turned(a0, a1, 1) < 0.55


@pytest.mark.parametrize("family, kind", [("swirl", "turning"), ("rings", "rotating")])
def test_clockwise_is_clockwise_on_screen(family, kind):
    res, frames = 64, 5
    for direction, sign in (("clockwise", 1), ("anticlockwise", -1)):
        for clip in find(family, kind, 4, direction=direction):
            p = dict(clip.scene.params)
            m, radius = (p["arms"], p["r"]) if family == "swirl" else (4, p["radii"][2])  # 4: a square's symmetry
            centre = (p["centre"][0] * res, p["centre"][1] * res)
            radius = min(radius * res, *centre, res - centre[0], res - centre[1])  # a whole disc, inside the frame
            a0, a1 = (turn_angle(pixels(frame_scene(clip, f, frames), res), centre, radius, p["fg"], p["bg"], m)
                      for f in (0, 2))
            rate = {"swirl": {"slowly": 0.08, "quickly": 0.2}, "rings": {"slowly": 0.04, "quickly": 0.1}}
            expected = 2 * rate[family][clip.motion["speed"]]
            assert 0.5 * expected < sign * turned(a0, a1, m) < 1.6 * expected, (clip.caption, turned(a0, a1, m))


def test_an_opening_flower_grows_its_petals():
    res, frames = 32, 16
    for clip in find("flower", "opening", 6):
        area = []
        for f in (0, 4, 8, frames - 1):
            s = frame_scene(clip, f, frames)
            petals = np.abs(pixels(s, res) - pixels(with_params(s, r=1e-9), res)).sum(-1) > 30
            area.append(int(petals.sum()))
        assert area == sorted(area) and area[-1] > 4 * area[0], (clip.caption, area)


def test_a_swaying_flower_sways_with_its_stem_planted():
    res = 32
    for clip in find("flower", "swaying", 6):
        period = {"slowly": 16, "quickly": 8}[clip.motion["speed"]]
        xs = []
        for f in (0, period // 4, 3 * period // 4):
            s = frame_scene(clip, f, period)
            head = np.abs(pixels(s, res) - pixels(with_params(s, r=1e-9), res)).sum(-1)
            xs.append(centroid(head)[0])
        assert xs[1] - xs[0] > 0.03 * res and xs[0] - xs[2] > 0.03 * res, (clip.caption, xs)  # ± 0.05 of the width
        p0 = dict(clip.scene.params)
        for f in range(period):
            p = dict(frame_scene(clip, f, period).params)
            assert (p["lean"] > 0) == (p0["lean"] > 0)  # the leaf stays on its side
            if abs(p0["lean"]) > 0.05:  # room to bend: the stem's foot stays put
                assert math.isclose(p["centre"][0] + p["lean"], p0["centre"][0] + p0["lean"], abs_tol=1e-12)


def test_pulsing_rings_grow_shrink_and_come_back():
    res = 64
    for clip in find("rings", "pulsing", 6):
        period = {"slowly": 16, "quickly": 8}[clip.motion["speed"]]
        p = dict(clip.scene.params)
        r0, r1 = p["radii"][:2]
        ys, xs = np.mgrid[:res, :res] + 0.5
        disc = np.hypot(xs - p["centre"][0] * res, ys - p["centre"][1] * res) < (r0 + r1) / 2 * res
        frames = {f: pixels(frame_scene(clip, f, period + 1), res) for f in (0, period // 4, 3 * period // 4, period)}
        # the share of the disc in the ring colour: the inner background disc grows, then shrinks below its size
        share = {f: float((np.linalg.norm(img - np.asarray(p["fg"], np.float32), axis=-1) <
                           np.linalg.norm(img - np.asarray(p["bg"], np.float32), axis=-1))[disc].mean())
                 for f, img in frames.items()}
        assert share[period // 4] < share[0] - 0.05 and share[3 * period // 4] > share[0] + 0.05, (clip.caption, share)
        assert np.abs(frames[period] - frames[0]).max() <= 1

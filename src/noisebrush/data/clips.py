"""ProceduralClips: short captioned clips of the ProceduralArt scenes, where the caption says how things move.

Item i is the ProceduralArt picture of the same (seed, i), set in motion: the shapes slide or bounce, the
Mondrian grid slides, the sun rises or sets, the moon drifts, the flower opens or sways, the rings pulse or
rotate, the swirl turns. The caption names the motion, its direction where it has one, and its speed:

    from noisebrush.data.clips import ProceduralClips, decode_motion

    ds = ProceduralClips(resolution=32, frames=16, size=20000, seed=0)
    item = ds[123]
    item["clip"]                   # float32, 3 x 16 x 32 x 32 (channels, frames, height, width), in [-1, 1]
    item["caption"]                # e.g. "a small red circle sliding left slowly on a blue background"
    decode_motion(item["motion"])  # {"motion": "sliding", "direction": "left", "speed": "slowly"}
    ds.scene(123)                  # the still scene: ProceduralArt(seed=0).scene(123), unchanged
    frames = ds.render(123, resolution=128)   # the same clip, larger, as a list of PIL pictures
    clips = ds.cache_uint8(1000, workers=4)   # 1000 x 3 x 16 x 32 x 32 uint8

Motions (rates are per frame; widths are of the picture; ``c = (F - 1) / 2`` is the middle of an F-frame clip;
``P`` is a period in frames):

========= ============================= ========================================== ======== ========
family    motion (direction)            what moves at frame f                      slowly   quickly
========= ============================= ========================================== ======== ========
shapes    sliding (left/right/up/down)  every object, by rate * (f - c)            0.012 w  0.028 w
shapes    bouncing                      every object's y, by H/2 - H |sin(pi f/P)| P = 8    P = 4
                                        with H = 0.15 w (down is +)
mondrian  sliding (left/right/up/down)  the frame, rolled round by rate * f in     w / 32   2 w / 32
                                        whole pixels; a grid cut one way only
                                        slides across its cells
landscape rising, setting (day, sunset) the sun's y, by -/+ rate * (f - c)         0.010 w  0.022 w
landscape drifting (left/right; night)  the moon's x, by -/+ rate * (f - c)        0.010 w  0.022 w
flower    opening                       petal radius r * min(1, 0.3 + rate * f)    0.045    0.09
flower    swaying                       head x by 0.05 w sin(2 pi f/P), petal      P = 16   P = 8
                                        angle by 0.3 sin(2 pi f/P)
rings     pulsing                       every radius * (1 + 0.15 sin(2 pi f/P))    P = 16   P = 8
rings     rotating (clockwise/anti-)    the squares' angle, by +/- rate * (f - c)  0.04 rad 0.1 rad
          (square rings only)
swirl     turning (clockwise/anti-)     the arms' angle, by +/- rate * (f - c)     0.08 rad 0.2 rad
========= ============================= ========================================== ======== ========

Every clip is ``slowly`` or ``quickly``; ``direction`` applies to sliding, drifting, rotating and turning (the
kind itself says which way rising and setting go). Clockwise is clockwise as seen on the screen: the renderers
place points at (x + r cos a, y + r sin a) with y pointing down, so a growing angle turns clockwise.

The middle of a clip is the picture. The centred motions (sliding shapes, rising, setting, drifting, rotating,
turning) pass through the scene's own layout at f = c, so for an odd number of frames the middle frame is
bit for bit ProceduralArt's picture. Sway and pulse start from it (frame 0 is the picture), a Mondrian slide
starts from it (frame 0), a flower opens towards it (the last frames are the picture once the petals are fully
open) and a bounce starts half a bounce below it. Sliding shapes may partly leave the frame; a setting sun sinks
behind the ridges, which are drawn over it; a swaying flower bends its stem and keeps the stem's foot in place,
except where that would take the stem's lean across zero (the renderer would flip the leaf to the other side).

How often: shapes slide in 60% of shape clips and bounce in the rest; a night landscape drifts, a day or sunset
one rises or sets (even odds); a flower opens or sways (even odds); square rings rotate in 70% of cases and pulse
otherwise, round rings always pulse. Directions and speeds are drawn evenly.

Determinism. The still scene is ``make_scene(seed, i)``; the motion comes from a second ``random.Random``
seeded by an integer mix of (seed, i) and a fixed salt (never ``hash()``, which is salted per process), so
adding motion changes nothing about the scene and a clip depends only on (seed, i), not on the process, the order
of access or the resolution. Frame f is the scene with its recipe moved by a pure function of (scene, motion, f,
F) (:func:`frame_scene`), drawn by ProceduralArt's renderer, which uses no randomness.

Labels. ``attrs`` are the scene's attribute indices (``ATTRIBUTES`` order) except that ``position`` is -1 where
the motion carries the subject across the picture: always for shapes (several shapes have no position anyway)
and for a drifting moon. ``motion`` holds the ``MOTION_ATTRIBUTES`` indices, -1 where one does not apply.

Speed, measured in one process on one Xeon core: 0.6-0.75 s for 100 clips of 16 frames at 32 px (about 0.45 ms
a frame; a swirl frame takes about 1 ms, and a Mondrian clip is drawn once and rolled), so 20000 clips take about
2.5 minutes; ``cache_uint8(workers=...)`` spreads that over processes. Cached, 20000 such clips take 980 MB.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
from PIL import Image
import torch

from noisebrush.data.procedural import (
    ATTRIBUTES,
    FAMILIES,
    Scene,
    SceneSet,
    _MAX_RES,
    _MAX_SUPERSAMPLE,
    _MIN_RES,
    _a,
    _freeze,
    _int_param,
    _splitmix64,
    _to_uint8_chw,
    _where,
    make_scene,
    render_in_chunks,
    render_scene,
)
from noisebrush.errors import BadParameter

__all__ = [
    "MOTIONS",
    "MOTION_ATTRIBUTES",
    "ClipScene",
    "ProceduralClips",
    "decode_motion",
    "frame_condition",
    "frame_scene",
    "make_clip",
    "render_clip",
]

MOTION_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "motion": ("sliding", "bouncing", "rising", "setting", "drifting", "opening", "swaying", "pulsing", "rotating",
               "turning"),
    "direction": ("left", "right", "up", "down", "clockwise", "anticlockwise"),
    "speed": ("slowly", "quickly"),
}

MOTIONS: dict[str, tuple[str, ...]] = {
    "shapes": ("sliding", "bouncing"),
    "mondrian": ("sliding",),
    "landscape": ("rising", "setting", "drifting"),
    "flower": ("opening", "swaying"),
    "rings": ("pulsing", "rotating"),
    "swirl": ("turning",),
}

# the directions each kind can take (kinds not listed have none)
_DIRECTIONS = {
    "sliding": ("left", "right", "up", "down"),
    "drifting": ("left", "right"),
    "rotating": ("clockwise", "anticlockwise"),
    "turning": ("clockwise", "anticlockwise"),
}
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # image axes: y points down
_SPIN = {"clockwise": 1, "anticlockwise": -1}  # a growing angle turns clockwise on screen (y down)

# rates per frame, by speed (see the table in the module docstring)
_SLIDE = {"slowly": 0.012, "quickly": 0.028}          # shapes, picture widths
_BOUNCE_H, _BOUNCE_P = 0.15, {"slowly": 8, "quickly": 4}
_ROLL = {"slowly": 1 / 32, "quickly": 2 / 32}         # mondrian, picture widths, from frame 0
_SKY = {"slowly": 0.010, "quickly": 0.022}            # sun or moon, picture widths
_OPEN_FROM, _OPEN = 0.3, {"slowly": 0.045, "quickly": 0.09}
_SWAY_X, _SWAY_ANGLE = 0.05, 0.3
_PULSE = 0.15
_PERIOD = {"slowly": 16, "quickly": 8}                # sway and pulse
_ROTATE = {"slowly": 0.04, "quickly": 0.1}            # rings, radians
_TURN = {"slowly": 0.08, "quickly": 0.2}              # swirl, radians

_MOTION_SALT = 0x6D6F74696F6E  # "motion" in ASCII
_MAX_FRAMES = 256


# ----------------------------------------------------------------------------------------------------------------
# clips
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipScene:
    """What one clip shows: ProceduralArt's still ``scene`` and the ``motion`` that moves it
    ({"motion": kind, "direction": ..., "speed": ...}; no "direction" where the kind has none)."""

    scene: Scene
    motion: Mapping[str, str] = field(hash=False)
    caption: str
    attributes: Mapping[str, str] = field(hash=False)  # the picture attributes that apply, family included

    @property
    def label(self) -> int:
        return FAMILIES.index(self.scene.family)

    @property
    def family(self) -> str:
        return self.scene.family

    def motion_indices(self) -> tuple[int, ...]:
        """Index of each motion attribute's value in ``MOTION_ATTRIBUTES`` order; -1 where it does not apply."""
        return tuple(values.index(self.motion[name]) if name in self.motion else -1
                     for name, values in MOTION_ATTRIBUTES.items())

    def attr_indices(self) -> tuple[int, ...]:
        """Index of each attribute's value in ``ATTRIBUTES`` order; -1 where it does not apply."""
        return tuple(values.index(self.attributes[name]) if name in self.attributes else -1
                     for name, values in ATTRIBUTES.items())


def _motion_rng(seed: int, index: int) -> random.Random:
    # A stream of its own, so that drawing the motion leaves make_scene's draws (and so the scene) as they were.
    return random.Random(_splitmix64(_splitmix64(_splitmix64(seed & 0xFFFFFFFFFFFFFFFF) ^ index) ^ _MOTION_SALT))


def _draw_kind(rng: random.Random, scene: Scene) -> str:
    family, attrs = scene.family, scene.attributes
    if family == "shapes":
        return "sliding" if rng.random() < 0.6 else "bouncing"  # sliding has four directions to share
    if family == "landscape":
        return "drifting" if attrs["sky"] == "night" else rng.choice(("rising", "setting"))
    if family == "flower":
        return rng.choice(("opening", "swaying"))
    if family == "rings":
        return "rotating" if attrs["shape"] == "square" and rng.random() < 0.7 else "pulsing"
    return MOTIONS[family][0]  # mondrian: sliding, swirl: turning


def _phrase(motion: Mapping[str, str]) -> str:
    """"sliding left slowly", "bouncing quickly"."""
    direction = f" {motion['direction']}" if "direction" in motion else ""
    return f"{motion['motion']}{direction} {motion['speed']}"


def _caption(scene: Scene, motion: Mapping[str, str]) -> str:
    a, family, phrase = scene.attributes, scene.family, _phrase(motion)
    if family == "shapes":
        if a["count"] == "one":
            subject = f"a {a['size']} {a['colour']} {a['shape']}"
        else:
            subject = f"{a['count']} {a['size']} {a['colour']} {a['shape']}s"
        return f"{subject} {phrase} on {_a(a['colour2'])} background"
    if family == "mondrian":
        return f"{scene.caption} {phrase}"  # "a mondrian grid in red and blue" keeps its grid / painting word
    if family == "landscape":
        body = "moon" if a["sky"] == "night" else "sun"
        where = "" if motion["motion"] == "drifting" else f" {_where(a['position'])}"
        over = f"a {a['colour2']} sea" if a["ground"] == "sea" else f"{a['colour2']} {a['ground']}"
        sky = {"day": "", "sunset": " at sunset", "night": " at night"}[a["sky"]]
        return f"a {a['size']} {a['colour']} {body} {phrase}{where} over {over}{sky}"
    if family == "flower":
        return (f"a {a['size']} {a['colour']} flower with {a['count']} petals {phrase} {_where(a['position'])} "
                f"on {a['colour2']}")
    if family == "rings":
        noun = "rings" if a["shape"] == "circle" else "squares"
        where = "" if a["position"] == "centre" else f", centred on the {a['position']}"
        return f"{a['count']} concentric {a['colour']} {noun} {phrase} on {a['colour2']}{where}"
    if family == "swirl":
        arms = "arm" if a["count"] == "one" else "arms"
        return (f"a {a['size']} {a['colour']} swirl with {a['count']} {arms} {phrase} {_where(a['position'])} "
                f"of a {a['colour2']} starry sky")
    raise AssertionError(f"unknown family {family!r}")


def _visible_directions(scene: Scene, kind: str) -> tuple[str, ...]:
    """The directions a motion can take where it shows. A Mondrian grid cut only one way (all columns or all rows,
    a few in a hundred) looks the same rolled along its cells, so it slides only across them."""
    if scene.family != "mondrian":
        return _DIRECTIONS[kind]
    rects = [rect for rect, _ in dict(scene.params)["rects"]]
    columns_only = all(y0 == 0 and y1 == 1 for _, y0, _, y1 in rects)
    rows_only = all(x0 == 0 and x1 == 1 for x0, _, x1, _ in rects)
    return tuple(d for d in _DIRECTIONS[kind]
                 if not (columns_only and d in ("up", "down")) and not (rows_only and d in ("left", "right")))


def _drops_position(scene: Scene, kind: str) -> bool:
    """Whether the motion carries the subject across the picture, so that no one position describes the clip."""
    return scene.family == "shapes" or kind == "drifting"


def make_clip(seed: int, index: int) -> ClipScene:
    """The clip of item ``index`` in the clip set with this ``seed``: ``make_scene(seed, index)`` plus a motion."""
    scene = make_scene(seed, index)
    rng = _motion_rng(seed, index)
    kind = _draw_kind(rng, scene)
    motion = {"motion": kind}
    if kind in _DIRECTIONS:
        motion["direction"] = rng.choice(_visible_directions(scene, kind))
    motion["speed"] = rng.choice(MOTION_ATTRIBUTES["speed"])
    attributes = {k: v for k, v in scene.attributes.items() if not (k == "position" and _drops_position(scene, kind))}
    return ClipScene(scene, motion, _caption(scene, motion), attributes)


# ----------------------------------------------------------------------------------------------------------------
# frames (no randomness below this line)
# ----------------------------------------------------------------------------------------------------------------


def _moved(p: dict, family: str, motion: Mapping[str, str], f: int, frames: int) -> dict:
    """The drawing recipe ``p`` at frame f of a ``frames``-frame clip (a new dict; ``p`` is left alone)."""
    kind, speed, direction = motion["motion"], motion["speed"], motion.get("direction")
    t = f - (frames - 1) / 2  # frames from the middle of the clip, for the centred motions
    p = dict(p)
    if family == "shapes":
        if kind == "sliding":
            sx, sy = _STEP[direction]
            dx, dy = sx * _SLIDE[speed] * t, sy * _SLIDE[speed] * t
        else:  # bouncing: from half a bounce below, up to half a bounce above, and back down, every P frames
            dx, dy = 0.0, _BOUNCE_H / 2 - _BOUNCE_H * abs(math.sin(math.pi * f / _BOUNCE_P[speed]))
        p["objects"] = [(x + dx, y + dy, r, a) for x, y, r, a in p["objects"]]
    elif family == "landscape":
        x, y, r = p["sun"]
        move = _SKY[speed] * t
        if kind == "rising":
            y -= move
        elif kind == "setting":
            y += move
        else:  # drifting
            x += _STEP[direction][0] * move
        p["sun"] = (x, y, r)
    elif family == "flower":
        if kind == "opening":
            p["r"] = p["r"] * min(1.0, _OPEN_FROM + _OPEN[speed] * f)
        else:  # swaying: the head goes side to side and the petals rock with it
            wave = math.sin(2 * math.pi * f / _PERIOD[speed])
            (x, y), lean = p["centre"], p["lean"]
            dx = _SWAY_X * wave
            p["centre"] = (x + dx, y)
            p["angle"] = p["angle"] + _SWAY_ANGLE * wave
            # The renderer draws the stem from the head to (head x + lean, below the picture), and bends it and
            # puts the leaf by the sign of lean: lean - dx keeps the stem's foot in place, as far as it can
            # without changing that sign (which would flip the leaf to the other side).
            p["lean"] = max(lean - dx, 1e-6) if lean > 0 else min(lean - dx, 0.0)
    elif family == "rings":
        if kind == "pulsing":
            k = 1 + _PULSE * math.sin(2 * math.pi * f / _PERIOD[speed])
            p["radii"] = [r * k for r in p["radii"]]
        else:  # rotating
            p["angle"] = p["angle"] + _SPIN[direction] * _ROTATE[speed] * t
    elif family == "swirl":
        p["angle"] = p["angle"] + _SPIN[direction] * _TURN[speed] * t
    return p


def _frames_param(frames) -> int:
    return _int_param("frames", frames, 1, _MAX_FRAMES)


def frame_scene(clip: ClipScene, f: int, frames: int) -> Scene:
    """The still scene of frame ``f`` (0-based) of the ``frames``-frame clip: ``clip.scene`` with its recipe moved
    (caption and attributes stay the still's). A Mondrian slide moves the rendered pixels instead (a wrap-around
    roll, see :func:`render_clip`), so for the mondrian family this is ``clip.scene`` for every frame."""
    frames = _frames_param(frames)
    f = _int_param("f", f, 0, frames - 1)
    scene = clip.scene
    if scene.family == "mondrian":
        return scene
    p = _moved(dict(scene.params), scene.family, clip.motion, f, frames)
    return replace(scene, params=_freeze(sorted(p.items())))


def _roll_shift(speed: str, f: int, resolution: int) -> int:
    """Pixels the Mondrian frame f has moved: rate * f * resolution, rounded half up."""
    return math.floor(_ROLL[speed] * f * resolution + 0.5)


def render_clip(clip: ClipScene, resolution: int, frames: int = 16, supersample: int = 4) -> list[Image.Image]:
    """The clip's ``frames`` frames as RGB pictures, ``resolution`` x ``resolution`` each. Frame f is
    ``render_scene(frame_scene(clip, f, frames), ...)``; for the mondrian family it is the picture rolled round
    (wrapping) by a whole number of pixels, so at resolutions below 32 a slow slide moves in uneven steps."""
    resolution = _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
    frames = _frames_param(frames)
    supersample = _int_param("supersample", supersample, 1, _MAX_SUPERSAMPLE)
    scene = clip.scene
    if scene.family == "mondrian":
        still = np.asarray(render_scene(scene, resolution, supersample))
        step = _STEP[clip.motion["direction"]]
        axis = 1 if step[0] else 0  # rows are axis 0 (y), columns axis 1 (x)
        sign = step[0] or step[1]
        return [Image.fromarray(np.roll(still, sign * _roll_shift(clip.motion["speed"], f, resolution), axis=axis))
                for f in range(frames)]
    out: list[Image.Image] = []
    drawn: dict[tuple, Image.Image] = {}  # frames with equal recipes (an opened flower, a pulse's period) drawn once
    for f in range(frames):
        moved = frame_scene(clip, f, frames)
        if moved.params in drawn:
            out.append(drawn[moved.params].copy())
        else:
            drawn[moved.params] = img = render_scene(moved, resolution, supersample)
            out.append(img)
    return out


def decode_motion(indices) -> dict[str, str]:
    """Motion indices (a tensor or sequence in ``MOTION_ATTRIBUTES`` order) → {name: value} for those that apply."""
    values = indices.tolist() if hasattr(indices, "tolist") else list(indices)
    if len(values) != len(MOTION_ATTRIBUTES):
        raise BadParameter(f"motion indices must have {len(MOTION_ATTRIBUTES)} entries, got {len(values)}")
    return {name: names[v] for (name, names), v in zip(MOTION_ATTRIBUTES.items(), values) if v >= 0}


def _clip_uint8(clip: ClipScene, resolution: int, frames: int, supersample: int) -> np.ndarray:
    """3 x T x H x W uint8."""
    return np.stack([_to_uint8_chw(img) for img in render_clip(clip, resolution, frames, supersample)], axis=1)


def _render_clip_range(seed: int, resolution: int, frames: int, supersample: int, start: int,
                       stop: int) -> np.ndarray:
    """Clips start..stop-1 as uint8 N x 3 x T x H x W (a top-level function so worker processes can run it)."""
    out = np.empty((stop - start, 3, frames, resolution, resolution), dtype=np.uint8)
    for k, i in enumerate(range(start, stop)):
        out[k] = _clip_uint8(make_clip(seed, i), resolution, frames, supersample)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the data set
# ----------------------------------------------------------------------------------------------------------------


class ProceduralClips(SceneSet):
    """``size`` captioned clips of ``frames`` frames; clip i depends only on (seed, i), and its still scene is
    ProceduralArt's item i of the same seed.

    ``resolution``: side in pixels (8..1024). ``frames``: frames per clip (1..256). ``supersample``: drawing
    scale before the box filter (1..8). Clips are rendered on demand; ``cache_uint8`` renders many at once.
    """

    def __init__(self, resolution: int = 32, frames: int = 16, size: int = 20000, seed: int = 0,
                 supersample: int = 4):
        super().__init__(resolution, size, seed, supersample)
        self.frames = _frames_param(frames)

    def __repr__(self) -> str:
        return (f"ProceduralClips(resolution={self.resolution}, frames={self.frames}, size={self.size}, "
                f"seed={self.seed}, supersample={self.supersample})")

    def clip(self, i: int) -> ClipScene:
        return make_clip(self.seed, self._index(i))

    def caption(self, i: int) -> str:
        return self.clip(i).caption


    def render(self, i: int, resolution: int | None = None, frames: int | None = None) -> list[Image.Image]:
        """Clip i as RGB pictures, at this data set's resolution and length or others (same clip and motion)."""
        res = self.resolution if resolution is None else _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
        n = self.frames if frames is None else _frames_param(frames)
        return render_clip(self.clip(i), res, n, self.supersample)

    def clip_uint8(self, i: int) -> torch.Tensor:
        """Clip i as a uint8 tensor 3 x T x H x W (0..255)."""
        return torch.from_numpy(_clip_uint8(self.clip(i), self.resolution, self.frames, self.supersample))

    def __getitem__(self, i) -> dict:
        i = self._index(i)
        clip = make_clip(self.seed, i)
        x = torch.from_numpy(_clip_uint8(clip, self.resolution, self.frames, self.supersample))
        return {"clip": x.float().div_(127.5).sub_(1.0), "caption": clip.caption, "label": clip.label,
                "attrs": torch.tensor(clip.attr_indices(), dtype=torch.long),
                "motion": torch.tensor(clip.motion_indices(), dtype=torch.long), "index": i}

    def cache_uint8(self, n: int | None = None, progress: Callable[[int, int], None] | None = None,
                    workers: int = 1, chunk: int = 64) -> torch.Tensor:
        """Clips 0..n-1 (all by default) as a uint8 tensor N x 3 x T x H x W (x / 127.5 - 1 gives the float
        clips). ``progress(done, total)`` is called after each chunk; ``workers`` > 1 renders in that many spawned
        processes (the result is identical, since each clip depends only on (seed, i)); as with any spawn pool, a
        script that uses them needs the ``if __name__ == "__main__":`` guard."""
        n = self.size if n is None else _int_param("n", n, 0, self.size)
        workers = _int_param("workers", workers, 1)
        chunk = _int_param("chunk", chunk, 1)
        out = torch.empty((n, 3, self.frames, self.resolution, self.resolution), dtype=torch.uint8)
        return render_in_chunks(out, _render_clip_range, (self.seed, self.resolution, self.frames, self.supersample),
                                chunk, workers, progress)


def frame_condition(clips: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """The frame condition of a clip network (``cond_channels`` = C + 1): the given frames of ``clips``
    (N×C×T×H×W, zeros where a frame is not given) and a 0/1 mask channel, N×(C+1)×T×H×W. ``given``: a bool (N, T)
    (or (T,) for every clip) of the frames given. Training (:mod:`noisebrush.train.video`) and painting
    (:mod:`noisebrush.paint.animate`) build it here, the one place."""
    n, _, t = clips.shape[:3]
    m = torch.as_tensor(given, dtype=torch.bool, device=clips.device).reshape(-1, t).expand(n, t)
    m = m.to(clips.dtype)[:, None, :, None, None]
    return torch.cat([clips * m, m.expand(n, 1, *clips.shape[2:])], dim=1)

"""The clip judge: a small space-time CNN trained to read ProceduralClips' attributes and motion from a clip.

It is to clips what :mod:`noisebrush.eval.features` is to pictures: a fixed embedding in which the Fréchet distance
of two clip sets is computed (:func:`noisebrush.eval.clips.clip_frechet`), and one classification head per
attribute, picture attributes (:data:`noisebrush.data.procedural.ATTRIBUTES`) and motion ones
(:data:`noisebrush.data.clips.MOTION_ATTRIBUTES`: motion kind, direction, speed) alike, with which motion
adherence compares a clip with what its prompt says. It is trained by a committed command on the built-in clip set
(``python -m noisebrush.eval.train_clip_features``) and ships inside the package (``noisebrush/eval/clipnet``:
config.json + model.safetensors).

    from noisebrush.eval.clip_features import load_clip_features
    cnet = load_clip_features()
    f = cnet.features(clips)           # N × dim, float64; clips N×3×T×H×W in [-1, 1], any T ≥ 2, any H × W
    attrs = cnet.predict(clips)        # {"family": LongTensor N, ..., "motion": ..., "direction": ..., "speed": ...}

Clips of another spatial size are resized frame by frame to the network's resolution (32 × 32) with an area filter
(bilinear when enlarging), as the picture judge does. Any number of frames from 2 up is read; the net was trained
on 16-frame clips, whose frame rate sets what "slowly" and "quickly" mean.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from noisebrush.data.clips import MOTION_ATTRIBUTES
from noisebrush.data.procedural import ATTRIBUTES
from noisebrush.errors import UserError
from noisebrush.eval.features import head_log_probs, one_line, read_judge, write_judge

__all__ = ["ClipFeatureNet", "CLIPNET_DIR", "CLIPNET_FORMAT", "default_heads", "load_clip_features",
           "read_clip_features", "save_clip_features"]

CLIPNET_DIR = Path(__file__).parent / "clipnet"
CLIPNET_FORMAT = "noisebrush.clipnet/1"
_EPS = 1e-3  # keeps the contrast-normalised flow finite where a projection has no edges


def default_heads() -> dict[str, int]:
    """{attribute name: number of values} of every picture and motion attribute, in that order."""
    return {k: len(v) for k, v in {**ATTRIBUTES, **MOTION_ATTRIBUTES}.items()}


def _spatial(cin: int, cout: int) -> nn.Sequential:
    """A 3×3 convolution on every frame, BatchNorm, ReLU: FeatureNet's ``_block``, as a 1×3×3 Conv3d."""
    return nn.Sequential(nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1), bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


class _Temporal(nn.Module):
    """x + gain · ReLU(BN(3-tap temporal convolution of x)), one gain per channel, starting at 0: a new unit lets
    the frame features it is given through unchanged, and training opens it as far as it helps."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(c)
        self.gain = nn.Parameter(torch.zeros(c, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gain * F.relu(self.bn(self.conv(x)))


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, pool: bool, temporal: bool = True):
        super().__init__()
        self.pool = nn.MaxPool3d((1, 2, 2)) if pool else nn.Identity()
        self.a, self.b = _spatial(cin, cout), _spatial(cout, cout)
        self.ta, self.tb = (_Temporal(cout), _Temporal(cout)) if temporal else (nn.Identity(), nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tb(self.b(self.ta(self.a(self.pool(x)))))


class ClipFeatureNet(nn.Module):
    """The picture judge's first stages, inflated to clips, then a summary of what is there and how it moves.

    Trunk: stages of (2+1)-D blocks with ``widths`` channels (32, 64, 128), max-pooling space 2× between stages
    (32 → 8 px for three) and never time. A stage is two of FeatureNet's spatial blocks (a 3×3 convolution on
    every frame, BatchNorm, ReLU), each followed by a temporal unit (a 3-tap convolution across frames, BatchNorm,
    ReLU, added back through per-channel gains that start at 0). The spatial blocks are laid out as FeatureNet's
    first stages, so :meth:`init_from_pictures` can start them from the shipped picture judge's weights. The
    temporal convolutions are not symmetric in time, so the trunk sees which way things move.

    Summary, concatenated and normalised (BatchNorm), of the last stage's map h (C × T × 8 × 8) and of the last two
    stages' maps (16 and 8 px) for the flow:

    * *content*: h averaged over space and time (C);
    * *change*: the frame-to-frame change of the space-averaged h, |g(t+1) − g(t)|, averaged over the first half
      of the clip and over the second half (2C): how much things change, and when (a quick flower is open by the
      middle of the clip, a slow one opens all through it);
    * *flow*: the normal flow of ``flow`` learned projections of each map (:meth:`_flow`): which way things go,
      which way they turn, whether they grow, and how fast (8 numbers per projection and map).

    Temporal averages make content and change blind to the order of frames; the flow is not: a clip played
    backwards gives the opposite flow. A hidden layer of ``dim`` units (Linear + ReLU) then gives the clip feature
    (:meth:`features`), and one linear head per attribute reads it.

    ``top`` (none in the shipped net) adds picture-only stages after the moving ones, FeatureNet's next stages
    (``top=(256,)``: its fourth, copied by :meth:`init_from_pictures` too); *content* is then read from the last
    of them, at 4 × 4, while change and flow stay on the moving stages."""

    def __init__(self, heads: dict[str, int] | None = None, widths=(32, 64, 128), dim: int = 192,
                 resolution: int = 32, flow: int = 32, top=()):
        super().__init__()
        self.heads_spec = dict(default_heads() if heads is None else heads)
        self.widths = tuple(int(w) for w in widths)
        self.top_widths = tuple(int(w) for w in top)
        self.dim = int(dim)
        self.resolution = int(resolution)
        stages, cin = [], 3
        for i, w in enumerate(self.widths):
            stages.append(_Stage(cin, w, pool=i > 0))
            cin = w
        self.body = nn.Sequential(*stages)
        moving = cin
        top_stages = []
        for w in self.top_widths:
            top_stages.append(_Stage(cin, w, pool=True, temporal=False))
            cin = w
        self.top = nn.Sequential(*top_stages)
        self.flow_width = int(flow)
        self.flow = nn.ModuleList(nn.Conv3d(w, self.flow_width, 1) for w in self.widths[-2:])
        width = cin + 2 * moving + 8 * self.flow_width * len(self.flow)
        self.hidden = nn.Sequential(nn.BatchNorm1d(width), nn.Linear(width, self.dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({k: nn.Linear(self.dim, n) for k, n in self.heads_spec.items()})

    def config(self) -> dict:
        return {"format": CLIPNET_FORMAT, "heads": self.heads_spec, "widths": list(self.widths), "dim": self.dim,
                "resolution": self.resolution, "flow": self.flow_width, "top": list(self.top_widths)}

    @torch.no_grad()
    def init_from_pictures(self, fnet) -> "ClipFeatureNet":
        """Copy a 32 px :class:`~noisebrush.eval.features.FeatureNet`'s first ``len(widths)`` stages (its widths
        must start with these) into the spatial blocks: an untrained clip net then sees every frame as the picture
        judge does, and training starts from there. Returns self."""
        mine = self.widths + self.top_widths
        if fnet.stem_widths or tuple(fnet.widths[:len(mine)]) != mine:
            raise ValueError(f"clip feature net: a picture net with widths {fnet.widths} and stem "
                             f"{fnet.stem_widths} does not start as {mine}")
        blocks = [m for m in fnet.body if isinstance(m, nn.Sequential)]
        mine = [b for stage in (*self.body, *self.top) for b in (stage.a, stage.b)]
        for src, dst in zip(blocks, mine):
            dst[0].weight.copy_(src[0].weight[:, :, None])
            dst[1].load_state_dict(src[1].state_dict())
        return self

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3 or x.shape[2] < 2:
            raise ValueError(f"clip feature net: expected N×3×T×H×W clips with T ≥ 2, got shape {tuple(x.shape)}")
        x = x.float()
        r = self.resolution
        if x.shape[-2:] != (r, r):
            n, c, t, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
            frames = F.interpolate(frames, size=(r, r), mode="area" if w >= r else "bilinear", align_corners=None)
            x = frames.reshape(n, t, c, r, r).permute(0, 2, 1, 3, 4)
        return x.clamp(-1, 1)

    def summary(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Every stage's map (N × C × T × h × w, float32) → content, change and flow (see the class)."""
        content = maps[-1].mean((2, 3, 4))
        maps = maps[:len(self.widths)]
        h = maps[-1]
        g = h.mean((3, 4))
        step = (g[:, :, 1:] - g[:, :, :-1]).abs()  # N × C × (T − 1)
        half = max(step.shape[2] // 2, 1)
        change = torch.cat([step[:, :, :half].mean(2), step[:, :, -half:].mean(2)], 1)
        flows = [self._flow(proj(m).float()) for proj, m in zip(self.flow, maps[-len(self.flow):])]
        return torch.cat([content, change, *flows], 1)

    @staticmethod
    def _flow(p: torch.Tensor) -> torch.Tensor:
        """The normal flow of maps p (N × F × T × h × w): p_t ∂p/∂x and p_t ∂p/∂y, with p_t the change to the
        next frame, point against the motion across every edge (the brightness-constancy equation, as in
        Lucas-Kanade), scaled by the edge's contrast. Per channel: their means (which way things go), their curl
        and divergence about the picture's centre, in coordinates from -1 to 1 (which way things turn, whether
        they grow), and the same four divided by the mean squared gradient (the contrast), which leaves a speed:
        4 + 4 numbers. Played backwards, a clip gives exactly the opposite numbers."""
        dt = p[:, :, 1:] - p[:, :, :-1]
        mid = (p[:, :, 1:] + p[:, :, :-1]) / 2
        gx, gy = torch.gradient(mid, dim=4)[0], torch.gradient(mid, dim=3)[0]
        fx, fy = (dt * gx).mean(2), (dt * gy).mean(2)  # N × F × h × w
        x = torch.linspace(-1, 1, p.shape[-1], dtype=p.dtype, device=p.device)
        y = torch.linspace(-1, 1, p.shape[-2], dtype=p.dtype, device=p.device)[:, None]
        raw = torch.stack([fx.mean((2, 3)), fy.mean((2, 3)), (x * fy - y * fx).mean((2, 3)),
                           (x * fx + y * fy).mean((2, 3))], 2)  # N × F × 4
        energy = (gx.square() + gy.square()).mean((2, 3, 4))[:, :, None]
        return torch.cat([raw.flatten(1), (raw / (energy + _EPS)).flatten(1)], 1)

    def trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output map (the moving stages', then the top's), float32 (x already prepared)."""
        maps = []
        for stage in (*self.body, *self.top):
            x = stage(x)
            maps.append(x.float())
        return maps

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The clip feature, N × dim (differentiable; x already prepared). The summary is computed in float32,
        even under autocast."""
        return self.hidden(self.summary(self.trunk(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f = self.embed(self._prepare(x))
        return f, {k: h(f) for k, h in self.heads.items()}

    @torch.no_grad()
    def _batched(self, clips: torch.Tensor, batch: int):
        self.eval()
        for i in range(0, clips.shape[0], batch):
            yield self(clips[i:i + batch].cpu())

    def features_and_predictions(self, clips: torch.Tensor, batch: int = 64):
        """(N × dim float64 features, {name: LongTensor N}) in one pass."""
        feats, preds = [], {k: [] for k in self.heads_spec}
        for f, logits in self._batched(clips, batch):
            feats.append(f.double())
            for k, v in logits.items():
                preds[k].append(v.argmax(1))
        if not feats:
            return torch.zeros(0, self.dim, dtype=torch.float64), {k: torch.zeros(0, dtype=torch.long)
                                                                    for k in self.heads_spec}
        return torch.cat(feats), {k: torch.cat(v) for k, v in preds.items()}

    def features(self, clips: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """N × dim features (float64) of clips in [-1, 1]."""
        return self.features_and_predictions(clips, batch)[0]

    def predict(self, clips: torch.Tensor, batch: int = 64) -> dict[str, torch.Tensor]:
        """The most likely value index of each attribute (``ATTRIBUTES`` then ``MOTION_ATTRIBUTES`` order)."""
        return self.features_and_predictions(clips, batch)[1]

    def log_probs(self, clips: torch.Tensor, batch: int = 64) -> dict[str, torch.Tensor]:
        """{attribute: N × values} log-probabilities (float32), per clip: what :meth:`predict` takes the argmax of."""
        return head_log_probs(self._batched(clips, batch), self.heads_spec)


def save_clip_features(net: ClipFeatureNet, path, info: dict | None = None) -> Path:
    """Write config.json (the net's config plus ``info``) and model.safetensors (float32) into the folder ``path``,
    each atomically."""
    return write_judge(path, net, {**net.config(), **(info or {})}, torch.float32)


def read_clip_features(path) -> ClipFeatureNet:
    """The clip feature net in the folder ``path`` (uncached), in eval mode; a one-line UserError if unreadable."""
    conf, state = read_judge(path, CLIPNET_FORMAT, "clip feature network")
    try:
        net = ClipFeatureNet(conf["heads"], conf["widths"], conf["dim"], conf["resolution"], conf["flow"],
                             conf["top"])
        net.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: clip feature network does not match its config ({one_line(e)})") from None
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def load_clip_features(path: str | None = None) -> ClipFeatureNet:
    """The shipped clip feature network (or the one in the folder ``path``), in eval mode, cached."""
    p = Path(path) if path else CLIPNET_DIR
    if not (p / "model.safetensors").is_file():
        raise UserError(f"{p}: no clip feature network here (train one: python -m "
                        "noisebrush.eval.train_clip_features)")
    return read_clip_features(p)

"""The domain feature network: a small CNN trained to read ProceduralArt's attributes from a picture.

No Inception weights can be downloaded here, so the Fréchet distance, KID and precision/recall of
:mod:`noisebrush.eval.metrics` are computed in the feature space of this network instead (``fd_art``). It is trained
by a committed command on the built-in data set (``python -m noisebrush.eval.train_features``) and ships inside the
package (``noisebrush/eval/featnet``: config.json + model.safetensors, under 5 MB). A second one reads 128 px
pictures (``FEATNET128_DIR``, trained with ``--resolution 128``), so the metrics can judge a super-resolution
cascade's 128 px paintings by their detail: ``load_feature_net(str(FEATNET128_DIR))``. The heads predict every
attribute of :data:`noisebrush.data.procedural.ATTRIBUTES`; prompt adherence compares them with a caption's.

    from noisebrush.eval.features import load_feature_net
    fnet = load_feature_net()
    f = fnet.features(images)          # N × 256, float64; images N×3×H×W in [-1, 1] (any size, resized to 32)
    attrs = fnet.predict(images)       # {"family": LongTensor N, "colour": ..., ...}

Pictures of another size are resized to the network's resolution (32×32 for the shipped one) with an area filter
(bilinear when enlarging), so the same network serves any model; for pictures that are not ProceduralArt it is
still a fixed, deterministic embedding (useful to compare two sets, without the meaning an ImageNet network would
give).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn
import torch.nn.functional as F

from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_path, atomic_write_text

__all__ = ["FeatureNet", "load_feature_net", "FEATNET_DIR", "FEATNET128_DIR", "FEATNET_FORMAT", "default_stem"]

FEATNET_DIR = Path(__file__).parent / "featnet"
FEATNET128_DIR = Path(__file__).parent / "featnet128"
FEATNET_FORMAT = "noisebrush.featnet/1"


_TRUNK_RES = 32  # the resolution the four stages run at
_STEM_WIDTHS = (16, 24, 32, 48)  # channels of the 1st, 2nd, ... stride-2 stem stage


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def default_stem(resolution: int) -> list[int]:
    """Channels of the stride-2 stem stages for a ``resolution`` px net: one per halving that keeps the trunk at
    ≥ 32 px (none at 32, [16] at 64, [16, 24] at 128), so the trunk runs at 32 × 32 whatever the input."""
    k, r = 0, int(resolution)
    while r >= 2 * _TRUNK_RES and k < len(_STEM_WIDTHS):
        r //= 2
        k += 1
    return list(_STEM_WIDTHS[:k])


class FeatureNet(nn.Module):
    """Four stages of two 3×3 convolutions (32, 64, 128, 256 channels) with max-pooling between them, global average
    pooling to a ``width``-d feature, and one linear head per attribute.

    Above 32 px a stem of stride-2 stages (3×3 convolution with stride 2, BatchNorm, ReLU; ``stem`` lists their
    channels, :func:`default_stem` by default: [16, 24] at 128 px) first brings the picture down to 32 × 32 while
    it keeps the detail a plain resize would average away; the four stages then cost what they cost at 32 px.
    A net without a stem (``stem=[]``, every 32 px net) has exactly the state-dict keys it always had."""

    def __init__(self, heads: dict[str, int], widths=(32, 64, 128, 256), resolution: int = 32, stem=None):
        super().__init__()
        self.heads_spec = dict(heads)
        self.widths = tuple(widths)
        self.resolution = int(resolution)
        self.stem_widths = tuple(int(c) for c in (default_stem(self.resolution) if stem is None else stem))
        stem_layers, cin = [], 3
        for c in self.stem_widths:
            stem_layers.append(_block(cin, c, stride=2))
            cin = c
        self.stem = nn.Sequential(*stem_layers)  # empty (no parameters, no keys) at 32 px
        layers = []
        for i, w in enumerate(self.widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [_block(cin, w), _block(w, w)]
            cin = w
        self.body = nn.Sequential(*layers)
        self.dim = cin
        self.heads = nn.ModuleDict({k: nn.Linear(cin, n) for k, n in self.heads_spec.items()})

    def config(self) -> dict:
        return {"format": FEATNET_FORMAT, "heads": self.heads_spec, "widths": list(self.widths),
                "resolution": self.resolution, "stem": list(self.stem_widths)}

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"feature net: expected N×3×H×W pictures, got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="area" if
                              x.shape[-1] >= self.resolution else "bilinear", align_corners=None)
        return x.clamp(-1, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature (differentiable; x already prepared)."""
        return self.body(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f = self.embed(self._prepare(x))
        return f, {k: h(f) for k, h in self.heads.items()}

    @torch.no_grad()
    def _batched(self, images: torch.Tensor, batch: int):
        self.eval()
        for i in range(0, images.shape[0], batch):
            yield self(images[i:i + batch].cpu())

    def features(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """N × dim features (float64) of pictures in [-1, 1]."""
        out = [f.double() for f, _ in self._batched(images, batch)]
        return torch.cat(out) if out else torch.zeros(0, self.dim, dtype=torch.float64)

    def features_and_predictions(self, images: torch.Tensor, batch: int = 256):
        feats, preds = [], {k: [] for k in self.heads_spec}
        for f, logits in self._batched(images, batch):
            feats.append(f.double())
            for k, v in logits.items():
                preds[k].append(v.argmax(1))
        if not feats:
            return torch.zeros(0, self.dim, dtype=torch.float64), {k: torch.zeros(0, dtype=torch.long)
                                                                    for k in self.heads_spec}
        return torch.cat(feats), {k: torch.cat(v) for k, v in preds.items()}

    def predict(self, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        """The most likely value index of each attribute (ATTRIBUTES order), per picture."""
        return self.features_and_predictions(images, batch)[1]

    def log_probs(self, images: torch.Tensor, batch: int = 256) -> dict[str, torch.Tensor]:
        """{attribute: N × values} log-probabilities (float32), per picture: what :meth:`predict` takes the argmax
        of, for judges that combine several readings."""
        return head_log_probs(self._batched(images, batch), self.heads_spec)


def head_log_probs(batches, heads: dict[str, int]) -> dict[str, torch.Tensor]:
    """{attribute: N × values} float32 log-probabilities from a judge's (feature, {attribute: logits}) batches."""
    out = {k: [] for k in heads}
    for _, logits in batches:
        for k, v in logits.items():
            out[k].append(v.float().log_softmax(1))
    return {k: torch.cat(v) if v else torch.zeros(0, heads[k]) for k, v in out.items()}


def write_judge(path, net: nn.Module, config: dict, dtype: torch.dtype) -> Path:
    """Write a judge's folder ``path``: model.safetensors (the net's floating weights in ``dtype``) and config.json
    (``config``), each atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v).contiguous()
             for k, v in net.state_dict().items()}
    with atomic_path(path / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_text(path / "config.json", json.dumps(config, indent=2))
    return path


def read_judge(path, fmt: str, what: str) -> tuple[dict, dict]:
    """(config, weights) of the judge folder ``path`` that :func:`write_judge` wrote, whose config says format
    ``fmt``; a one-line UserError naming ``what`` and the folder when it cannot be read or is another format."""
    path = Path(path)
    try:
        conf = json.loads((path / "config.json").read_text())
        state = load_file(str(path / "model.safetensors"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as e:
        raise UserError(f"{path}: unreadable {what} ({one_line(e)})") from None
    if not isinstance(conf, dict) or conf.get("format") != fmt:
        found = conf.get("format") if isinstance(conf, dict) else None
        raise UserError(f"{path}: {what} format {found!r}, expected {fmt!r}")
    return conf, state


def one_line(e: Exception) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def save_feature_net(net: FeatureNet, path, meta: dict | None = None) -> Path:
    """Write config.json + model.safetensors (float16: the shipped copy stays small) atomically."""
    return write_judge(path, net, {**net.config(), **(meta or {})}, torch.float16)


def read_feature_net(path) -> FeatureNet:
    """The feature net in the folder ``path`` (uncached), in eval mode; a one-line UserError if unreadable."""
    conf, state = read_judge(path, FEATNET_FORMAT, "feature network")
    # a config without "stem" (every net saved before stems existed) has none, whatever its resolution
    net = FeatureNet(conf["heads"], conf["widths"], conf["resolution"], stem=conf.get("stem", []))
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def load_feature_net(path: str | None = None) -> FeatureNet:
    """The shipped feature network (or the one in ``path``), in eval mode, cached."""
    p = Path(path) if path else FEATNET_DIR
    if not (p / "model.safetensors").is_file():
        raise UserError(f"{p}: no feature network here (train one: python -m noisebrush.eval.train_features)")
    return read_feature_net(p)

"""The shape objective (issue 17): text-conditioned EDM on ProceduralShapes' signed-distance grids through the
same trainer — a tiny run trains, previews as shaded views, exports a volume model and resumes bit for bit; a
sample's grid and caption are functions of (seed, sample); settings that do not fit a shape model are refused."""
import json

import pytest
import torch

from noisebrush.data.shapes import ProceduralShapes
from noisebrush.errors import BadParameter
from noisebrush.paint.modality import modality_for
from noisebrush.train import Trainer
from noisebrush.train.shape import PREVIEW_SIZE, ShapeObjective

from tests.train.test_video import _Text  # a stub text encoder (the real one loads a model)

NET = dict(dims=3, patch=2, cross_attn_resolutions=[4], attn_resolutions=[4])
SHAPE = dict(task="shape", condition="text", data_size=16, batch_size=4, model=NET)


def _trainer(make_config, name="run", **kw):
    return Trainer(make_config(name, **{**SHAPE, **kw}), objective=ShapeObjective(text_encoder=_Text()))


def test_a_tiny_shape_run_trains_previews_and_exports_a_volume_model(make_config):
    tr = _trainer(make_config, steps=2)
    path = tr.fit()
    conf = json.loads((path / "config.json").read_text())
    assert conf["task"] == "shape" and conf["shape"]["truncation"] == 0.2 and conf["condition"] == "text"
    assert conf["unet"]["dims"] == 3 and conf["unet"]["in_channels"] == 1 and conf["unet"]["patch"] == 2
    m = modality_for(conf)
    assert m.kind == "volume" and m.default == (16, 16, 16)
    views = tr.sample(n=2, steps=2)
    assert views.shape == (2, 3, PREVIEW_SIZE, PREVIEW_SIZE) and views.min() >= -1 and views.max() <= 1


def test_the_batch_is_the_shapes_grids_and_captions(make_config):
    tr = _trainer(make_config)
    batch = tr.objective.batch(range(4))
    ds = ProceduralShapes(resolution=16, size=16, seed=0)
    assert batch["x0"].shape == (4, 1, 16, 16, 16)
    for j, k in enumerate(range(4)):
        index, _ = tr.objective.stream.item(k)
        assert torch.equal(batch["x0"][j, 0], torch.from_numpy(ds.grid(index)))
        assert batch["captions"][j] == ds.caption(index)
    again = _trainer(make_config, "again").objective.batch(range(2, 4))
    assert torch.equal(again["x0"], batch["x0"][2:]) and torch.equal(again["noise"], batch["noise"][2:])


def test_a_shape_run_resumes_bit_identically(make_config):
    kw = dict(steps=4, checkpoint_every=2, log_every=1, keep_last=4, lr_schedule="cosine", warmup=1)
    ref = _trainer(make_config, "ref", **kw)
    ref.fit()

    def crash(step, row):
        if step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _trainer(make_config, "run", **kw).fit(crash)
    tr = Trainer(make_config("run", **{**SHAPE, **kw}), resume=True, objective=ShapeObjective(text_encoder=_Text()))
    assert tr.step == 2
    tr.fit()
    for k, v in ref.net.state_dict().items():
        assert torch.equal(tr.net.state_dict()[k], v), k
    for k, v in ref.ema.state_dict().items():
        assert torch.equal(tr.ema.state_dict()[k], v), k


@pytest.mark.parametrize("kw,match", [
    (dict(data="/some/folder"), "built-in shapes"), (dict(condition="label"), "text-conditioned"),
    (dict(model=dict(dims=3, factorized=True)), "volumetric"), (dict(captions="family"), "captions"),
])
def test_shape_settings_are_checked(make_config, kw, match):
    with pytest.raises(BadParameter, match=match):
        make_config(**{**SHAPE, **kw})

"""Progressive (coarse-to-fine) training: TrainConfig.progressive and the objective's batches."""
import pytest
import torch

from noisebrush.data.superres import downsample
from noisebrush.errors import BadParameter
from noisebrush.train import Trainer

PROG = dict(resolution=32, steps=10, batch_size=4, progressive=[0.3, 0.6])


def test_the_resolution_doubles_at_the_fractions(make_config):
    cfg = make_config(**PROG)
    assert [cfg.resolution_at(s) for s in range(10)] == [8, 8, 8, 16, 16, 16, 32, 32, 32, 32]
    assert cfg.resolution_at(3, plan=20) == 8  # a resumed run keeps its plan
    assert make_config(resolution=32).resolution_at(0) == 32


@pytest.mark.parametrize("bad, match", [
    (dict(progressive=[0.6, 0.3]), "increasing"),
    (dict(progressive=[0.0, 0.5]), "increasing"),
    (dict(progressive=[0.5, 0.5]), "increasing"),
    (dict(resolution=16, progressive=[0.2, 0.4, 0.6]), "doublings"),
    (dict(task="sr", progressive=[0.5]), "picture models"),
])
def test_bad_progressive_settings_are_one_line(make_config, bad, match):
    with pytest.raises(BadParameter, match=f"progressive: .*{match}"):
        make_config(**{**PROG, **bad})


def test_batches_are_box_averaged_to_the_steps_size(make_config):
    tr = Trainer(make_config("p", **PROG))
    obj = tr.objective
    first = obj.batch(range(0, 4))            # step 0: 8 px
    middle = obj.batch(range(12, 16))         # step 3: 16 px
    last = obj.batch(range(36, 40))           # step 9: 32 px
    assert first["x0"].shape[-1] == 8 and middle["x0"].shape[-1] == 16 and last["x0"].shape[-1] == 32
    assert first["noise"].shape == first["x0"].shape
    full = Trainer(make_config("f", **{**PROG, "progressive": []})).objective.batch(range(0, 4))
    assert torch.equal(first["x0"], downsample(full["x0"], 4))  # the same pictures, averaged
    tr.close()


def test_a_progressive_run_trains_and_exports_the_full_size(make_config):
    tr = Trainer(make_config("run", **PROG))
    path = tr.fit()
    tr.close()
    assert tr.step == 10 and tr.skipped == 0
    import json
    conf = json.loads((path / "config.json").read_text())
    assert conf["resolution"] == 32

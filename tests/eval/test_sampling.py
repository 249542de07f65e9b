"""Batched sampling for evaluation with a clip model that reads given frames (issue 16): nothing given by default,
given frames kept exactly, a model without given frames refuses them."""
import pytest
import torch

from _model_fixture import one_thread, write_model
from noisebrush.errors import BadParameter
from noisebrush.eval.sampling import sample_batch
from noisebrush.paint.pipeline import load


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    with one_thread():
        yield load(write_model(tmp_path_factory.mktemp("v") / "m", factorized=True, condition="label",
                               classes=["up", "down"], frames=4, given_frames=True))


def test_a_batch_of_clips_with_and_without_given_frames(video):
    with one_thread():
        free = sample_batch(video, labels=[0, 1], seeds=[0, 1], steps=2, sampler="euler", fast=False)
        assert free.shape == (2, 3, 4, 8, 8)
        given = torch.rand(2, 3, 4, 8, 8) * 2 - 1
        mask = torch.tensor([[True, False, False, False], [True, False, False, True]])
        out = sample_batch(video, labels=[0, 1], seeds=[0, 1], steps=2, sampler="euler", fast=False,
                           given=given, given_mask=mask)
    assert torch.equal(out[0, :, 0], given[0, :, 0]) and torch.equal(out[1, :, 3], given[1, :, 3])
    assert not torch.equal(out[0, :, 1], given[0, :, 1])


def test_given_frames_need_a_model_that_reads_them(tmp_path):
    with one_thread():
        plain = load(write_model(tmp_path / "m", factorized=True, condition="label", classes=["up", "down"],
                                 frames=4))
        with pytest.raises(BadParameter, match="given"):
            sample_batch(plain, labels=[0], seeds=[0], steps=2, given=torch.zeros(1, 3, 4, 8, 8),
                         given_mask=torch.ones(1, 4, dtype=torch.bool))

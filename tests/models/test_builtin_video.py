"""The built-in animation model (issue 16) ships inside the package as what differs from the built-in picture
model, records how it was trained, stays under 16 MB, and animates offline with the first frame kept exactly."""
import socket

import numpy as np
import torch

import noisebrush
from noisebrush.data.clips import ProceduralClips
from noisebrush.io import model_folder
from noisebrush.models.ship import LIMIT_MB

PATH = model_folder.BUILTIN_MODELS["builtin-video"]


def test_it_is_in_the_package_small_and_built_on_the_picture_model():
    assert (PATH / "model.safetensors").stat().st_size / 2**20 <= LIMIT_MB
    conf = model_folder.read_config(PATH)
    assert conf["task"] == "video" and conf["frames"] == 16 and conf["video"]["given_frames"] == "channels"
    assert conf["unet"]["factorized"] is True and conf["unet"]["dims"] == 3
    assert conf["base"] == {"model": "builtin", "hash": model_folder.weights_hash(model_folder.BUILTIN)}
    stored = model_folder.read_weights(PATH)
    assert all(k.startswith("enc.0.") or any(t in k for t in conf["provenance"]["config"]["train_only"])
               for k in stored)  # only what training changed


def test_it_records_its_training():
    prov = model_folder.read_config(PATH)["provenance"]
    assert prov["command"].startswith("noisebrush train") and "configs/video.toml" in prov["command"]
    assert prov["config"]["task"] == "video" and prov["config"]["init"] == "builtin"
    assert prov["steps"] > 0 and prov["train_seconds"] > 0
    assert prov["shipped"]["weights_dtype"] == "float16"


def test_it_animates_a_picture_offline(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access during painting")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    real = ProceduralClips(frames=4, size=1, seed=3)[0]
    first = real["clip"][:, 0]
    pipe = noisebrush.load("builtin-video", device="cpu")
    clips, recipes = pipe.animate(real["caption"], first=first, frames=4, steps=2, seed=1)
    assert clips.shape == (1, 3, 4, 32, 32) and recipes[0]["frames"] == 4
    u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()  # noqa: E731
    assert np.array_equal(u8(clips[0, :, 0]), u8(first))
    assert not torch.equal(clips[0, :, 3], clips[0, :, 0])

"""Model folders: the one writer and reader — round trip, config.json last, atomic writes, hash, dtype, and one clear
line for every bad folder."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from noisebrush.errors import UserError
from noisebrush.io import model_folder
from noisebrush.io.model_folder import (
    BUILTIN,
    MODEL_FORMAT,
    read_config,
    read_weights,
    resolve,
    weights_dtype,
    weights_hash,
    write,
)

CONFIG = {"network": "unet", "unet": {"channels": 8}, "sigma_data": 0.5, "condition": "none", "resolution": 16}


def _state():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(4, 3, generator=g), "t": torch.randn(3, 5, generator=g).t(),  # not contiguous
            "steps": torch.arange(3), "gain": torch.zeros([])}


def _one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg and msg.strip() == msg
    return msg


def test_write_then_read_round_trip(tmp_path):
    state = _state()
    path = write(tmp_path / "m", state, CONFIG)
    assert path == tmp_path / "m" and resolve(path) == path
    conf = read_config(path)
    assert conf == {"format": MODEL_FORMAT, **CONFIG}
    assert next(iter(json.loads((path / "config.json").read_text()))) == "format"  # first when the config had none
    back = read_weights(path)
    assert back.keys() == state.keys()
    for k, v in state.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]  # no temporary files left


def test_format_keeps_its_place_and_is_set(tmp_path):
    conf = {"network": "unet", "format": "noisebrush.model/0", **{k: v for k, v in CONFIG.items() if k != "network"}}
    path = write(tmp_path / "m", _state(), conf)
    text = json.loads((path / "config.json").read_text())
    assert list(text) == list(conf) and text["format"] == MODEL_FORMAT
    assert conf["format"] == "noisebrush.model/0"  # the caller's dict is not changed


def test_the_weights_are_what_safetensors_writes(tmp_path):
    """The trainer's export wrote save_file({k: v.contiguous()}): the one writer writes the same bytes."""
    state = _state()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "plain.safetensors"))
    path = write(tmp_path / "m", state, CONFIG)
    assert (path / "model.safetensors").read_bytes() == (tmp_path / "plain.safetensors").read_bytes()
    assert (path / "config.json").read_text() == json.dumps({"format": MODEL_FORMAT, **CONFIG}, indent=2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtype_casts_floating_tensors_only(tmp_path, dtype):
    state = _state()
    path = write(tmp_path / "m", state, CONFIG, dtype=dtype)
    back = read_weights(path)
    assert back["w"].dtype == back["t"].dtype == back["gain"].dtype == dtype
    assert back["steps"].dtype == torch.int64 and torch.equal(back["steps"], state["steps"])
    assert torch.equal(back["w"], state["w"].to(dtype))
    assert weights_dtype(path) == dtype


def test_weights_dtype_of_a_float32_folder(tmp_path):
    assert weights_dtype(write(tmp_path / "m", _state(), CONFIG)) == torch.float32


def test_config_is_written_last(tmp_path, monkeypatch):
    """Old config.json goes before the new weights land, the new one comes after them."""
    path = write(tmp_path / "m", _state(), CONFIG)
    seen = []
    real = model_folder.atomic_write_text

    def spy(target, text):
        seen.append(((path / "config.json").exists(), (path / "model.safetensors").exists()))
        real(target, text)

    monkeypatch.setattr(model_folder, "atomic_write_text", spy)
    write(path, {"w": torch.ones(2)}, {**CONFIG, "resolution": 8})
    assert seen == [(False, True)]
    assert read_config(path)["resolution"] == 8 and torch.equal(read_weights(path)["w"], torch.ones(2))


def _broken_save(*args, **kwargs):
    raise OSError("disk full")


def test_failed_write_leaves_no_partial_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(model_folder, "save_file", _broken_save)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "m", _state(), CONFIG)
    assert not (tmp_path / "m").exists()


def test_failed_write_leaves_an_existing_folder_as_it_was(tmp_path, monkeypatch):
    path = write(tmp_path / "m", _state(), CONFIG)
    before = {f: (path / f).read_bytes() for f in os.listdir(path)}
    monkeypatch.setattr(model_folder, "save_file", _broken_save)
    with pytest.raises(OSError):
        write(path, {"w": torch.ones(2)}, CONFIG)
    assert {f: (path / f).read_bytes() for f in os.listdir(path)} == before


def test_config_that_json_cannot_hold_fails_before_writing(tmp_path):
    with pytest.raises(TypeError):
        write(tmp_path / "m", _state(), {**CONFIG, "bad": object()})
    assert not (tmp_path / "m").exists()


def test_weights_hash_is_the_short_sha256_of_the_file(tmp_path):
    path = write(tmp_path / "m", _state(), CONFIG)
    data = (path / "model.safetensors").read_bytes()
    h = weights_hash(path)
    assert h == hashlib.sha256(data).hexdigest()[:10] and len(h) == 10
    write(path, {**_state(), "w": torch.ones(4, 3)}, CONFIG)
    assert weights_hash(path) != h


def test_builtin_resolves_to_the_package_model():
    assert resolve("builtin") == BUILTIN and BUILTIN.parent.name == "models"
    assert read_config(BUILTIN)["format"] == MODEL_FORMAT


def test_the_io_layer_stands_alone():
    """io sits below nets, data, train and paint: reading and writing model folders (and ship) load none of them."""
    code = ("import json, sys, noisebrush.io.model_folder, noisebrush.models.ship; "
            "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules if m.startswith('noisebrush.')})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not {"nets", "data", "train", "paint", "eval", "workflows", "apps"} & set(json.loads(out))


# -- bad folders: one line each, naming the file --------------------------------------------------------------------

def test_bad_folders_are_one_line(tmp_path):
    with pytest.raises(UserError) as e:
        resolve(tmp_path / "nope")
    assert "no such model folder" in _one_line(e)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UserError) as e:
        resolve(tmp_path / "file")
    assert "not a model folder" in _one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as e:
        resolve(tmp_path / "empty")
    assert "not a noisebrush model folder" in _one_line(e)


@pytest.mark.parametrize("text, words", [
    ('{"format": ', "unreadable"),
    ("[1, 2]", "not a noisebrush model"),
    ('{"format": "something/1"}', "not a noisebrush model"),
    ('{"format": "noisebrush.model/x"}', "unknown model format"),
    ('{"format": "noisebrush.model/2"}', "upgrade"),
    ('{"format": "noisebrush.model/1", "unet": {}}', "missing 'sigma_data'"),
    ('{"format": "noisebrush.model/1", "network": 3, "sigma_data": 0.5, "condition": "none", "resolution": 8}',
     "'network'"),
    ('{"format": "noisebrush.model/1", "unet": {}, "sigma_data": 0.5, "condition": "none", "resolution": 8, '
     '"schedule": {"sigma_min": 1, "sigma_max": 0.5}}', "sigma_min < sigma_max"),
    # the types painting relies on (these were TypeErrors deep inside `load`; issue 12's fuzz test)
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "noisebrush.model/1", "sigma_data": "half", "condition": "none", "resolution": 8}',
     "'sigma_data' must be a number above 0"),
    ('{"format": "noisebrush.model/1", "sigma_data": 0.5, "condition": ["text"], "resolution": 8}',
     "'condition' must be text or label or none"),
    ('{"format": "noisebrush.model/1", "sigma_data": 0.5, "condition": "none", "resolution": null}',
     "'resolution' must be a whole number"),
    ('{"format": "noisebrush.model/1", "sigma_data": 0.5, "condition": "label", "resolution": 8, "classes": [1]}',
     "'classes' must be a list of class names"),
    ('{"format": "noisebrush.model/1", "sigma_data": 0.5, "condition": "text", "resolution": 8, '
     '"text_encoder": {"max_tokens": "16"}}', "'text_encoder' must be an object whose max_tokens"),
])
def test_bad_configs_are_one_line(tmp_path, text, words):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(UserError) as e:
        read_config(tmp_path)
    assert words in _one_line(e)


@pytest.mark.parametrize("keep", [0, 5, 0.5])
def test_unreadable_weights_are_one_line(tmp_path, keep):
    path = write(tmp_path / "m", _state(), CONFIG)
    w = path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    for read in (read_weights, weights_dtype):
        with pytest.raises(UserError) as e:
            read(path)
        assert str(w) in _one_line(e) and "unreadable" in str(e.value)

"""The built-in shape model (issue 17) ships inside the package, records how it was trained (its stages), stays
under 16 MB, and sculpts offline: a closed mesh from a prompt, the same bytes again from its recipe."""
import socket

from _model_fixture import one_thread
from noisebrush.apps.cli import main
from noisebrush.io import model_folder
from noisebrush.io.mesh import read_mesh
from noisebrush.models.ship import LIMIT_MB

PATH = model_folder.BUILTIN_MODELS["builtin-shape"]


def test_it_is_in_the_package_small_and_a_shape_model():
    assert (PATH / "model.safetensors").stat().st_size / 2**20 <= LIMIT_MB
    conf = model_folder.read_config(PATH)
    assert conf["task"] == "shape" and conf["shape"]["truncation"] == 0.2 and conf["condition"] == "text"
    assert conf["unet"]["dims"] == 3 and not conf["unet"].get("factorized") and conf["unet"]["patch"] == 2


def test_it_records_its_training():
    prov = model_folder.read_config(PATH)["provenance"]
    assert prov["command"].startswith("noisebrush train") and "configs/shape.toml" in prov["command"]
    assert prov["config"]["task"] == "shape" and "step-0000639" in prov["config"]["init"]  # stage 3 of the config
    assert prov["steps"] > 0 and prov["train_seconds"] > 0
    assert prov["shipped"]["weights_dtype"] == "float16"


def test_it_sculpts_offline_and_reproduces_the_mesh(monkeypatch, tmp_path, capsys):
    def refuse(*a, **k):
        raise OSError("network access during sculpting")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with one_thread():
        code = main(["sculpt", "a short wide round table with four legs", "--seed", "1", "--steps", "6", "-f", "stl",
                     "--frames", "2", "--size", "48", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    stem = tmp_path / "a-short-wide-round-table-with-four-legs-s1"
    assert read_mesh(stem.with_suffix(".stl")).is_watertight
    with one_thread():
        code = main(["reproduce", str(stem.with_suffix(".png")), "--out", str(tmp_path / "again")])
    out = capsys.readouterr()
    assert code == 0 and "byte-identical" in out.out, out

"""`noisebrush export` and `paint --runtime onnx` (issue 19) on a tiny model, end to end in-process: the graph and
its sidecar, the printed difference, painting through it and `reproduce` giving the same pixels; bad input is one
line."""
import json

import pytest

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, tiny_model
from noisebrush.io.model_folder import read_config
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


@pytest.fixture(scope="module")
def exported(label_dir, tmp_path_factory):
    """`noisebrush export MODEL --out FILE`: (exit code, stdout, graph)."""
    from noisebrush.apps.cli import main

    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    with one_thread():
        code = main(["export", str(label_dir), "--format", "onnx", "--out", str(out)])
    return code, out


def test_export_writes_the_graph_and_says_the_difference(exported, label_dir, capsys):
    code, out = exported
    assert code == 0 and out.is_file()
    side = json.loads((out.parent / "tiny.onnx.json").read_text())
    assert side["validation"]["max_abs_diff"] < 1e-4 and side["quantization"] is None
    # a second export to the same file is refused unless --force, and says so in one line
    code, stdout, err = run_cli(capsys, "export", label_dir, "--out", out)
    assert "--force" in one_error_line(code, stdout, err)


def test_export_prints_the_max_difference(label_dir, tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", label_dir, "--out", tmp_path / "g.onnx", "--int8", "dynamic")
    assert code == 0, err
    assert "wrote" in out and "int8 dynamic" in out and "max difference from PyTorch fp32:" in out
    assert json.loads((tmp_path / "g.onnx.json").read_text())["quantization"]["mode"] == "dynamic"


def test_paint_with_onnx_and_reproduce_pixel_identically(exported, label_dir, tmp_path, capsys):
    _, graph = exported
    cls = read_config(label_dir)["classes"][0]
    code, out, err = run_cli(capsys, "paint", cls, "-m", label_dir, "-n", "1", "--steps", "3", "--seed", "4",
                             "--runtime", "onnx", "--onnx", graph, "--out", tmp_path)
    assert code == 0, err
    png = next(tmp_path.glob("*-s4.png"))
    rec = read_recipe(png)
    assert rec["runtime"] == "onnx" and rec["onnx"]["file"] == str(graph.resolve())
    code, out, err = run_cli(capsys, "reproduce", png, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err


@pytest.mark.parametrize("args, words", [
    (["export", "builtin", "--format", "tflite"], "--format: one of onnx"),
    (["export", "builtin", "--int8", "int4"], "--int8: dynamic or static"),
    (["export", "builtin", "--out", "graph.pt"], "name the graph FILE.onnx"),
    (["export", "no-such-model-folder", "--out", "{tmp}/x.onnx"], "no-such-model-folder"),
    (["paint", "x", "--runtime", "tvm"], "--runtime: torch or onnx"),
    (["paint", "x", "--onnx", "{tmp}/x.onnx"], "--onnx: a graph is run with --runtime onnx"),
    (["paint", "x", "--runtime", "onnx", "--onnx", "{tmp}/missing.onnx"], "no such file"),
    (["paint", "x", "--runtime", "onnx", "--device", "cuda"], "paints on the CPU"),
])
def test_bad_input_is_one_line(capsys, tmp_path, args, words):
    code, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in args], *(
        ["--out", tmp_path] if args[0] == "paint" else []))
    assert words in one_error_line(code, out, err)


def test_a_discriminator_cannot_be_exported(tmp_path, capsys):
    """Only the UNet of painting models is exported; anything else is refused in one line (here a folder whose
    config names another network is refused by the loader first, which is one line too)."""
    folder = tmp_path / "disc"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": "noisebrush.model/1", "network": "disc",
                                                    "disc": {}, "sigma_data": 0.5, "resolution": 16,
                                                    "condition": "none"}))
    code, out, err = run_cli(capsys, "export", folder, "--out", tmp_path / "d.onnx")
    one_error_line(code, out, err)

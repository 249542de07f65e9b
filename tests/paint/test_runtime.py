"""The ONNX runtime (issue 19): a tiny model's network exported, validated, painted through ONNX Runtime close to
torch and replayed pixel for pixel; int8 graphs load and run; a graph of other weights is refused; bad input is one
line."""
import json
import shutil

import numpy as np
import pytest
import torch

from _model_fixture import one_thread, tiny_model, write_model
from noisebrush.errors import BadParameter, UserError
from noisebrush.paint import recipe as recipes
from noisebrush.paint import runtime
from noisebrush.paint.pipeline import load

TOLERANCE = 1e-4  # max |ΔF| of the fp32 graph from torch fp32 (measured ~1e-6 on the tiny and built-in models)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


@pytest.fixture(scope="module")
def graph(label_dir, tmp_path_factory):
    """The tiny model's fp32 graph and its sidecar."""
    with one_thread():
        out = tmp_path_factory.mktemp("graph") / "tiny.onnx"
        runtime.export(load(label_dir, device="cpu"), out)
    return out


def test_export_writes_a_validated_graph_and_its_sidecar(graph, label_dir):
    info = json.loads(runtime.sidecar_path(graph).read_text())
    assert info == runtime.read_sidecar(graph)
    pipe = load(label_dir, device="cpu")
    assert info["format"] == runtime.ONNX_FORMAT and info["model_hash"] == pipe.hash and info["quantization"] is None
    assert [i["name"] for i in info["inputs"]] == ["x", "c_noise", "labels", "drop"]
    check = info["validation"]
    assert 0 <= check["max_abs_diff"] < TOLERANCE and check["max_abs_output"] > 0  # a 2-step model: small F
    assert set(check["per_sigma"]) == {"80", "10", "1", "0.1", "0.002"}
    assert info["sha256"] == runtime.file_sha256(graph) and info["onnxruntime"]
    # the graph really is the network: a batch of 3 at σ 2 with one dropped row, straight through ONNX Runtime
    sess = runtime.make_session(graph, threads=1)
    x, c = torch.randn(3, 3, 16, 16), torch.full((3,), np.log(2.0) / 4)
    labels, drop = torch.tensor([0, 1, 2]), torch.tensor([False, True, False])
    got = sess.run(None, {"x": x.numpy(), "c_noise": c.float().numpy(), "labels": labels.numpy(),
                          "drop": drop.numpy()})[0]
    with torch.no_grad():
        want = pipe.net(x, c.float(), labels=labels, drop=drop).numpy()
    assert np.abs(got - want).max() < TOLERANCE


def test_onnx_paints_close_to_torch_and_replays_pixel_for_pixel(graph, label_dir):
    torch_pipe = load(label_dir, device="cpu")
    onnx_pipe = load(label_dir, runtime="onnx", onnx=graph)
    kw = dict(label=1, seed=5, n=2, steps=6, cfg=3.0)
    a, rec_a = torch_pipe.generate("", **kw)
    b, rec_b = onnx_pipe.generate("", **kw)
    assert (a - b).abs().max() < 1e-3  # the network's float rounding only
    assert "runtime" not in rec_a[0] and rec_b[0]["runtime"] == "onnx"
    assert rec_b[0]["onnx"] == {"file": str(graph.resolve()), "hash": runtime.file_sha256(graph)[:10]}
    again_pipe = recipes.load_pipeline(rec_b[1])
    assert again_pipe.runtime == "onnx"
    c, rec_c = recipes.replay(again_pipe, rec_b[1])
    assert torch.equal(c, b[1:2]) and rec_c[0] == rec_b[1]


def test_the_cache_exports_once_per_weights(label_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_CACHE", str(tmp_path / "cache"))
    said = []
    pipe = load(label_dir, runtime="onnx", say=said.append)
    assert len(said) == 1 and "exported" in said[0] and pipe.runtime == "onnx"
    cached = tmp_path / "cache" / "onnx" / f"{pipe.hash}.onnx"
    assert cached.is_file() and runtime.sidecar_path(cached).is_file()
    again = load(label_dir, runtime="onnx", say=said.append)
    assert len(said) == 1  # found, not exported again
    x, rec = again.generate("", label=0, seed=1, steps=3)
    assert "onnx" not in rec[0] and rec[0]["runtime"] == "onnx"  # the cached graph is not a file the user gave
    y, _ = recipes.replay(recipes.load_pipeline(rec[0]), rec[0])
    assert torch.equal(x, y)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_graphs_are_valid_and_paint(label_dir, tmp_path, mode):
    pipe = load(label_dir, device="cpu")
    out = tmp_path / f"tiny-{mode}.onnx"
    info = runtime.export(pipe, out, int8=mode)
    assert info["quantization"]["mode"] == mode
    assert np.isfinite(info["validation"]["max_abs_diff"])
    if mode == "static":
        cal = info["quantization"]["calibration"]
        assert cal["pictures"] == runtime.CALIBRATION_PICTURES and len(cal["sigmas"]) == pipe.schedule.steps
        assert info["quantization"]["ops"] == ["Conv"]
    import onnx

    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert ops & ({"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} if mode == "dynamic"
                  else {"QuantizeLinear", "DequantizeLinear"})
    x, rec = load(label_dir, runtime="onnx", onnx=out).generate("", label=0, seed=2, steps=3)
    assert torch.isfinite(x).all() and rec[0]["onnx"]["file"] == str(out.resolve())


def test_a_graph_of_other_weights_is_refused(graph, label_dir, tmp_path):
    other = tmp_path / "other.onnx"
    shutil.copy(graph, other)
    info = json.loads(runtime.sidecar_path(graph).read_text())
    runtime.sidecar_path(other).write_text(json.dumps({**info, "model_hash": "0123456789"}))
    with pytest.raises(UserError, match="exported from model weights 0123456789"):
        load(label_dir, runtime="onnx", onnx=other)
    runtime.sidecar_path(other).unlink()
    with pytest.raises(UserError, match="has no sidecar"):
        load(label_dir, runtime="onnx", onnx=other)
    runtime.sidecar_path(other).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="not a noisebrush ONNX sidecar"):
        load(label_dir, runtime="onnx", onnx=other)


def test_a_changed_graph_is_refused_on_replay(graph, label_dir, tmp_path):
    mine = tmp_path / "mine.onnx"
    shutil.copy(graph, mine)
    shutil.copy(runtime.sidecar_path(graph), runtime.sidecar_path(mine))
    _, rec = load(label_dir, runtime="onnx", onnx=mine).generate("", label=0, seed=1, steps=2)
    with open(mine, "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError, match="has changed since the picture was painted"):
        recipes.load_pipeline(rec[0])
    mine.unlink()
    with pytest.raises(UserError, match="not there any more"):
        recipes.load_pipeline(rec[0])
    with pytest.raises(UserError, match="runtime 'tpu'"):
        recipes.load_pipeline({**rec[0], "runtime": "tpu"})


def test_bad_input_is_one_line(graph, label_dir, tmp_path):
    with pytest.raises(BadParameter, match="runtime: one of torch, onnx"):
        load(label_dir, runtime="tensorflow")
    with pytest.raises(BadParameter, match="runtime='onnx'"):
        load(label_dir, onnx=graph)
    with pytest.raises(BadParameter, match="paints on the CPU"):
        load(label_dir, runtime="onnx", onnx=graph, device="cuda")
    with pytest.raises(UserError, match="no such ONNX graph"):
        load(label_dir, runtime="onnx", onnx=tmp_path / "missing.onnx")
    pipe = load(label_dir, device="cpu")
    with pytest.raises(BadParameter, match="int8: one of dynamic, static"):
        runtime.export(pipe, tmp_path / "x.onnx", int8="int4")
    with pytest.raises(BadParameter, match="FILE.onnx"):
        runtime.export(pipe, tmp_path / "x.pt")
    with pytest.raises(UserError, match="exists; pass --force"):
        runtime.export(pipe, graph)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    shutil.copy(runtime.sidecar_path(graph), runtime.sidecar_path(bad))
    with pytest.raises(UserError, match="ONNX Runtime cannot load it"):
        load(label_dir, runtime="onnx", onnx=bad)


def test_a_clip_model_is_refused_in_one_line(tmp_path):
    """A factorised clip network's temporal attention comes out of the TorchScript exporter as a graph ONNX Runtime
    refuses: export says so before tracing, and so does --runtime onnx."""
    folder = write_model(tmp_path / "clip", factorized=True)
    with pytest.raises(UserError, match="clip networks are not exported yet"):
        runtime.export(load(folder, device="cpu"), tmp_path / "clip.onnx")
    with pytest.raises(UserError, match="clip networks are not exported yet"):
        load(folder, runtime="onnx")


def test_a_volume_model_exports(tmp_path):
    """A dims=3 volume network (the shape models' kind) exports with three dynamic spatial axes."""
    folder = write_model(tmp_path / "volume", factorized=False)
    pipe = load(folder, device="cpu")
    info = runtime.export(pipe, tmp_path / "volume.onnx")
    assert info["inputs"][0]["shape"] == ["batch", 3, "depth", "height", "width"]
    assert info["validation"]["max_abs_diff"] < TOLERANCE
    x, rec = load(folder, runtime="onnx", onnx=tmp_path / "volume.onnx").generate("", seed=1, steps=2)
    y, _ = pipe.generate("", seed=1, steps=2)
    assert (x - y).abs().max() < 1e-3 and rec[0]["runtime"] == "onnx"

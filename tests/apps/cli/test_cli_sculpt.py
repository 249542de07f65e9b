"""`noisebrush sculpt` (issue 17): a mesh, a turntable GIF and a PNG view with the recipe per shape; `reproduce` on
the view sculpts it again and finds the mesh byte-identical; variations and completion from a mesh; bad flags are
one line before any work."""
import imageio.v3 as iio
import pytest

from _model_fixture import one_thread, tiny_model, write_model
from noisebrush.apps.cli import main
from noisebrush.data.shapes import TRUNCATION, make_shape, sdf_grid
from noisebrush.io.mesh import grid_to_mesh, read_mesh, write_mesh
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("shape") / "model", factorized=False, in_channels=1, resolution=16,
                       task="shape", shape={"truncation": TRUNCATION})


@pytest.fixture(scope="module")
def vase(tmp_path_factory):
    scene = next(s for s in map(lambda i: make_shape(2, i), range(60)) if s.category == "vase")
    path = tmp_path_factory.mktemp("mesh") / "vase.ply"
    write_mesh(grid_to_mesh(sdf_grid(scene, 16)), path)
    return path


def _run(args, capsys):
    with one_thread():
        code = main(args)
    return code, capsys.readouterr()


def test_sculpt_completes_a_mesh_and_reproduce_finds_the_same_bytes(model, vase, tmp_path, capsys):
    out = tmp_path / "out"
    code, io = _run(["sculpt", "a vase", "-m", str(model), "--from", str(vase), "--keep", "bottom:0.5", "--seed", "3",
                     "--steps", "3", "--jumps", "2", "--format", "glb", "--frames", "4", "--size", "48", "--resolution", "32",
                     "--out", str(out)], capsys)
    assert code == 0, io.err
    mesh, gif, png = (out / f"a-vase-s3{ext}" for ext in (".glb", ".gif", ".png"))
    assert mesh.is_file() and gif.is_file() and png.is_file()
    assert "sculpted 1 shape (seed 3)" in io.out
    rec = read_recipe(png)
    assert rec["mode"] == "sculpt" and rec["format"] == "glb" and rec["mesh"] == "a-vase-s3.glb"
    assert rec["keep"] == "bottom:0.5" and rec["source"] == "vase.ply" and rec["resolution"] == 32 and rec["jumps"] == 2
    assert read_mesh(mesh).is_watertight
    frames = iio.imread(gif, index=None)
    assert frames.shape[:3] == (4, 48, 48)
    code, io = _run(["reproduce", str(png), "--out", str(tmp_path / "again")], capsys)
    assert code == 2 and "was painted from 'vase.ply'" in io.err  # the source mesh is needed, and named
    code, io = _run(["reproduce", str(png), "--source", str(vase), "--out", str(tmp_path / "again")], capsys)
    assert code == 0, io.err
    assert "pixel-identical" in io.out and "byte-identical" in io.out
    assert (tmp_path / "again" / "a-vase-s3-again.glb").read_bytes() == mesh.read_bytes()


def test_a_variation_and_every_format(model, vase, tmp_path, capsys):
    for k, fmt in enumerate(("obj", "ply", "stl")):
        code, io = _run(["sculpt", "a vase", "-m", str(model), "--from", str(vase), "--strength", "0.2", "--seed", "1",
                         "--steps", "4", "-f", fmt, "--frames", "2", "--size", "32", "--out", str(tmp_path)], capsys)
        assert code == 0, io.err
        stem = "a-vase-s1" + (f"-{k + 1}" if k else "")  # the three files of a run share a stem no earlier run took
        assert read_mesh(tmp_path / f"{stem}.{fmt}").is_watertight and (tmp_path / f"{stem}.gif").is_file()
        rec = read_recipe(tmp_path / f"{stem}.png")
        assert rec["strength"] == 0.2 and rec["mesh"] == f"{stem}.{fmt}"


@pytest.mark.parametrize("args,match", [
    (["--keep", "bottom"], "--keep: needs --from"),
    (["--strength", "0.5"], "--strength: needs --from"),
    (["--format", "fbx"], "--format: one of obj, ply, stl, glb"),
    (["--from", "nowhere.obj"], "--from nowhere.obj: no such file"),
    (["--frames", "0"], "--frames"),
    (["--size", "8"], "--size"),
    (["--jumps", "5"], "--jumps: only with --keep"),
])
def test_bad_flags_are_one_line(model, tmp_path, capsys, args, match):
    code, io = _run(["sculpt", "x", "-m", str(model), "--out", str(tmp_path), *args], capsys)
    assert code == 2 and match in io.err and "Traceback" not in io.err
    assert not list(tmp_path.iterdir())


def test_keep_and_strength_together_and_bad_keep(model, vase, tmp_path, capsys):
    code, io = _run(["sculpt", "x", "-m", str(model), "--from", str(vase), "--keep", "bottom", "--strength", "0.3",
                     "--out", str(tmp_path)], capsys)
    assert code == 2 and "give one of them" in io.err
    code, io = _run(["sculpt", "x", "-m", str(model), "--from", str(vase), "--keep", "sideways",
                     "--out", str(tmp_path)], capsys)
    assert code == 2 and "keep: the side is one of" in io.err


def test_a_picture_model_is_refused(tmp_path_factory, tmp_path, capsys):
    code, io = _run(["sculpt", "x", "-m", str(tiny_model(tmp_path_factory)), "--out", str(tmp_path)], capsys)
    assert code == 2 and "not shapes" in io.err

"""Atomic writes, the writability check made before any work, and the rescue of work whose place cannot be written.

We run as root, which ignores permissions; the read-only cases run in one subprocess with CAP_DAC_OVERRIDE dropped
(``setpriv``), where a 0o555 folder really refuses writes.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisebrush.errors import UserError
from noisebrush.io import atomic
from noisebrush.io.atomic import atomic_path, atomic_write_text, check_writable


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "b.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["b.txt"]  # no temporary file left


def test_atomic_path_removes_temp_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.bin") as tmp:
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_accepts_missing_folders_under_a_writable_one(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper", what="--out", folder=True) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is made by the check
    assert list(tmp_path.iterdir()) == []  # and the probe file is gone


def test_check_writable_names_a_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"f: exists and is not a folder \(--out\)"):
        check_writable(tmp_path / "f", what="--out", folder=True)
    with pytest.raises(UserError, match=r"is not a folder, so .* cannot be made \(--json\)"):
        check_writable(tmp_path / "f" / "r.json", what="--json")
    with pytest.raises(UserError, match=r"is a folder \(--json wants a file name\)"):
        check_writable(tmp_path, what="--json")


def test_unwritable_target_keeps_the_work_in_the_rescue_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(atomic.tempfile, "tempdir", None)  # re-read TMPDIR
    (tmp_path / "tmp").mkdir()
    real = atomic.tempfile.mkstemp

    def refuse_in_target(*a, dir=None, **kw):
        if Path(dir) == tmp_path / "out":
            raise PermissionError(13, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse_in_target)
    with pytest.raises(UserError) as e:
        atomic_write_text(tmp_path / "out" / "report.json", '{"a": 1}')
    msg = str(e.value)
    assert "\n" not in msg and "out/report.json: cannot be written (Permission denied)" in msg
    kept = Path(msg.rsplit("kept in ", 1)[1])
    assert kept.parent == tmp_path / "tmp" / "noisebrush-rescued" and kept.read_text() == '{"a": 1}'
    assert kept.name.startswith("report-") and kept.suffix == ".json"


_SCRIPT = r"""
import json, sys
from pathlib import Path
from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_write_text, check_writable
ro = Path(sys.argv[1])
out = {}
for name, call in [("folder", lambda: check_writable(ro, what="--out", folder=True)),
                   ("sub", lambda: check_writable(ro / "sub" / "deeper", what="--out", folder=True)),
                   ("file", lambda: check_writable(ro / "r.json", what="--json"))]:
    try:
        call()
        out[name] = "ok"
    except UserError as e:
        out[name] = str(e)
try:
    atomic_write_text(ro / "late.json", "[1, 2]")
    out["late"] = "ok"
except UserError as e:
    out["late"] = str(e)
print(json.dumps(out))
"""


@pytest.fixture
def read_only(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    probe = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--",
                            "/bin/sh", "-c", f"touch {ro}/probe"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("dropping CAP_DAC_OVERRIDE does not make a 0o555 folder read-only here")
    yield ro
    ro.chmod(0o755)


def test_read_only_folder_in_a_process_without_root_powers(read_only, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    r = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--",
                        sys.executable, "-c", _SCRIPT, str(read_only)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["folder"] == f"{read_only}: cannot write here (--out: Permission denied)"
    assert got["sub"] == f"{read_only}: cannot write here (--out: Permission denied)"
    assert got["file"] == f"{read_only}: cannot write here (--json: Permission denied)"
    assert got["late"].startswith(f"{read_only}/late.json: cannot be written (Permission denied); the work is kept")
    kept = Path(got["late"].rsplit("kept in ", 1)[1])
    assert kept.read_text() == "[1, 2]"


def test_cli_turns_an_unforeseen_os_error_into_one_line(monkeypatch, capsys):
    import noisebrush.diffusion
    from noisebrush.apps.cli import main
    from _cli_checks import one_error_line

    class Broken(dict):
        def items(self):
            raise PermissionError(13, "Permission denied", "/somewhere/file.png")

    monkeypatch.setattr(noisebrush.diffusion, "SAMPLERS", Broken(a=1))
    code = main(["samplers"])
    out, err = capsys.readouterr()
    assert one_error_line(code, out, err) == "error: /somewhere/file.png: Permission denied"


def test_cli_prints_a_noisebrush_warning_as_one_line(monkeypatch, capsys):
    import noisebrush.diffusion
    from noisebrush.apps.cli import main
    from noisebrush.errors import warn

    class Warns(dict):
        def items(self):
            warn("--thing: used, but probably not as meant")
            return super().items()

    monkeypatch.setattr(noisebrush.diffusion, "SAMPLERS", Warns(dpmpp_2m=noisebrush.diffusion.SAMPLERS["dpmpp_2m"]))
    assert main(["samplers"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "warning: --thing: used, but probably not as meant"
    assert out.startswith("dpmpp_2m")

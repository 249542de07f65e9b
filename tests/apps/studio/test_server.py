"""The studio's server over HTTP: what `noisebrush studio` refuses before it serves, sign-in, files outside its
folders, cross-origin posts and requests beyond its limits — against a real server on a loopback port."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from noisebrush.bench.launch import start_studio, stop_studio
from noisebrush.apps.studio.safety import check_exposure
from noisebrush.errors import BadParameter
from noisebrush.io.png import read_recipe

CLI_TIMEOUT = 60  # seconds; the refusals below take a few (no gradio, no torch)
FAST = 25         # seconds: well under what importing gradio and torch and starting a server take here

# `python -m noisebrush studio ARGS` that writes, at exit, which heavy modules it had imported
_WRAPPER = textwrap.dedent("""
    import atexit, os, runpy, sys
    def record():
        with open(os.environ["NB_TEST_MODULES"], "w") as f:
            f.write(" ".join(m for m in ("gradio", "uvicorn", "torch") if m in sys.modules))
    atexit.register(record)
    sys.argv = ["noisebrush", "studio", *sys.argv[1:]]
    runpy.run_module("noisebrush", run_name="__main__")
""")


def paint_args(prompt="a red sun over purple mountains", *, steps=4, seed=5, n=1, negative="", size=32, best_of=1):
    """The /paint endpoint's arguments, in the order of `tabs/paint.py`'s `run`."""
    return (prompt, negative, size, "builtin", [], 1.0, "", steps, 3.0, seed, n, "", 0.15, best_of, 0.0)


def run_cli(tmp_path, *args):
    """(exit status, stderr lines, seconds, heavy modules imported) of `noisebrush studio ARGS`. It is stopped at
    once should it ever start serving."""
    env = {**os.environ, "NOISEBRUSH_HOME": str(tmp_path / "nbhome"), "NB_TEST_MODULES": str(tmp_path / "mods"),
           "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", _WRAPPER, "--gallery", str(tmp_path / "g"), "--home", str(tmp_path / "h"), *args]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(10)
    took = time.perf_counter() - t
    assert "noisebrush studio: http" not in out.decode(errors="replace"), "it started serving"
    mods = (tmp_path / "mods").read_text().split() if (tmp_path / "mods").exists() else None
    return proc.returncode, err.decode(errors="replace").splitlines(), took, mods


# -- refused before serving -------------------------------------------------------------------------------------
def test_listen_without_auth_is_one_line_and_fast(tmp_path):
    rc, err, took, mods = run_cli(tmp_path, "--listen", "--port", "7999")
    assert rc != 0
    assert len(err) == 1, err
    assert "--listen" in err[0] and "--auth" in err[0] and "--insecure" in err[0] and "network" in err[0]
    assert mods is not None and "gradio" not in mods and "uvicorn" not in mods, mods
    assert took < FAST, f"the refusal took {took:.1f} s"
    print(f"--listen refused in {took:.1f} s (imported: {mods or 'none of gradio, uvicorn, torch'})")


@pytest.mark.parametrize("value", ["alice", ":secret", "alice:"])
def test_bad_auth_is_one_line(tmp_path, capsys, monkeypatch, value):
    """In this process (the subprocess check above shows the refusals come before gradio loads)."""
    from _cli_checks import one_error_line, run_cli as run_in_process

    monkeypatch.setenv("NOISEBRUSH_HOME", str(tmp_path / "nbhome"))
    line = one_error_line(*run_in_process(capsys, "studio", "--auth", value, "--port", "7999", "--gallery",
                                          tmp_path / "g", "--home", tmp_path / "h"))
    assert line.startswith("error: --auth"), line
    assert "secret" not in line  # a password is never echoed


def test_listen_insecure_is_accepted(tmp_path):
    """`--listen --insecure` gets past the exposure check (one warning) and reaches the server's own start, which
    stops at a port this test holds — so nothing ever listens on 0.0.0.0."""
    with pytest.warns(Warning, match="--insecure: the studio is open to anyone"):
        assert check_exposure(None, True, [], True) == "0.0.0.0"
    assert check_exposure(None, True, [("a", "b")], False) == "0.0.0.0"
    with pytest.raises(BadParameter, match="--listen"):
        check_exposure(None, True, [], False)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)  # a listening socket on the port: binding 0.0.0.0 to it fails
        port = held.getsockname()[1]
        rc, err, took, mods = run_cli(tmp_path, "--listen", "--insecure", "--port", str(port))
    assert rc != 0
    text = "\n".join(err)
    assert "without --auth" not in text
    assert "--insecure" in text and "0.0.0.0" in text  # the warning
    assert f"--port {port}: already in use" in text, text
    assert mods is not None and "gradio" not in mods


# -- a studio with accounts -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    server = start_studio(tmp_path_factory.mktemp("auth"), "--auth", "alice:secret")
    try:
        yield server
    finally:
        stop_studio(server.proc)


def test_sign_in_is_needed(auth_server):
    url = auth_server.url
    with httpx.Client(base_url=url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert '"auth_required":true' in page.text.replace(" ", "")  # the login form, not the studio
        assert "paint-prompt" not in page.text
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={auth_server.gallery}/x.png"):
            assert http.get(path).status_code == 401, path
        assert http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}
                         ).status_code == 401

        for user, password in (("alice", "wrong"), ("bob", "secret"), ("alice", ""), ("alice", "secret ")):
            r = http.post("/login", data={"username": user, "password": password})
            assert r.status_code in (400, 422) and "access-token" not in r.headers.get("set-cookie", ""), (user, r)
        assert http.get("/config").status_code == 401

        r = http.post("/login", data={"username": "alice", "password": "secret"})
        assert r.status_code == 200 and r.json() == {"success": True}
        assert http.get("/config").status_code == 200
        page = http.get("/")
        assert "paint-prompt" in page.text and '"auth_required":true' not in page.text.replace(" ", "")

    # a login posted from another site is refused like every cross-origin POST
    r = httpx.post(url + "login", data={"username": "alice", "password": "secret"},
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin request refused" in r.text


def test_gradio_client_signs_in(auth_server):
    with pytest.raises(Exception, match="(?i)login|credentials|auth"):
        Client(auth_server.url, verbose=False, download_files=False, auth=("alice", "nope"))
    client = Client(auth_server.url, verbose=False, download_files=False, auth=("alice", "secret"))
    assert "/paint" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


# -- the default studio (loopback, no accounts) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def painted(studio_server):
    """(client, gallery PNG) after one real painting (4 steps, seed 5)."""
    client = Client(studio_server.url, verbose=False, download_files=False)
    _, pics, info = client.predict(*paint_args(steps=4, seed=5), api_name="/paint")
    assert len(pics) == 1 and "painted 1 picture (seed 5)" in info
    path = studio_server.gallery / os.path.basename(pics[0]["image"]["path"])
    assert path.is_file() and read_recipe(path)["seed"] == 5
    return client, path


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (httpx would normalise ``..`` away before sending)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_files_outside_the_gallery_are_refused(studio_server, painted):
    _, png = painted
    gallery, home = studio_server.gallery.absolute(), studio_server.home.absolute()
    index = gallery / ".noisebrush" / "gallery.sqlite"
    assert index.is_file()
    secret_model = home / "models" / "secret.safetensors"
    secret_model.write_bytes(b"SECRET-MODEL")
    (home / "uploads" / "datasets").mkdir(parents=True, exist_ok=True)
    secret_data = home / "uploads" / "datasets" / "secret.png"
    secret_data.write_bytes(png.read_bytes())
    link = gallery / "link-to-passwd.png"
    link.symlink_to("/etc/passwd")
    up = "../" * 12
    enc = "..%2F" * 12
    try:
        for path in ("/gradio_api/file=/etc/passwd",
                     "/gradio_api/file=../../etc/passwd",
                     f"/gradio_api/file={up}etc/passwd",
                     "/gradio_api/file=%2Fetc%2Fpasswd",
                     f"/gradio_api/file={enc}etc%2Fpasswd",
                     "/gradio_api/file=%252Fetc%252Fpasswd",
                     f"/gradio_api/file={gallery}/{up}etc/passwd",
                     f"/gradio_api/file={gallery}/{'%2e%2e/' * 12}etc/passwd",
                     f"/gradio_api/file={gallery}/{enc}etc%2Fpasswd",
                     f"/gradio_api/file={link}",
                     "/gradio_api/file/etc/passwd",
                     f"/gradio_api/file/{up}etc/passwd",
                     "/file=/etc/passwd",
                     f"/gradio_api/file={index}",
                     f"/gradio_api/file={gallery}/.noisebrush/../.noisebrush/gallery.sqlite",
                     f"/gradio_api/file={gallery}/%2Enoisebrush/gallery.sqlite",
                     f"/gradio_api/file={gallery}/.noisebrush",
                     f"/gradio_api/file={secret_model}",
                     f"/gradio_api/file={home}/models",
                     f"/gradio_api/file={secret_data}"):
            status, body = raw_get(studio_server.port, path)
            assert status in (403, 404), (path, status, body[:200])
            assert b"root:" not in body and b"SQLite format" not in body and b"SECRET" not in body, path
            assert b"\x89PNG" not in body, path
    finally:
        link.unlink()

    status, body = raw_get(studio_server.port, f"/gradio_api/file={png.absolute()}")
    assert status == 200 and body == png.read_bytes()
    r = httpx.get(f"{studio_server.url}gradio_api/file={png.absolute()}", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    with Image.open(png) as img:
        assert img.size == (32, 32)


def test_cross_origin_posts_are_refused(studio_server):
    url = studio_server.url
    own = url.rstrip("/")
    join = url + "gradio_api/queue/join"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {"Origin": f"http://evil.example:{studio_server.port}"},
                    {"Origin": own.replace("127.0.0.1", "localhost.evil.example")}):
        r = httpx.post(join, json={}, headers=headers, timeout=30)
        assert r.status_code == 403, headers
        assert "cross-origin request refused" in r.text
    r = httpx.post(url + "gradio_api/upload", files={"files": ("x.png", b"x")},
                   headers={"Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403
    # the studio's own page may post (here an empty body: gradio's own 422, not the guard's 403)
    for headers in ({"Origin": own}, {"Referer": url}, {}):
        r = httpx.post(join, json={}, headers=headers, timeout=30)
        assert r.status_code != 403 and "cross-origin" not in r.text, headers
        assert r.status_code == 422
    # reading is not guarded by Origin
    assert httpx.get(url, headers={"Origin": "http://evil.example"}, timeout=30).status_code == 200


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 101}, "Value 101 is greater than maximum value 100"),
    ({"steps": 5000}, "Value 5000 is greater than maximum value 100"),
    ({"n": 9}, "Value 9 is greater than maximum value 8"),
    ({"n": 0}, "Value 0 is less than minimum value 1"),
    ({"best_of": 64}, "Value 64 is greater than maximum value 8"),
    ({"prompt": "x" * 301}, "prompt: 301 characters, above the studio's limit of 300"),
    ({"negative": "y" * 5000}, "negative: 5000 characters, above the studio's limit of 300"),
    ({"size": 512}, "512"),
])
def test_requests_beyond_the_limits_get_one_line(studio_server, painted, kwargs, message):
    client, _ = painted
    before = sorted(studio_server.gallery.glob("*.png"))
    t = time.perf_counter()
    with pytest.raises(AppError) as got:
        client.predict(*paint_args(**kwargs), api_name="/paint")
    text = str(got.value)
    assert message in text, text
    assert "\n" not in text.strip() and "Traceback" not in text and 'File "' not in text, text
    assert time.perf_counter() - t < 30  # refused up front, nothing painted
    assert sorted(studio_server.gallery.glob("*.png")) == before
    assert studio_server.proc.poll() is None

"""The studio's safety layer: accounts, binding, same-origin and header middleware, folders, uploads."""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from noisebrush.apps.studio.safety import (
    REFUSED, SameOriginMiddleware, SecurityHeadersMiddleware, check_exposure, inside, make_auth_check, open_upload,
    parse_auth,
)
from noisebrush.data.folder import to_rgb
from noisebrush.errors import BadParameter, NoisebrushWarning, UserError


# -- accounts -----------------------------------------------------------------------------------------------------
def _auth_file(tmp_path, text, mode=0o600):
    f = tmp_path / "users.txt"
    f.write_text(text, encoding="utf-8")
    f.chmod(mode)
    return f


def test_auth_flag_and_file(tmp_path):
    f = _auth_file(tmp_path, "# the studio's painters\n\nann:pa:ss:word\n  bob:hunter2  \n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_auth("me:x:y", f) == [("me", "x:y"), ("ann", "pa:ss:word"), ("bob", "hunter2")]
    assert parse_auth(None, None) == []
    assert parse_auth("u:p", None) == [("u", "p")]


@pytest.mark.parametrize("value, why", [
    ("nocolon-s3cret", "no ':'"), (":s3cret", "user is empty"), ("me:", "password is empty"),
    ("m\te:s3cret", "user holds a control character"), ("me:s3cr\x00et", "password holds a control character"),
    ("me:" + "s3cret" * 50, "password is 300 characters, above 256"),
])
def test_auth_flag_refused_without_echo(value, why):
    with pytest.raises(BadParameter) as e:
        parse_auth(value, None)
    msg = str(e.value)
    assert msg.startswith("--auth: ") and why in msg and "s3cret" not in msg and "\n" not in msg


def test_auth_file_bad_line_names_the_line_not_the_password(tmp_path):
    f = _auth_file(tmp_path, "# comment\nann:ok\n\nsecretword-without-user\n")
    with pytest.raises(BadParameter, match=r"^--auth-file: .*users\.txt line 4: need USER:PASS") as e:
        parse_auth(None, f)
    assert "secretword" not in str(e.value)
    f = _auth_file(tmp_path, "ann:ok\nann:other-s3cret\n")
    with pytest.raises(BadParameter, match="line 2: the user ann is given twice") as e:
        parse_auth(None, f)
    assert "s3cret" not in str(e.value)
    with pytest.raises(BadParameter, match="given twice"):
        parse_auth("ann:x", _auth_file(tmp_path, "ann:y\n"))


def test_auth_file_empty_missing_folder_binary(tmp_path):
    with pytest.raises(BadParameter, match=r"^--auth-file: .* holds no USER:PASS line$"):
        parse_auth(None, _auth_file(tmp_path, "# only a comment\n\n   \n"))
    with pytest.raises(BadParameter, match=r"^--auth-file: .*nope\.txt: no such file$"):
        parse_auth(None, tmp_path / "nope.txt")
    with pytest.raises(BadParameter, match="is a folder"):
        parse_auth(None, tmp_path)
    (tmp_path / "bin").write_bytes(b"ann:ok\n\xff\xfe:x\n")
    with pytest.raises(BadParameter, match="line 2: not UTF-8"):
        parse_auth(None, tmp_path / "bin")


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_auth_file_readable_by_others_warns(tmp_path):
    f = _auth_file(tmp_path, "ann:ok\n", mode=0o644)
    with pytest.warns(NoisebrushWarning, match=r"--auth-file: .* can be read by other users .*chmod 600"):
        assert parse_auth(None, f) == [("ann", "ok")]


def test_auth_check_constant_time_answers():
    check = make_auth_check([("ann", "pa:ss"), ("bób", "żółw")])
    assert check("ann", "pa:ss") and check("bób", "żółw")
    assert not check("ann", "pa:s") and not check("ann", "żółw") and not check("bob", "żółw")
    assert not check("", "") and not check(None, None)
    assert not make_auth_check([])("ann", "pa:ss")


# -- binding ------------------------------------------------------------------------------------------------------
def test_exposure_rule():
    assert check_exposure(None, False, [], False) == "127.0.0.1"
    assert check_exposure("127.0.0.1", False, [], False) == "127.0.0.1"
    assert check_exposure("localhost", False, [], False) == "localhost"
    assert check_exposure("127.0.0.1", True, [("a", "b")], False) == "0.0.0.0"
    with pytest.raises(BadParameter) as e:
        check_exposure("127.0.0.1", True, [], False)
    assert str(e.value) == ("--listen: without --auth anyone on your network could paint, train and read your "
                            "gallery; add --auth USER:PASS or --auth-file F, or --insecure to accept that")
    with pytest.raises(BadParameter, match=r"^--host 192\.168\.1\.5: without --auth"):
        check_exposure("192.168.1.5", False, [], False)
    assert check_exposure("192.168.1.5", False, [("a", "b")], False) == "192.168.1.5"
    with pytest.warns(NoisebrushWarning, match="--insecure"):
        assert check_exposure(None, True, [], True) == "0.0.0.0"
    with pytest.raises(BadParameter, match="--host"):
        check_exposure("a b", False, [], False)


# -- middleware ---------------------------------------------------------------------------------------------------
async def _ws(websocket):
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def _stream(request):
    return StreamingResponse((f"data: {i}\n\n" for i in range(3)), media_type="text/event-stream")


def _app(**kw):
    routes = [Route("/", lambda r: PlainTextResponse("ok"), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
              Route("/framed", lambda r: PlainTextResponse("ok", headers={"X-Frame-Options": "DENY"})),
              Route("/sse", _stream, methods=["GET", "POST"]),
              WebSocketRoute("/ws", _ws)]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeadersMiddleware),
                                                Middleware(SameOriginMiddleware, **kw)])


@pytest.fixture(scope="module")
def client():
    return TestClient(_app(allowed_origins=["https://studio.example"]))  # Host: testserver


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "http://testserver"}, {"Origin": "http://testserver:80"}, {"Origin": "HTTP://TestServer"},
    {"Referer": "http://testserver/some/page?x=1"}, {"Origin": "https://studio.example:443"},
    {"Origin": "http://testserver", "Host": "testserver:80"},
])
def test_same_origin_and_headerless_posts_pass(client, headers):
    r = client.post("/", headers=headers)
    assert r.status_code == 200 and r.text == "ok"


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://testserver:8080"},
    {"Origin": "https://testserver"}, {"Origin": "not a url"}, {"Referer": "http://evil.example/page"},
    {"Origin": "http://evil.example", "Referer": "http://testserver/"},
    {"Origin": "http://testserver", "Host": "testserver:8080"},
])
def test_cross_origin_posts_refused(client, headers):
    r = client.post("/", headers=headers)
    assert r.status_code == 403 and r.text.strip() == REFUSED and r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_unsafe_methods_refused(client, method):
    assert client.request(method, "/", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.request(method, "/", headers={"Origin": "http://testserver"}).status_code == 200


def test_cross_origin_get_allowed_and_https_default_port():
    assert TestClient(_app()).get("/", headers={"Origin": "http://evil.example"}).status_code == 200
    secure = TestClient(_app(), base_url="https://testserver")
    assert secure.post("/", headers={"Origin": "https://testserver:443"}).status_code == 200
    assert secure.post("/", headers={"Origin": "http://testserver"}).status_code == 403


def test_websocket_origin(client):
    for headers in ({}, {"Origin": "http://testserver"}):
        with client.websocket_connect("/ws", headers=headers) as ws:
            assert ws.receive_text() == "hello"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}):
        with pytest.raises(WebSocketDisconnect) as e:
            with client.websocket_connect("/ws", headers=headers):
                pass
        assert e.value.code == 1008


def test_allowed_hosts_refuses_rebound_names():
    c = TestClient(_app(allowed_hosts=["testserver", "localhost"]))
    assert c.get("/").status_code == 200
    assert c.get("/", headers={"Host": "attacker.example:80"}).status_code == 403


def test_streaming_untouched_and_security_headers(client):
    with client.stream("POST", "/sse", headers={"Origin": "http://testserver"}) as r:
        assert r.status_code == 200 and "".join(r.iter_text()) == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    h = client.get("/").headers
    assert (h["x-content-type-options"], h["x-frame-options"], h["referrer-policy"]) == \
        ("nosniff", "SAMEORIGIN", "same-origin")
    assert client.get("/framed").headers.get_list("x-frame-options") == ["DENY"]


def test_bad_allowed_origin():
    with pytest.raises(BadParameter, match="allowed_origins"):
        SameOriginMiddleware(None, allowed_origins=["studio.example"])


# -- folders ------------------------------------------------------------------------------------------------------
def test_inside(tmp_path, monkeypatch):
    root, other = tmp_path / "gallery", tmp_path / "gallery-evil"
    (root / "sub").mkdir(parents=True)
    other.mkdir()
    (root / "sub" / "a.png").write_bytes(b"x")
    (other / "secret.txt").write_text("s")
    assert inside(root / "sub" / "a.png", [other, root]) == (root / "sub" / "a.png").resolve()
    assert inside(root / "new.png", [root]) == (root / "new.png").resolve()  # not there yet: fine
    assert inside(str(root / "sub" / ".." / "sub" / "a.png"), [root]) == (root / "sub" / "a.png").resolve()
    monkeypatch.chdir(root)
    assert inside("sub/a.png", [root]) == (root / "sub" / "a.png").resolve()
    for bad in [root / ".." / "gallery-evil" / "secret.txt", "../gallery-evil/secret.txt", other / "secret.txt",
                "/etc/passwd", "sub/a.png\x00.txt", ""]:
        with pytest.raises(UserError, match="outside the studio's folders$") as e:
            inside(bad, [root])
        assert "\n" not in str(e.value) and "\x00" not in str(e.value)
    (root / "link").symlink_to(other / "secret.txt")
    (root / "dirlink").symlink_to(other, target_is_directory=True)
    for bad in [root / "link", root / "dirlink" / "secret.txt"]:
        with pytest.raises(UserError, match="outside the studio's folders"):
            inside(bad, [root])
    with pytest.raises(UserError):
        inside(root / "sub" / "a.png", [])


# -- uploads ------------------------------------------------------------------------------------------------------
LIMITS = dict(max_bytes=20_000_000, max_pixels=4096 * 4096)


def _noise(w=64, h=48, mode="RGB", seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    return Image.fromarray(a[..., 0] if mode == "L" else a, mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path, side):
    """A valid 1-bit PNG of side×side black pixels, a few kB on disk."""
    row = bytes(1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row * 1000) for _ in range(side // 1000)) + z.compress(row * (side % 1000)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))
    return path


def test_good_png_jpeg_and_modes_like_training(tmp_path):
    src = _noise()
    src.save(tmp_path / "a.png")
    got = open_upload(tmp_path / "a.png", what="source picture", **LIMITS)
    assert got.mode == "RGB" and got.size == (64, 48) and np.array_equal(np.asarray(got), np.asarray(src))
    src.save(tmp_path / "a.jpg", quality=95)
    got = open_upload(str(tmp_path / "a.jpg"), what="source picture", **LIMITS)
    assert got.mode == "RGB" and got.size == (64, 48)
    rgba = _noise(mode="RGBA", seed=1)
    rgba.save(tmp_path / "t.png")
    got = open_upload(tmp_path / "t.png", what="mask", **LIMITS)
    assert np.array_equal(np.asarray(got), np.asarray(to_rgb(rgba)))  # transparency over white, as in training
    _noise(mode="L").save(tmp_path / "g.webp", lossless=True)
    assert open_upload(tmp_path / "g.webp", what="x", **LIMITS).mode == "RGB"


def test_animation_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    got = open_upload(tmp_path / "a.gif", what="x", **LIMITS)
    assert got.getpixel((8, 8)) == (255, 0, 0)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    got = open_upload(tmp_path / "r.jpg", what="photo", **LIMITS)
    assert got.size == (20, 40)
    top, bottom = got.getpixel((10, 5)), got.getpixel((10, 35))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # red turned to the top


@pytest.mark.parametrize("content, why", [
    (b"hello, I am a text file\n" * 20, r"not a PNG, JPEG, WebP, GIF, BMP or TIFF file"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", r"not a PNG, JPEG"),  # no Ghostscript
    (b"", r"empty file"),
])
def test_not_a_picture(tmp_path, content, why):
    (tmp_path / "fake.png").write_bytes(content)
    with pytest.raises(UserError, match=rf"^source picture: not a picture \({why}"):
        open_upload(tmp_path / "fake.png", what="source picture", **LIMITS)


def test_truncated_and_missing(tmp_path):
    buf = io.BytesIO()
    _noise(128, 128).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(UserError, match=r"^upload: not a picture \(truncated file\)$"):
        open_upload(tmp_path / "cut.png", what="upload", **LIMITS)
    with pytest.raises(UserError, match=r"^upload: no such file$"):
        open_upload(tmp_path / "none.png", what="upload", **LIMITS)
    with pytest.raises(UserError, match=r"^upload: not a picture \(a folder\)$"):
        open_upload(tmp_path, what="upload", **LIMITS)


def test_bombs_refused_from_the_header(tmp_path, monkeypatch):
    def never(self):
        raise AssertionError("decoded a picture that should have been refused from its header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    big = _bomb(tmp_path / "big.png", 20_000)  # 400 M pixels: above twice Pillow's own limit too
    assert big.stat().st_size < 200_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError) as e:
            open_upload(big, what="upload", **LIMITS)
        assert str(e.value) == "upload: 400,000,000 pixels, above the studio's limit of 16,777,216"
        with pytest.raises(UserError, match=r"^upload: 100,000,000 pixels, above the studio's limit of 16,777,216$"):
            open_upload(_bomb(tmp_path / "warned.png", 10_000), what="upload", **LIMITS)  # Pillow would only warn
        with pytest.raises(UserError, match=r"^upload: 25,000,000 pixels, above"):
            open_upload(_bomb(tmp_path / "mid.png", 5_000), what="upload", **LIMITS)


def test_pixel_and_byte_limits(tmp_path):
    _noise(64, 64).save(tmp_path / "a.png")
    with pytest.raises(UserError, match=r"^a: 4,096 pixels, above the studio's limit of 4,095$"):
        open_upload(tmp_path / "a.png", what="a", max_bytes=10**6, max_pixels=4095)
    assert open_upload(tmp_path / "a.png", what="a", max_bytes=10**6, max_pixels=4096).size == (64, 64)
    with open(tmp_path / "huge.png", "wb") as f:
        f.truncate(30_000_000)  # sparse: nothing written
    with pytest.raises(UserError) as e:
        open_upload(tmp_path / "huge.png", what="source picture", **LIMITS)
    assert str(e.value) == "source picture: 30.0 MB, above the upload limit of 20 MB"
    with pytest.raises(BadParameter, match="max_pixels"):
        open_upload(tmp_path / "a.png", what="a", max_bytes=10, max_pixels=0)

"""The studio's safety layer: who may use it, from where, which files it may touch, and which uploads it reads.

    users = parse_auth(args.auth, args.auth_file)              # [(user, password), …]; [] when neither is given
    host = check_exposure(args.host, args.listen, users, args.insecure)
    app = FastAPI()
    app.add_middleware(SameOriginMiddleware)                   # pure ASGI: streaming / SSE responses untouched
    app.add_middleware(SecurityHeadersMiddleware)
    app = gr.mount_gradio_app(app, blocks, path="/", auth=make_auth_check(users) if users else None)
    picture = open_upload(inside(path, [gallery, uploads]), what="source picture",
                          max_bytes=20_000_000, max_pixels=4096 * 4096)

**Who.** ``--auth USER:PASS`` (the password may hold ``:``, the user may not) and ``--auth-file F`` (one
``USER:PASS`` per line; blank lines and ``#`` comments skipped; surrounding white space of a line ignored) give the
accounts; users and passwords are 1 to 256 characters without control characters, and a user may appear once.
Errors name the flag and, for a file, the line, never the password. An auth file that other users may read gives
one warning. :func:`make_auth_check` compares in constant time (SHA-256 of both sides, ``hmac.compare_digest``,
every account tried), for gradio's ``auth=``.

**Where from.** The studio binds to 127.0.0.1 unless ``--listen`` (0.0.0.0); a host of one's own (``host``) is
kept, and any host that is not a loopback address counts as listening. Listening without an account is refused
unless ``--insecure`` says the user accepts it (then one warning). :class:`SameOriginMiddleware` refuses
cross-origin browser requests that change things (every method but GET, HEAD and OPTIONS, and every websocket):
``Origin`` (or, when absent, ``Referer``) must be the request's own ``scheme://Host`` or an allowed origin;
``Origin: null`` is refused; a request with neither header (curl, gradio_client) passes, since browsers always send
``Origin`` on cross-origin POSTs. Behind a proxy that terminates TLS, give the public origin
(``allowed_origins=["https://studio.example"]``) or let uvicorn trust the proxy's ``X-Forwarded-Proto``.
``allowed_hosts`` (optional) also refuses any request whose ``Host`` is not listed — with loopback names only it
stops DNS rebinding of a studio on 127.0.0.1. :class:`SecurityHeadersMiddleware` adds ``nosniff``,
``X-Frame-Options: SAMEORIGIN`` and ``Referrer-Policy: same-origin`` where the response has not set them.

**Which files.** :func:`inside` resolves a path (links followed; relative paths from the current folder) and
returns it only when it lies in one of the studio's folders.

**Which uploads.** :func:`open_upload` checks the byte size, then opens the file as PNG, JPEG (MPO included), WebP, GIF,
BMP or TIFF only (other formats Pillow knows, such as EPS, which runs Ghostscript, are refused), checks the pixel
count from the header before decoding anything, decodes fully (a truncated file is refused), takes the first frame
of an animation, applies EXIF orientation and converts to RGB exactly as the training reader does
(:func:`noisebrush.data.folder.to_rgb`). Every failure is one :class:`~noisebrush.errors.UserError` line that starts
with ``what``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import stat
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from noisebrush.data.folder import to_rgb
from noisebrush.errors import BadParameter, UserError, warn

__all__ = ["parse_auth", "check_exposure", "make_auth_check", "SameOriginMiddleware", "SecurityHeadersMiddleware",
           "inside", "open_upload", "UPLOAD_FORMATS", "REFUSED", "LOOPBACK_HOSTS"]

MAX_CREDENTIAL = 256             # characters in a user name or a password
MAX_AUTH_FILE = 1_000_000        # bytes: an auth file is a few lines
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG includes MPO (many phones' JPEGs)
REFUSED = "cross-origin request refused"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# -- who: accounts ------------------------------------------------------------------------------------------------
def _credential_problem(text: str) -> str | None:
    """Why ``USER:PASS`` cannot be an account (never quoting the password), or None."""
    user, colon, password = text.partition(":")
    if not colon:
        return "need USER:PASS (no ':' found)"
    for name, value in (("user", user), ("password", password)):
        if not value:
            return f"the {name} is empty"
        if len(value) > MAX_CREDENTIAL:
            return f"the {name} is {len(value)} characters, above {MAX_CREDENTIAL}"
        if _CONTROL.search(value):
            return f"the {name} holds a control character"
    return None


def parse_auth(auth: str | None, auth_file: str | os.PathLike | None) -> list[tuple[str, str]]:
    """The studio's accounts ``[(user, password), …]`` from ``--auth USER:PASS`` and/or ``--auth-file F``; ``[]``
    when neither is given. Raises BadParameter naming the flag (and the line of the file) for a bad value."""
    users: list[tuple[str, str]] = []
    seen: dict[str, str] = {}

    def add(text: str, where: str, flag: str) -> None:
        problem = _credential_problem(text)
        if problem:
            raise BadParameter(f"{flag}: {where}{problem}")
        user, _, password = text.partition(":")
        if user in seen:
            raise BadParameter(f"{flag}: {where}the user {_show(user)} is given twice (also {seen[user]})")
        seen[user] = where.rstrip(": ") or flag
        users.append((user, password))

    if auth is not None:
        if not isinstance(auth, str):
            raise BadParameter(f"--auth: need USER:PASS, got a {type(auth).__name__}")
        add(auth, "", "--auth")
    if auth_file is not None:
        path = Path(os.path.expanduser(os.fspath(auth_file)))
        shown = _show(path)
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise BadParameter(f"--auth-file: {shown} is a folder, not a file of USER:PASS lines")
            if info.st_size > MAX_AUTH_FILE:
                raise BadParameter(f"--auth-file: {shown} is {info.st_size:,} bytes; an auth file is a few lines")
            data = path.read_bytes()
        except FileNotFoundError:
            raise BadParameter(f"--auth-file: {shown}: no such file") from None
        except OSError as e:
            raise BadParameter(f"--auth-file: cannot read {shown} ({e.strerror or type(e).__name__})") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise BadParameter(f"--auth-file: {shown} line {line}: not UTF-8 text") from None
        before = len(users)
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                add(line, f"{shown} line {number}: ", "--auth-file")
        if len(users) == before:
            raise BadParameter(f"--auth-file: {shown} holds no USER:PASS line")
        if os.name == "posix" and info.st_mode & 0o044:
            warn(f"--auth-file: {shown} can be read by other users of this computer (chmod 600 {shown})")
    return users


def make_auth_check(users: Iterable[tuple[str, str]]) -> Callable[[str, str], bool]:
    """``check(user, password) -> bool`` for gradio's ``auth=``. Both sides are hashed (so lengths leak nothing) and
    compared with ``hmac.compare_digest``, and every account is tried, so the time does not depend on where or
    whether a user or password matches."""
    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    table = [(digest(u), digest(p)) for u, p in users]

    def check(user: str, password: str) -> bool:
        if not isinstance(user, str) or not isinstance(password, str):
            return False
        u, p = digest(user), digest(password)
        ok = False
        for su, sp in table:
            ok |= hmac.compare_digest(u, su) & hmac.compare_digest(p, sp)
        return ok

    return check


# -- where from: binding ------------------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_exposure(host: str | None, listen: bool, users: list, insecure: bool) -> str:
    """The address to bind: ``host`` when it is given and not a loopback address; else 0.0.0.0 with ``listen``; else
    ``host`` or 127.0.0.1. Serving beyond this computer (``listen``, or a ``host`` that is not loopback) without an
    account is refused unless ``insecure``; with it, one warning."""
    if host is not None and (not isinstance(host, str) or not host.strip() or _CONTROL.search(host) or " " in host):
        raise BadParameter(f"--host: need an address or a host name, got {host!r}")
    if host is not None and not _is_loopback(host):
        bind = host                 # an address of the user's own: serves beyond this computer
    elif listen:
        bind = "0.0.0.0"
    else:
        bind = host or "127.0.0.1"  # "localhost", "::1" are kept
    if not _is_loopback(bind) and not users:
        flag = "--listen" if listen else f"--host {bind}"
        if not insecure:
            raise BadParameter(
                f"{flag}: without --auth anyone on your network could paint, train and read your gallery; "
                "add --auth USER:PASS or --auth-file F, or --insecure to accept that"
            )
        warn(f"--insecure: the studio is open to anyone who can reach {bind}, with no password")
    return bind


# -- where from: requests -----------------------------------------------------------------------------------------
def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, defaults filled in and the host lower-cased; None when it is not an
    http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    return scheme, host.lower().rstrip("."), port if port is not None else _DEFAULT_PORTS[scheme]


def _own_origin(scope) -> tuple[str, str, int] | None:
    """(scheme, host, port) of the request itself: its scheme and its ``Host`` header."""
    scheme = _SCHEMES.get(str(scope.get("scheme", "http")).lower())
    hosts = [v for k, v in scope.get("headers") or () if k.lower() == b"host"]
    if scheme is None or len(hosts) != 1:
        return None
    host = hosts[0].decode("latin-1").strip()
    if not host or any(c in host for c in "/\\@?#"):
        return None
    return _origin_of(f"{scheme}://{host}")


class SameOriginMiddleware:
    """Pure ASGI middleware: refuses (403, ``cross-origin request refused``) browser requests from another origin
    that could change something — every HTTP method but GET, HEAD and OPTIONS, and every websocket — judged by
    ``Origin``, else ``Referer``; requests with neither pass (non-browser clients). ``allowed_origins`` are more
    origins to accept (``https://studio.example``); ``allowed_hosts``, when given, refuses every request whose
    ``Host`` names another host (against DNS rebinding). Responses are passed through untouched."""

    def __init__(self, app, allowed_origins: Iterable[str] = (), allowed_hosts: Iterable[str] | None = None):
        self.app = app
        self.allowed: set[tuple[str, str, int]] = set()
        for origin in allowed_origins:
            parsed = _origin_of(origin) if isinstance(origin, str) else None
            if parsed is None:
                raise BadParameter(f"allowed_origins: need scheme://host[:port], got {origin!r}")
            self.allowed.add(parsed)
        self.hosts = None if allowed_hosts is None else {h.strip("[]").lower().rstrip(".") for h in allowed_hosts}

    def _refuse_why(self, scope) -> str | None:
        own = _own_origin(scope)
        if self.hosts is not None and (own is None or own[1].strip("[]") not in self.hosts):
            return "request for an unknown host refused"
        if scope["type"] == "http" and str(scope.get("method", "")).upper() in _SAFE_METHODS:
            return None
        headers = scope.get("headers") or ()
        origins = [v for k, v in headers if k.lower() == b"origin"]
        if not origins:
            origins = [v for k, v in headers if k.lower() == b"referer"]
        for raw in origins:
            claimed = _origin_of(raw.decode("latin-1"))  # "null" and anything unparsable → None → refused
            if claimed is None or (claimed != own and claimed not in self.allowed):
                return REFUSED
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        why = self._refuse_why(scope)
        if why is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            message = await receive()  # websocket.connect
            if message.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": why})  # before accept: HTTP 403
            return None
        body = (why + "\n").encode()
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return None


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: SAMEORIGIN`` and
    ``Referrer-Policy: same-origin`` to every HTTP response that does not set them itself; the body is untouched."""

    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"),
               (b"referrer-policy", b"same-origin"))

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


# -- which files --------------------------------------------------------------------------------------------------
def _show(path) -> str:
    """A path for a one-line message: control characters (NUL, newlines) escaped."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path:
    """``path`` resolved (links followed, ``..`` applied; relative to the current folder) when it lies inside one of
    ``roots`` (resolved the same way), else UserError ``<path>: outside the studio's folders``."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise UserError(f"{_show(path)}: outside the studio's folders (not a path)") from None
    refused = UserError(f"{_show(text) or repr(text)}: outside the studio's folders")
    if not text or "\x00" in text:
        raise refused
    try:
        resolved = Path(os.path.realpath(text))
        bounds = [Path(os.path.realpath(os.fspath(r))) for r in roots]
    except (OSError, ValueError):
        raise refused from None
    if any(resolved == root or resolved.is_relative_to(root) for root in bounds):
        return resolved
    raise refused


# -- which uploads ------------------------------------------------------------------------------------------------
_BOMB_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide: one upload at a time changes the filters


def _amount(n: float, *, limit: bool = False) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            text = f"{n / scale:.1f}"
            if limit and text.endswith(".0"):
                text = text[:-2]
            return f"{text} {unit}"
    return f"{int(n):,} bytes"


def open_upload(path: str | os.PathLike, *, what: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """An uploaded picture as a loaded RGB PIL image, read safely (see the module doc); UserError ``<what>: …``
    when it is too large in bytes or pixels or is not a picture."""
    for name, value in (("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadParameter(f"{name}: need a whole number ≥ 1, got {value!r}")

    def not_a_picture(reason: str) -> UserError:
        return UserError(f"{what}: not a picture ({' '.join(reason.split())})")

    def too_many(pixels: int) -> UserError:
        return UserError(f"{what}: {pixels:,} pixels, above the studio's limit of {max_pixels:,}")

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what}: no such file") from None
    except (OSError, ValueError, TypeError) as e:
        raise not_a_picture(f"cannot read it: {getattr(e, 'strerror', None) or type(e).__name__}") from None
    if stat.S_ISDIR(info.st_mode):
        raise not_a_picture("a folder")
    if not stat.S_ISREG(info.st_mode):
        raise not_a_picture("not a regular file")
    if info.st_size == 0:
        raise not_a_picture("empty file")
    if info.st_size > max_bytes:
        raise UserError(f"{what}: {_amount(info.st_size)}, above the upload limit of {_amount(max_bytes, limit=True)}")

    formats = "PNG, JPEG, WebP, GIF, BMP or TIFF"
    try:
        with _BOMB_LOCK, warnings.catch_warnings():
            # Pillow warns (two raw lines) above its own limit; the studio's limit is said below, in one line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=UPLOAD_FORMATS)  # reads the header only
        with img:
            w, h = img.size
            if w < 1 or h < 1:
                raise not_a_picture(f"its header says {w}×{h} pixels")
            if w * h > max_pixels:
                raise too_many(w * h)
            img.seek(0)  # an animation: its first frame only
            img.load()   # ImageFile.LOAD_TRUNCATED_IMAGES stays False: a truncated file raises here
            if img.size[0] * img.size[1] > max_pixels:  # formats whose decoded size differs from the header's
                raise too_many(img.size[0] * img.size[1])
            try:
                turned = ImageOps.exif_transpose(img)
            except Exception:  # damaged EXIF: the picture as stored
                turned = img
            rgb = to_rgb(turned)
            if rgb is img:
                rgb = img.copy()  # closing the file must not close the picture we return
            rgb.load()
            return rgb
    except UserError:
        raise
    except Image.DecompressionBombError as e:  # above twice Pillow's own limit, refused while opening
        found = re.search(r"\((\d+) pixels\)", str(e))
        if found:
            raise too_many(int(found.group(1))) from None
        raise not_a_picture(str(e)) from None
    except UnidentifiedImageError:
        raise not_a_picture(f"not a {formats} file") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        text = str(e) or type(e).__name__
        if "truncated" in text.lower():
            raise not_a_picture("truncated file") from None
        raise not_a_picture(f"{type(e).__name__}: {text}") from None
    except MemoryError:
        raise not_a_picture("too large to decode") from None

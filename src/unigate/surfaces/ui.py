"""The dashboard's static files, served at /ui from the package's ui/ folder:

    GET /ui                      302 to /ui/
    GET /ui/                     index.html, `Cache-Control: no-cache` (it names the assets' version)
    GET /ui/a/{version}/{path}   an asset (JS, CSS, the vendored chart library); `version` is a hash
                                 of every file in ui/, so an asset's URL changes whenever any file does
                                 and the browser may keep it for a year (`immutable`)

The files are read (and gzipped) once, on the first request for the dashboard: a gateway whose
dashboard nobody opens pays nothing for it. No Node and no build step: the JavaScript is plain ES
modules as they are in the package. The page talks only to the gateway's own API (`/admin/...`,
`/v1/...`) with the key the operator signs in with, so there is nothing to authenticate here:
these files hold no data."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
PREFIX = "/ui"
ASSETS = PREFIX + "/a/"
#: the placeholder index.html carries where the assets' versioned base URL goes
BASE_MARK = b"{{ASSETS}}"

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
          ".png": "image/png", ".txt": "text/plain", ".json": "application/json"}
#: what the page may do: only talk to this gateway, run only its own scripts, never be framed
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None where compressing does not pay (images, tiny files)
    content_type: str


class Bundle:
    """Every file under ui/, in memory, with the version (hash) that names them."""

    def __init__(self, root: Path) -> None:
        files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(rel.encode() + b"\0" + body + b"\0")
            ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            packed = gzip.compress(body, 9, mtime=0) if ctype.startswith("text/") and len(body) > 512 else None
            files[rel] = Asset(body, packed if packed is not None and len(packed) < len(body) else None, ctype)
        self.version = digest.hexdigest()[:16]
        index = files.pop("index.html")
        body = index.body.replace(BASE_MARK, f"{ASSETS}{self.version}".encode())
        self.index = Asset(body, gzip.compress(body, 9, mtime=0), index.content_type)
        self.files = files


class UISurface:
    def __init__(self, root: Path = UI_DIR) -> None:
        self.root = root
        self._bundle: Bundle | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PREFIX, self.redirect),
                web.get(PREFIX + "/", self.index),
                web.get(ASSETS + "{version}/{path:.+}", self.asset)]

    def bundle(self) -> Bundle:
        if self._bundle is None:
            self._bundle = Bundle(self.root)
        return self._bundle

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        bundle = self.bundle()
        etag = f'"{bundle.version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        resp = _send(request, bundle.index, "no-cache")
        resp.headers["ETag"] = etag
        return resp

    async def asset(self, request: web.Request) -> web.StreamResponse:
        bundle = self.bundle()
        found = bundle.files.get(request.match_info["path"])
        if found is None:
            return web.Response(status=404, text="No such dashboard file.", headers=_SECURITY)
        # an older or newer version's URL (a page loaded before an upgrade, or another replica):
        # the current file, but not to be kept under that name
        cache = IMMUTABLE if request.match_info["version"] == bundle.version else "no-cache"
        return _send(request, found, cache)


def _send(request: web.Request, asset: Asset, cache: str) -> web.Response:
    headers = {**_SECURITY, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers, content_type=asset.content_type,
                        charset="utf-8" if asset.content_type.startswith("text/") else None)

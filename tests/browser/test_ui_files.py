"""How the gateway serves the dashboard's files (no browser needed): /ui redirects, index.html
is revalidated every time, assets live under a versioned URL and are cached for a year, text is
gzipped, and the page may only run its own scripts and talk to its own gateway."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.conftest import GatewayFactory
from unigate.surfaces.ui import UI_DIR, Bundle, UISurface


async def test_ui_routes_and_cache_headers(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env={"UNIGATE_MASTER_KEY": "sk-master-ui"})
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(gw.url + "/ui", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/ui/"
        async with s.get(gw.url + "/ui/", headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert r.headers["Cache-Control"] == "no-cache"
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            html = await r.text()
            etag = r.headers["ETag"]
        assert "{{ASSETS}}" not in html
        version = re.search(r'src="/ui/a/([0-9a-f]{16})/js/app\.js"', html)
        assert version is not None, html
        # a browser that has it asks again and is told it has not changed
        async with s.get(gw.url + "/ui/", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        app_js = f"/ui/a/{version.group(1)}/js/app.js"
        async with s.get(gw.url + app_js, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.content_type == "text/javascript"
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert r.headers["Content-Encoding"] == "gzip"
        async with s.get(gw.url + app_js, headers={"Accept-Encoding": "identity"}) as r:
            assert "Content-Encoding" not in r.headers
            assert (await r.read()) == (UI_DIR / "js" / "app.js").read_bytes()
        # another version's URL (a tab opened before an upgrade) gets today's file, not to be kept
        async with s.get(gw.url + "/ui/a/0123456789abcdef/js/app.js") as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
        for missing in (f"/ui/a/{version.group(1)}/nope.js", f"/ui/a/{version.group(1)}/../pyproject.toml"):
            async with s.get(gw.url + missing) as r:
                assert r.status == 404, missing
        # every file index.html names is served
        for ref in re.findall(r'(?:href|src)="(/ui/a/[^"]+)"', html):
            async with s.get(gw.url + ref) as r:
                assert r.status == 200, ref


def test_version_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="{{ASSETS}}/a.js"></script>')
    (tmp_path / "a.js").write_text("export const a = 1;")
    first = Bundle(tmp_path)
    assert first.index.body == f'<script src="/ui/a/{first.version}/a.js"></script>'.encode()
    (tmp_path / "a.js").write_text("export const a = 2;")
    assert Bundle(tmp_path).version != first.version


def test_files_load_on_first_use() -> None:
    surface = UISurface()
    assert surface._bundle is None  # a gateway nobody opens the dashboard of reads nothing
    bundle = surface.bundle()
    assert "js/app.js" in bundle.files and "vendor/uPlot.iife.min.js" in bundle.files
    assert surface.bundle() is bundle


def test_no_markup_built_from_strings() -> None:
    """Values reach the page as text nodes: no script of the dashboard writes HTML."""
    for path in (UI_DIR / "js").rglob("*.js"):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(("//", "*", "/*")))
        for sink in (".innerHTML", ".outerHTML", ".insertAdjacentHTML", "document.write"):
            assert sink not in code, f"{path.name} uses {sink}"

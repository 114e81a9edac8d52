"""The page server: the demo clinic page with the chat widget (`/`), the kiosk (`/kiosk`), assets.

    python -m omt.ops.web [--host 127.0.0.1] [--port 8080] [--socket-url http://127.0.0.1:5005]

Env: WEB_PORT (8080), SOCKET_URL (http://127.0.0.1:${RASA_PORT:-5005}), CLINIC_ORIGINS
(origins allowed to load the widget's module scripts from another site; the socket.io
channel reads the same list, omt/core/origins.py).

Why a server of our own rather than static files: every page needs a Content-Security-Policy
whose connect-src names the socket.io origin and nothing else, and the pages learn that
origin from a data attribute filled in here (no inline script, so script-src stays 'self').
Clinic name, phone and the kiosk's topic buttons come from the knowledge files, so their
wording lives in one place; so do the words the widget and the kiosk add to a card (the
emergency card's tap-to-call links, the kiosk's "go to the front desk"): knowledge/web.yml,
served as the module /static/texts.js. Everything the pages load is served from here (no CDN).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, MutableMapping, Sequence
from urllib.parse import urlsplit

from aiohttp import web

from omt.core.knowledge import REPO_ROOT, Knowledge, get_knowledge
from omt.core.origins import allowed_origins
from omt.core.web_texts import load_web_texts, texts_module

WEB_DIR = REPO_ROOT / "web"
PAGES_DIR = WEB_DIR / "pages"
STATIC_DIR = WEB_DIR / "static"
VENDOR_FILE = STATIC_DIR / "vendor" / "socket.io.min.js"
TEXTS_PATH = "/static/texts.js"  # generated from knowledge/web.yml, not a file
# The kiosk waits this long without a touch or key before it warns, then gives this long
# to answer "I'm still here" (WCAG 2.2.1 asks for at least 20 s).
KIOSK_IDLE_SECONDS = 60
KIOSK_WARNING_SECONDS = 30
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def socket_origins(socket_url: str) -> tuple[str, str]:
    """(http origin, ws origin) of the socket.io server, for the page and its CSP."""
    parts = urlsplit(socket_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"SOCKET_URL must be an http(s) origin such as http://127.0.0.1:5005, not {socket_url!r}")
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{parts.scheme}://{parts.netloc}", f"{ws_scheme}://{parts.netloc}"


def content_security_policy(socket_url: str) -> str:
    """Own scripts and styles only; the socket.io server is the only other place to connect."""
    http_origin, ws_origin = socket_origins(socket_url)
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {http_origin} {ws_origin}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace {{name}} with the value, HTML-escaped; an unknown name is a bug, so it raises."""
    return _PLACEHOLDER.sub(lambda m: html.escape(values[m.group(1)], quote=True), template)


def topic_buttons(knowledge: Knowledge) -> list[tuple[str, str]]:
    """(title, payload) of the kiosk's start-screen topics: the `capabilities` reply's topics."""
    return [(knowledge.entries[t].title, f"/{t}") for t in knowledge.replies["capabilities"].topics]


def topic_buttons_html(knowledge: Knowledge) -> str:
    return "\n".join(
        f'<li><button type="button" class="topic" data-payload="{html.escape(payload)}">'
        f"{html.escape(title)}</button></li>"
        for title, payload in topic_buttons(knowledge)
    )


@dataclass(frozen=True)
class Site:
    """What the pages need to know: the socket.io URL and the clinic."""

    socket_url: str
    knowledge: Knowledge
    origins: Sequence[str]

    def page_values(self) -> dict[str, str]:
        clinic = self.knowledge.clinic
        return {
            "socket_url": self.socket_url.rstrip("/"),
            "clinic_name": clinic.name,
            "clinic_phone": clinic.phone,
            "clinic_hours": clinic.hours,
            "idle_seconds": str(KIOSK_IDLE_SECONDS),
            "warning_seconds": str(KIOSK_WARNING_SECONDS),
        }

    def render(self, name: str) -> str:
        text = fill((PAGES_DIR / name).read_text(encoding="utf-8"), self.page_values())
        # The topic list is markup built (and escaped) above, so it goes in after `fill`.
        return text.replace("<!--topics-->", topic_buttons_html(self.knowledge))


def create_app(
    socket_url: str, knowledge: Knowledge | None = None, origins: Sequence[str] | None = None
) -> web.Application:
    """The aiohttp app; fails at start if the socket URL, the built assets or knowledge/web.yml are wrong."""
    csp = content_security_policy(socket_url)
    if not VENDOR_FILE.exists():
        raise FileNotFoundError(f"{VENDOR_FILE} is missing: run `make web` first")
    site = Site(socket_url, knowledge or get_knowledge(), tuple(origins if origins is not None else allowed_origins()))
    texts_js = texts_module(load_web_texts(site.knowledge))

    def add_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
        headers["Content-Security-Policy"] = csp
        headers.update(SECURITY_HEADERS)
        if request.path.startswith("/static/"):
            # Module scripts load in CORS mode: the widget embedded on a clinic's own site needs this.
            origin = request.headers.get("Origin", "")
            if origin in site.origins:
                headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
            headers["Cache-Control"] = "no-cache"
        else:
            headers["Cache-Control"] = "no-store"

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        """On every response, error pages and static files included."""
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            add_headers(request, exc.headers)
            raise
        add_headers(request, resp.headers)
        return resp

    def page(name: str) -> Handler:
        async def handler(_: web.Request) -> web.StreamResponse:
            return web.Response(text=site.render(name), content_type="text/html", charset="utf-8")

        return handler

    async def texts(_: web.Request) -> web.StreamResponse:
        return web.Response(text=texts_js, content_type="text/javascript", charset="utf-8")

    async def health(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/", page("index.html"))
    app.router.add_get("/kiosk", page("kiosk.html"))
    app.router.add_get("/healthz", health)
    app.router.add_get(TEXTS_PATH, texts)  # before the static folder, which it would otherwise fall into
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    rasa_port = os.environ.get("RASA_PORT", "5005")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="loopback by default, like the rest of the stack")
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", "8080")))
    parser.add_argument("--socket-url", default=os.environ.get("SOCKET_URL") or f"http://127.0.0.1:{rasa_port}")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.socket_url)
    except (ValueError, FileNotFoundError) as exc:  # KnowledgeError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Pages on http://{args.host}:{args.port}/ (widget) and /kiosk; socket.io at {args.socket_url}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

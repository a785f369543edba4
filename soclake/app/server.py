"""Building and serving the app: a Starlette application over one lake (create_app) and uvicorn
serving it (serve), bound to 127.0.0.1 unless asked otherwise, with a warning when it is not:
the app has no login, so whoever reaches the address reads the whole lake."""
from __future__ import annotations

import ipaddress
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from soclake.app import pool
from soclake.app.routes import API_ROUTES, PAGE_ROUTES
from soclake.app.state import LakeView
from soclake.lake import Lake

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Content-Security-Policy of every answer: the pages load nothing from anywhere but the app."""


class SecurityHeaders:
    """Adds the content policy and no-sniff headers to every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", POLICY.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)
        await self.app(scope, receive, sending)


def is_loopback(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(lake: Lake | str, host: str = "127.0.0.1", query_seconds: float = 10.0, max_rows: int = 10_000,
               max_download_rows: int = 1_000_000, cache_mb: int = 256) -> Starlette:
    """The app over `lake`. Requests must name a local host (or `host`) in their Host header,
    which keeps web pages elsewhere from reaching it through DNS rebinding."""
    lake = lake if isinstance(lake, Lake) else Lake(str(lake))
    hosts = ["127.0.0.1", "localhost", "[::1]"] + ([host] if not is_loopback(host) else [])
    if host in ("0.0.0.0", "::"):
        hosts = ["*"]
    app = Starlette(routes=API_ROUTES + PAGE_ROUTES,
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(SecurityHeaders)])
    app.state.view = LakeView(lake, query_seconds, max_rows, max_download_rows, cache_mb << 20)
    return app


def serve(lake: Lake | str, host: str = "127.0.0.1", port: int = 8000, query_seconds: float = 10.0,
          max_rows: int = 10_000, max_download_rows: int = 1_000_000, cache_mb: int = 256) -> None:
    """Serve the app until interrupted (Ctrl-C)."""
    app = create_app(lake, host, query_seconds, max_rows, max_download_rows, cache_mb)
    view: LakeView = app.state.view
    view.lake.con, view.lake.safe_con  # open both connections now: the first page need not wait for them
    pool.level_index(view)             # and find every thumbnail (seconds on a pool of millions)
    if not is_loopback(host):
        print(f"soclake app: warning: bound to {host}, not 127.0.0.1: anyone who can reach this address can read "
              "the whole lake (the app has no login); bind to 127.0.0.1 and use an SSH tunnel instead",
              file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

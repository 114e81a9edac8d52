"""omt/rasa/cors.py: with no origin allowed, no CORS layer and the same answers; with one, Rasa's own layer.

Each case runs a real Sanic server on loopback, set up once by Rasa's (or Rasa SDK's)
`configure_cors` and once by ours, and compares what a browser would see.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import aiohttp
import pytest
import rasa_sdk.endpoint
from sanic import Sanic, response
from sanic.request import Request

from omt.ops.processes import free_port
from omt.rasa import patches
from omt.rasa.cors import only_with_origins

ORIGIN = "https://clinic.example"
ASKS = [
    ("POST", {"Origin": ORIGIN}),
    ("POST", {}),
    ("OPTIONS", {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}),  # a browser's preflight
]
SANIC_CORS = {"Rasa": patches.RASA_CONFIGURE_CORS, "Rasa SDK": rasa_sdk.endpoint.configure_cors}
_apps = iter(range(1_000_000))


@pytest.fixture(autouse=True)
def _several_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanic rewrites its request handler for the first app it starts; test mode lets a process start several."""
    monkeypatch.setattr(Sanic, "test_mode", True)


def _app(configure: Callable[..., None], origins: Any) -> Sanic:
    app = Sanic(f"cors_test_{next(_apps)}")

    @app.post("/webhook")
    async def webhook(request: Request) -> Any:
        return response.json({"echo": request.json})

    configure(app, origins)
    return app


async def _asked(app: Sanic) -> list[tuple[str, int, list[tuple[str, str]], bytes]]:
    """(method, status, Access-Control-* headers, body) of each of ASKS, from the app served on loopback."""
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    seen = []
    try:
        async with aiohttp.ClientSession() as session:
            for method, headers in ASKS:
                url = f"http://127.0.0.1:{port}/webhook"
                async with session.request(method, url, json={"text": "hi"}, headers=headers) as reply:
                    cors = sorted((k, v) for k, v in reply.headers.items() if k.lower().startswith("access-control"))
                    seen.append((method, reply.status, cors, await reply.read()))
    finally:
        server.close()
        await server.wait_closed()
    return seen


@pytest.mark.parametrize("server", sorted(SANIC_CORS))
@pytest.mark.parametrize("origins", ["", None])
def test_no_origin_no_layer_and_the_same_answers(server: str, origins: Any) -> None:
    theirs = asyncio.run(_asked(_app(SANIC_CORS[server], origins)))
    ours = asyncio.run(_asked(_app(only_with_origins(SANIC_CORS[server]), origins)))
    assert [a for a in theirs if a[0] == "POST"] == [a for a in ours if a[0] == "POST"]
    assert all(cors == [] for _, _, cors, _ in theirs + ours), "Sanic-Cors grants no origin: no header either way"
    (_, their_status, _, _), (_, our_status, _, _) = theirs[-1], ours[-1]
    assert (their_status, our_status) == (200, 405), "a preflight is refused either way (no Allow-Origin header)"


@pytest.mark.parametrize("server", sorted(SANIC_CORS))
@pytest.mark.parametrize("origins", [ORIGIN, "*", [ORIGIN]])
def test_with_an_origin_the_layer_is_theirs(server: str, origins: Any) -> None:
    theirs = asyncio.run(_asked(_app(SANIC_CORS[server], origins)))
    ours = asyncio.run(_asked(_app(only_with_origins(SANIC_CORS[server]), origins)))
    assert ours == theirs
    assert ("Access-Control-Allow-Origin", ORIGIN) in ours[-1][2], "the preflight is granted"


def test_wrapping_twice_wraps_once() -> None:
    calls: list[Any] = []
    wrapped = only_with_origins(lambda app, origins: calls.append(origins))
    assert only_with_origins(wrapped) is wrapped
    wrapped(None, "")
    wrapped(None, None)
    wrapped(None, ORIGIN)
    assert calls == [ORIGIN]

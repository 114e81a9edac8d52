"""No CORS layer on a server that allows no origin: the same answers, about 1 ms less per request.

Rasa's server (`rasa.server.configure_cors`) and Rasa SDK's action server
(`rasa_sdk.endpoint.configure_cors`) both install Sanic-Cors on every start, even when no
origin is given (`--cors` unset, as in every start this project makes: scripts/run_stack.sh,
omt/ops/stack.py, docs/deployment.md). Sanic-Cors then grants no origin, so it adds no
header to any reply; it still runs its middleware on every request: about 1 ms of a
loopback round trip on these machines (an A/B in one process pair, README "Measured").
Its only other effect is to answer a browser's preflight `OPTIONS` itself, with no CORS
header, which the browser treats as a refusal; without it the route answers 405 or our
socket.io channel answers it (which checks its own origins, omt/channels/socketio.py).

`only_with_origins` wraps either function: Sanic-Cors as before when an origin is given,
nothing when none is. Rasa's is wrapped by `omt.rasa.patches.install()`, Rasa SDK's by
the action server's launcher, `python -m omt.rasa.actions_run`.
"""

from __future__ import annotations

from typing import Any, Callable

Origins = str | list[str] | None
ConfigureCors = Callable[..., None]

MARK = "omt_only_with_origins"


def only_with_origins(configure: ConfigureCors) -> ConfigureCors:
    """`configure(app, cors_origins)` called only when some origin is allowed (idempotent)."""
    if getattr(configure, MARK, False):
        return configure

    def configure_cors(app: Any, cors_origins: Origins = "") -> None:
        if cors_origins:
            configure(app, cors_origins)

    setattr(configure_cors, MARK, True)
    configure_cors.__wrapped__ = configure  # type: ignore[attr-defined]
    return configure_cors

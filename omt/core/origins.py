"""The clinic page origins: who may connect to the socket.io channel and load the widget's modules.

Read by the page server (omt/ops/web.py, CORS for the widget's module scripts) and by the
socket.io channel (omt/channels/socketio.py, engine.io's origin check) alike. Kept in the
core, with no web framework, so that neither has to import the other.
"""

from __future__ import annotations

import os
from typing import Final, Mapping

# The page server's own origins: where the pages come from unless CLINIC_ORIGINS says otherwise.
DEFAULT_ORIGINS: Final = ("http://127.0.0.1:8080", "http://localhost:8080")


def allowed_origins(env: Mapping[str, str] | None = None) -> list[str]:
    """`CLINIC_ORIGINS` (comma separated, trailing slashes dropped), else the page server's defaults."""
    raw = (env if env is not None else os.environ).get("CLINIC_ORIGINS", "")
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    return origins or list(DEFAULT_ORIGINS)

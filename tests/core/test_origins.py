"""The clinic page origins, one list for the page server and the socket.io channel (omt/core/origins.py)."""

from __future__ import annotations

from omt.core.origins import allowed_origins


def test_allowed_origins_from_env() -> None:
    assert allowed_origins({}) == ["http://127.0.0.1:8080", "http://localhost:8080"]
    assert allowed_origins({"CLINIC_ORIGINS": " https://a.example/, https://b.example ,"}) == [
        "https://a.example",
        "https://b.example",
    ]

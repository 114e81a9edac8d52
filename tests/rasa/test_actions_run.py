"""omt/rasa/actions_run.py: Rasa SDK's own CLI, same arguments, its CORS set-up wrapped (omt/rasa/cors.py)."""

from __future__ import annotations

import sys

import pytest
import rasa_sdk.endpoint

from omt.rasa import actions_run
from omt.rasa.cors import only_with_origins


def test_the_launcher_wraps_cors_then_runs_rasa_sdks_cli_with_the_same_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sdk_configure = rasa_sdk.endpoint.configure_cors
    monkeypatch.setattr(rasa_sdk.endpoint, "configure_cors", sdk_configure)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    seen: list[list[str]] = []
    monkeypatch.setattr(actions_run, "sdk_main", lambda: seen.append(list(sys.argv)))
    actions_run.main(["--actions", "actions", "--port", "5055"])
    assert seen == [["rasa_sdk", "--actions", "actions", "--port", "5055"]]
    assert rasa_sdk.endpoint.configure_cors.__wrapped__ is sdk_configure
    actions_run.main([])
    assert only_with_origins(rasa_sdk.endpoint.configure_cors).__wrapped__ is sdk_configure, "wrapped once"  # type: ignore[attr-defined]

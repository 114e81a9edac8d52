"""`install_patches`: our patches to Rasa in this test process, undone after the test (omt/rasa/patches.py)."""

from __future__ import annotations

import logging
from typing import Callable

import pytest
import rasa.core.actions.action as rasa_action
import rasa.server
from rasa.core.actions.action import RemoteAction
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.events import Event
from rasa.shared.nlu.training_data.features import Features
from rasa.utils.tensorflow.models import RasaModel

from omt.rasa import patches


@pytest.fixture()
def install_patches(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """`patches.install`, for the test to call (after setting its environment); Rasa is restored afterwards."""
    monkeypatch.setattr(RemoteAction, "_validate_action_result", RemoteAction.__dict__["_validate_action_result"])
    monkeypatch.setattr(Event, "resolve_by_type", Event.__dict__["resolve_by_type"])
    monkeypatch.setattr(DaskGraphRunner, "run", DaskGraphRunner.__dict__["run"])
    monkeypatch.setattr(Features, "_combine_sparse_features", Features.__dict__["_combine_sparse_features"])
    monkeypatch.setattr(RasaModel, "_rasa_predict", RasaModel.__dict__["_rasa_predict"])
    monkeypatch.setattr(rasa_action, "DEFAULT_REQUEST_TIMEOUT", rasa_action.DEFAULT_REQUEST_TIMEOUT)
    monkeypatch.setattr(rasa.server, "configure_cors", rasa.server.configure_cors)
    processor_log = logging.getLogger("rasa.core.processor")
    monkeypatch.setattr(processor_log, "filters", list(processor_log.filters))
    return patches.install

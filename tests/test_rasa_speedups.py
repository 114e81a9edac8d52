"""The faster replacements in omt/rasa_speedups.py give Rasa's own answers."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import rasa.shared.utils.common
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event

from omt import rasa_speedups

rasa_speedups.install()

VALID: list[dict[str, Any]] = [
    {},
    {"events": [], "responses": []},
    {
        "events": [{"event": "slot", "name": "last_topic", "value": "pain", "timestamp": None}],
        "responses": [{"text": "hi", "buttons": [{"title": "A", "payload": "/a"}], "custom": {"answer_id": "x"}}],
    },
]
INVALID: list[dict[str, Any]] = [
    {"events": "not a list"},
    {"events": [{"event": "slot"}]},  # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"responses": "not a list"},
]


def _rasa_says(result: dict[str, Any]) -> str | None:
    """The message Rasa's own check raises for `result`, or None when it passes."""
    try:
        rasa_speedups.RASA_VALIDATE_ACTION_RESULT(RemoteAction("x", None), result)
    except jsonschema.ValidationError as error:
        return error.message
    return None


@pytest.mark.parametrize("result", VALID)
def test_valid_responses_pass_both(result: dict[str, Any]) -> None:
    assert _rasa_says(result) is None
    assert RemoteAction("x", None)._validate_action_result(result) is True


@pytest.mark.parametrize("result", INVALID)
def test_invalid_responses_raise_rasas_error(result: dict[str, Any]) -> None:
    expected = _rasa_says(result)
    assert expected is not None
    with pytest.raises(jsonschema.ValidationError) as caught:
        RemoteAction("x", None)._validate_action_result(result)
    assert caught.value.message == expected


def test_every_event_type_resolves_to_rasas_class() -> None:
    names = {cls.type_name for cls in rasa.shared.utils.common.all_subclasses(Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert Event.resolve_by_type(name) is rasa_speedups.RASA_RESOLVE_BY_TYPE(name), name


def test_unknown_event_types_behave_as_in_rasa() -> None:
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", default=Event) is Event
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")


def test_a_subclass_defined_later_is_found() -> None:
    class LateEvent(Event):  # the table was built before this class existed
        type_name = "omt_test_late_event"

        def __eq__(self, other: Any) -> bool:
            return isinstance(other, LateEvent)

        def __hash__(self) -> int:
            return 0

        def as_story_string(self) -> None:
            return None

    Event.resolve_by_type("user")  # fills the table
    assert Event.resolve_by_type("omt_test_late_event") is LateEvent

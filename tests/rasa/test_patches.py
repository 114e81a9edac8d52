"""The faster replacements in omt/rasa/patches.py give Rasa's own answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import rasa.shared.utils.common
from rasa.core.actions.action import RemoteAction
from rasa.engine.exceptions import GraphComponentException, GraphRunError
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.shared.core.events import Event

from omt.rasa import patches

patches.install()

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
        patches.RASA_VALIDATE_ACTION_RESULT(RemoteAction("x", None), result)
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


def test_a_valid_response_is_remembered_and_an_invalid_one_never_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasa_speedups, "VALID_KEPT", 2)
    patches._VALID.clear()
    action = RemoteAction("x", None)
    for result in VALID:
        assert action._validate_action_result(result) is True
    assert len(patches._VALID) == 2, "bounded"
    assert action._validate_action_result(VALID[-1]) is True  # from memory
    for _ in range(2):  # an invalid response raises Rasa's error every time
        with pytest.raises(jsonschema.ValidationError):
            action._validate_action_result(INVALID[0])
    assert len(patches._VALID) == 2
    assert action._validate_action_result({"events": [], "responses": [], "x": {1, 2}}) is True  # not JSON text


def test_every_event_type_resolves_to_rasas_class() -> None:
    names = {cls.type_name for cls in rasa.shared.utils.common.all_subclasses(Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert Event.resolve_by_type(name) is patches.RASA_RESOLVE_BY_TYPE(name), name


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


class Const(GraphComponent):
    """A node that returns its configured value (the graph's leaves)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: Any, resource: Any, execution_context: Any) -> Const:
        return cls(config.get("value"))

    def provide(self) -> Any:
        return self.value


class Calls(GraphComponent):
    """A node that records its keyword arguments and call order, and fails on request."""

    log: ClassVar[list[str]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: Any, resource: Any, execution_context: Any) -> Calls:
        return cls(config["name"])

    def combine(self, **kwargs: Any) -> Any:
        Calls.log.append(self.name)
        if "boom" in kwargs.values():
            raise ValueError("boom")
        return {self.name: sorted(kwargs.items())}


def _runner(tmp_path: Path) -> DaskGraphRunner:
    """A diamond with a tail: a, b -> ab; b, ab -> abb; `msg` is an input; `other` is not needed by abb."""

    def calls(name: str, **needs: str) -> SchemaNode:
        return SchemaNode(needs=needs, uses=Calls, constructor_name="create", fn="combine", config={"name": name})

    schema = GraphSchema(
        {
            "a": SchemaNode(needs={}, uses=Const, constructor_name="create", fn="provide", config={"value": 1}),
            "b": SchemaNode(needs={}, uses=Const, constructor_name="create", fn="provide", config={"value": 2}),
            "ab": calls("ab", x="a", y="b", m="msg"),
            "abb": calls("abb", x="b", y="ab"),
            "other": calls("other", x="a"),
        }
    )
    return DaskGraphRunner(schema, LocalModelStorage(tmp_path), ExecutionContext(schema, "test"))


@pytest.mark.parametrize("targets", [None, ["abb"], ["other", "ab"], ["a"]])
def test_the_graph_runs_as_dask_runs_it(tmp_path: Path, targets: list[str] | None) -> None:
    runner = _runner(tmp_path)
    inputs = {"msg": "hello"}
    Calls.log = []
    expected, dask_calls = patches.RASA_GRAPH_RUN(runner, inputs, targets), sorted(Calls.log)
    Calls.log = []
    assert runner.run(inputs, targets) == expected
    assert sorted(Calls.log) == dask_calls, "the same nodes, each called once"
    assert runner.run(inputs, targets) == expected, "the cached order gives the same again"


def test_graph_errors_are_rasas(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    for run in (patches.RASA_GRAPH_RUN, patches.graph_run):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            run(runner, {"msg": "a"}, ["ab"])
        with pytest.raises(GraphComponentException, match="node ab") as caught:
            run(runner, {"msg": "boom"}, ["abb"])
        assert isinstance(caught.value.__cause__, ValueError)

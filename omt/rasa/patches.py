"""Three per-turn costs of Rasa 3.6 that do the same work again on every call, made once.

Each replaces a Rasa function by one that returns the same results, measured with a
profiler on this project (`make bench` shows the effect end to end):

1. `RemoteAction._validate_action_result` calls `jsonschema.validate(result, schema)` on
   every custom-action response. With the jsonschema Rasa 3.6.21 resolves to (4.17),
   `validate` first checks the schema itself against the 2020-12 meta-schema: about
   35 ms of CPU per turn, for a schema that never changes. Here the validator is built
   and checked once; the errors raised and their messages are Rasa's. Validating a
   response still took about 1.3 ms (each event is tried against every event type of a
   `oneOf`), and our action server sends the same few hundred responses again and
   again: a response found valid is remembered by its JSON text (`VALID_KEPT` of them,
   in this process's memory like the trackers), and only new ones are validated.
2. `Event.resolve_by_type` walks every subclass of `Event` (recursively, with
   `inspect.isabstract` on each) for every event it deserialises: the tracker store
   does that for each stored event on each turn, so a turn's cost grew with the length
   of the conversation (about 0.15 ms per stored event). Here the walk's result is kept
   in a table, rebuilt when a type name is not in it (a subclass imported later).
3. `DaskGraphRunner.run` runs a turn's three graphs (NLU, and the policies twice) through
   `dask.get`, after re-deriving the subgraph of its targets from the schema: a tenth of
   a turn's CPU went to scheduling nine nodes in a line. Here the order of each target
   list's subgraph is derived once and the nodes are called in it, each with the outputs
   of the nodes it needs, exactly as dask calls them; errors are Rasa's.

`install()` is idempotent and is called when our policy module is imported, which Rasa
does in every process that loads the model (`rasa run`, `rasa shell`, `rasa test`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Dict, List, Tuple, Type

import jsonschema
import rasa.shared.utils.common
from rasa.core.actions.action import RemoteAction
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event

RASA_VALIDATE_ACTION_RESULT = RemoteAction._validate_action_result
RASA_RESOLVE_BY_TYPE = Event.resolve_by_type
RASA_GRAPH_RUN = DaskGraphRunner.run


@lru_cache(maxsize=1)
def _validator() -> Any:
    """The validator class jsonschema would pick for Rasa's schema, built and checked once."""
    schema = RemoteAction.action_response_format_spec()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)  # the check `jsonschema.validate` repeats on every call
    return cls(schema)


VALID_KEPT = 2048
_VALID: OrderedDict[str, None] = OrderedDict()


def validate_action_result(self: RemoteAction, result: Dict[str, Any]) -> bool:
    """Rasa's `_validate_action_result` with the prebuilt validator (same errors); valid responses remembered."""
    try:
        key: str | None = json.dumps(result, sort_keys=True)
    except (TypeError, ValueError):
        key = None  # not JSON text: validate it every time
    if key is not None and key in _VALID:
        _VALID.move_to_end(key)
        return True
    error = jsonschema.exceptions.best_match(_validator().iter_errors(result))
    if error is None:
        if key is not None:
            _VALID[key] = None
            while len(_VALID) > VALID_KEPT:
                _VALID.popitem(last=False)
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
    )
    raise error


_EVENT_TYPES: Dict[str, Type[Event]] = {}


def _event_types() -> Dict[str, Type[Event]]:
    """type_name -> class, the first match in Rasa's own order of `all_subclasses(Event)`."""
    table: Dict[str, Type[Event]] = {}
    for cls in rasa.shared.utils.common.all_subclasses(Event):
        table.setdefault(cls.type_name, cls)
    return table


def resolve_by_type(type_name: str, default: Type[Event] | None = None) -> Type[Event] | None:
    """Rasa's `Event.resolve_by_type`, from a table instead of a walk per call."""
    cls = _EVENT_TYPES.get(type_name)
    if cls is None:
        _EVENT_TYPES.update(_event_types())  # a subclass imported since the last walk
        cls = _EVENT_TYPES.get(type_name)
    if cls is not None:
        return cls
    return RASA_RESOLVE_BY_TYPE(type_name, default)  # Rasa's own answer for unknown names


def _run_order(runner: DaskGraphRunner, targets: Tuple[str, ...]) -> List[Tuple[str, Tuple[str, ...]]]:
    """The targets' subgraph as (node, the nodes and inputs it needs) in an order that runs each after its needs.

    Kept on the runner per target list: a loaded model's schema does not change.
    """
    cache: Dict[Tuple[str, ...], List[Tuple[str, Tuple[str, ...]]]] = runner.__dict__.setdefault("_omt_orders", {})
    order = cache.get(targets)
    if order is None:
        nodes = runner._graph_schema.minimal_graph_schema(list(targets)).nodes
        order, seen = [], set()

        def visit(name: str) -> None:
            if name in seen or name not in nodes:  # a name not in the schema is an input placeholder
                return
            seen.add(name)
            needs = tuple(nodes[name].needs.values())
            for need in needs:
                visit(need)
            order.append((name, needs))

        for target in targets:
            visit(target)
        cache[targets] = order
    return order


def graph_run(
    self: DaskGraphRunner, inputs: Dict[str, Any] | None = None, targets: List[str] | None = None
) -> Dict[str, Any]:
    """Rasa's `DaskGraphRunner.run` without dask: the same node calls with the same arguments, same result."""
    run_targets = tuple(targets if targets else self._graph_schema.target_names)
    order = _run_order(self, run_targets)
    outputs: Dict[str, Any] = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, str) and any(name_ == value for name_, _ in order):
            raise GraphRunError(
                f"Input value '{value}' clashes with a node name. Make sure that none of the input names "
                f"passed to the `run` method are the same as node names in the graph schema."
            )
        outputs[name] = (name, value)  # what dask hands a node for an input: (name, value)
    try:
        for name, needs in order:
            outputs[name] = self._instantiated_nodes[name](*(outputs[need] for need in needs))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e
    return dict(outputs[target] for target in run_targets)


def install() -> None:
    """Use all three in this process (idempotent)."""
    RemoteAction._validate_action_result = validate_action_result
    Event.resolve_by_type = staticmethod(resolve_by_type)
    DaskGraphRunner.run = graph_run

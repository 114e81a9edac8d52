"""Every touch of Rasa's internals, behind one door: checked against the pinned Rasa, installed in one place.

Rasa 3.6.21 (requirements.txt) has no setting or public hook for a few things this project
needs, so we replace or read some of its internals. They all live here:

- `install()` checks `rasa.__version__` against `RASA_VERSION` and refuses to start
  (`StartRefusedError`, one line) on any other Rasa: the patches were written, and are tested,
  against that version's code. Then it installs every patch we make to Rasa. It is
  called explicitly, once per process, by the launcher `python -m omt.rasa.run` (Rasa's
  own CLI after `install()`), which `make run`, the test stack and the cluster use to
  start Rasa; no module patches Rasa when it is imported.
- `PRIVATE_NAMES` lists every private Rasa name the project touches. The touches are the
  small functions below, which the rest of the code calls; tests/rasa/test_patches.py
  fails if a private Rasa name is used anywhere else in omt/ or actions/.

What `install()` changes in Rasa:

1. Three per-turn costs that do the same work again on every call, made once (each
   returns Rasa's results, measured with a profiler on this project; `make bench` shows
   the effect end to end):

   a. `RemoteAction._validate_action_result` calls `jsonschema.validate(result, schema)` on
      every custom-action response. With the jsonschema Rasa 3.6.21 resolves to (4.17),
      `validate` first checks the schema itself against the 2020-12 meta-schema: about
      35 ms of CPU per turn, for a schema that never changes. Here the validator is built
      and checked once; the errors raised and their messages are Rasa's. Validating a
      response still took about 1.3 ms (each event is tried against every event type of a
      `oneOf`), and our action server sends the same few hundred responses again and
      again: a response found valid is remembered by its JSON text (`VALID_KEPT` of them,
      in this process's memory like the trackers), and only new ones are validated.
   b. `Event.resolve_by_type` walks every subclass of `Event` (recursively, with
      `inspect.isabstract` on each) for every event it deserialises: the tracker store
      does that for each stored event on each turn, so a turn's cost grew with the length
      of the conversation (about 0.15 ms per stored event). Here the walk's result is kept
      in a table, rebuilt when a type name is not in it (a subclass imported later).
   c. `DaskGraphRunner.run` runs a turn's three graphs (NLU, and the policies twice) through
      `dask.get`, after re-deriving the subgraph of its targets from the schema: a tenth of
      a turn's CPU went to scheduling nine nodes in a line. Here the order of each target
      list's subgraph is derived once and the nodes are called in it, each with the outputs
      of the nodes it needs, exactly as dask calls them; errors are Rasa's.
   d. `Features._combine_sparse_features` joins two featurizers' sparse matrices with
      `scipy.sparse.hstack`, whose generic block code (`bmat`: index-type checks, format
      checks, COO conversions) costs more than the join for one message's few hundred
      entries. DIET does it about five times a message: 2.6 ms of a 16 ms parse (A/B on
      one loaded model, `python -m omt.bench.nlu_profile`). Here the two COO matrices'
      entries are concatenated, the second's columns shifted: the matrix, its format and
      dtype are hstack's, and a mismatch raises Rasa's ValueError.
   e. `RasaModel._rasa_predict` calls DIET's prediction step, a `tf.function` Rasa builds with
      one input signature, so it has one concrete function; yet every call through the
      `tf.function` re-derives its input type and looks that function up again: the step
      took 3.4 ms, 2.2 ms as its concrete function (a whole parse 13.6 -> 12.8 ms, the two
      alternated in one process). Here, after Rasa's own call built it, the step is swapped
      for its concrete function (TensorFlow's public `get_concrete_function`); the outputs
      are the same numbers (tested against Rasa's).

2. The action server's time bound (omt/rasa/faults.py says why): Rasa reads the module
   constant `rasa.core.actions.action.DEFAULT_REQUEST_TIMEOUT` (300 s) on every call and has
   no setting for it (RasaHQ/rasa#9789, #10764; a `timeout` key in endpoints.yml is never
   read); it becomes `OMT_ACTION_TIMEOUT` (default 2 s).
3. `rasa.core.processor`'s traceback for an action server that is down or hung becomes one
   line (`faults.QuietActionServerDown`).
4. `rasa.server.configure_cors` installs Sanic-Cors only when an origin is allowed
   (omt/rasa/cors.py says why: with none, it adds no header and costs about 1 ms a request).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Sequence, Tuple, Type

import jsonschema
import rasa
import rasa.core.actions.action as rasa_action
import rasa.server
import rasa.shared.utils.common
from rasa.core.actions.action import RemoteAction
from rasa.core.brokers.broker import EventBroker
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.resource import Resource
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.features import Features
from rasa.utils.tensorflow.models import RasaModel

from omt.rasa.cors import only_with_origins
from omt.rasa.faults import QuietActionServerDown, action_timeout

if TYPE_CHECKING:
    from sqlalchemy.orm import Query, Session

RASA_VERSION = "3.6.21"  # requirements.txt pins the same (tests/rasa/test_patches.py checks)

# Every private Rasa name touched in omt/ and actions/, all of them in this module.
PRIVATE_NAMES: Dict[str, str] = {
    "RemoteAction._validate_action_result": "replaced by `validate_action_result` (1a)",
    "DaskGraphRunner._graph_schema": "read by `graph_run` (1c)",
    "Features._combine_sparse_features": "replaced by `combine_sparse_features` (1d)",
    "Features._cached_fingerprint": "cleared by `combine_sparse_features`, as Rasa's method clears it (1d)",
    "RasaModel._rasa_predict": "wrapped by `rasa_predict` (1e)",
    "RasaModel._tf_predict_step": "swapped for its concrete function by `rasa_predict` (1e)",
    "DaskGraphRunner._instantiated_nodes": "called by `graph_run` (1c); `graph_nodes`, for the NLU profile",
    "GraphNode._component": "`node_component`: the NLU profile's look at the lexical vote",
    "SQLTrackerStore._event_query": "`session_events`: the tracker window starts from Rasa's own query",
    "SQLTrackerStore._additional_events": "`AppendableSQLTrackerStore.events_to_save`: what a save writes",
    "TrackerStore._stream_new_events": "`stream_new_events`: what the event broker is sent",
    "FailSafeTrackerStore._tracker_store": "`wrapped_store`: the store inside Rasa's wrappers",
    "AwaitableTrackerStore._tracker_store": "`wrapped_store`, as above",
    "Policy._resource": "`policy_resource`: what a policy without training returns",
    "Policy._default_predictions": "`no_predictions`: the emergency policy's empty vote",
    "Policy._prediction": "`policy_prediction`: the emergency policy's vote",
}


class StartRefusedError(RuntimeError):
    """This process must not serve patients; the message says why in one line."""


def check_version(version: str | None = None) -> None:
    """Refuse any Rasa but the pinned one: the patches below read and replace its internals."""
    found = rasa.__version__ if version is None else version
    if found != RASA_VERSION:
        raise StartRefusedError(
            f"Rasa {found} is installed, but omt/rasa/patches.py is written for Rasa {RASA_VERSION} "
            "(requirements.txt): install the pinned version, or re-check every patch against the new one"
        )


# -- 1. per-turn costs made once (see the module docstring) ---------------------------------

RASA_VALIDATE_ACTION_RESULT = RemoteAction._validate_action_result
RASA_RESOLVE_BY_TYPE = Event.resolve_by_type
RASA_GRAPH_RUN = DaskGraphRunner.run
RASA_COMBINE_SPARSE = Features._combine_sparse_features
RASA_PREDICT = RasaModel._rasa_predict
RASA_CONFIGURE_CORS = rasa.server.configure_cors


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


def combine_sparse_features(self: Features, additional_features: Features) -> None:
    """Rasa's `_combine_sparse_features` without hstack's generic block code: the same COO matrix (1d)."""
    import numpy as np
    from scipy.sparse import coo_matrix

    first, second = self.features, additional_features.features
    if first.shape[0] != second.shape[0]:
        raise ValueError(  # Rasa's message
            f"Cannot combine sparse features as sequence dimensions do not "
            f"match: {first.shape[0]} != "
            f"{second.shape[0]}."
        )
    if not (first.format == second.format == "coo"):  # our featurizers all make COO; hstack keeps CSR as CSR
        RASA_COMBINE_SPARSE(self, additional_features)
        return
    dtype = np.result_type(first.dtype, second.dtype)
    self.features = coo_matrix(
        (
            np.concatenate([first.data, second.data]).astype(dtype, copy=False),
            (np.concatenate([first.row, second.row]), np.concatenate([first.col, second.col + first.shape[1]])),
        ),
        shape=(first.shape[0], first.shape[1] + second.shape[1]),
    )
    self._cached_fingerprint = None


def rasa_predict(self: RasaModel, batch_in: Tuple[Any, ...]) -> Dict[str, Any]:
    """Rasa's `_rasa_predict`; then its one-signature `tf.function` is swapped for the concrete function (1e)."""
    import tensorflow as tf

    outputs = RASA_PREDICT(self, batch_in)
    step = self._tf_predict_step
    if isinstance(step, tf.types.experimental.GenericFunction) and step.input_signature is not None:
        self._tf_predict_step = step.get_concrete_function()  # the one function that signature allows
    return outputs


# -- the private names, each behind one small function ------------------------------------


def graph_nodes(runner: DaskGraphRunner) -> Dict[str, Any]:
    """The runner's own table of callable nodes by name: omt.bench.nlu_profile wraps each in a timer."""
    return runner._instantiated_nodes


def node_component(node: Any) -> Any:
    """The component a graph node calls (the profile finds the lexical vote's model by it)."""
    return node._component


def wrapped_store(store: Any) -> Any:
    """The store inside one of Rasa's wrappers (`FailSafeTrackerStore`, `AwaitableTrackerStore`), else None."""
    return getattr(store, "_tracker_store", None)  # both of Rasa's wrappers keep it there


def session_events(store: SQLTrackerStore, session: Session, sender_id: str) -> Query:
    """Rasa's own query for the events of the conversation's latest session, unordered."""
    return store._event_query(session, sender_id, fetch_events_from_all_sessions=False).order_by(None)


async def stream_new_events(
    store: TrackerStore, event_broker: EventBroker, events: List[Event], sender_id: str
) -> None:
    """Publish `events` as Rasa's store publishes a save's new events."""
    await store._stream_new_events(event_broker, events, sender_id)


class AppendableSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL store with its private save step opened: `events_to_save` says which events a save writes."""

    def events_to_save(self, session: Session, tracker: DialogueStateTracker) -> Iterator[Event]:
        """Rasa's choice: the tracker's events after as many as are stored for its session."""
        return SQLTrackerStore._additional_events(self, session, tracker)

    def _additional_events(self, session: Session, tracker: DialogueStateTracker) -> Iterator[Event]:
        return self.events_to_save(session, tracker)


def policy_resource(policy: Policy) -> Resource:
    """The resource Rasa gave the policy (what a policy with nothing to train returns)."""
    return policy._resource


def no_predictions(policy: Policy, domain: Domain) -> List[float]:
    """A zero for every action of the domain."""
    return policy._default_predictions(domain)


def policy_prediction(
    policy: Policy, probabilities: Sequence[float], is_end_to_end_prediction: bool = False
) -> PolicyPrediction:
    """The policy's vote, as Rasa's own policies make it."""
    return policy._prediction(list(probabilities), is_end_to_end_prediction=is_end_to_end_prediction)


# -- installing ------------------------------------------------------------------------------


def install() -> None:
    """Check the Rasa version, then install every patch (idempotent); `StartRefusedError`: do not start.

    Call it once, before Rasa serves anything: `python -m omt.rasa.run` does.
    """
    check_version()
    try:
        seconds = action_timeout()
    except ValueError as exc:
        raise StartRefusedError(str(exc)) from None
    RemoteAction._validate_action_result = validate_action_result
    Event.resolve_by_type = staticmethod(resolve_by_type)
    DaskGraphRunner.run = graph_run
    Features._combine_sparse_features = combine_sparse_features
    RasaModel._rasa_predict = rasa_predict
    rasa_action.DEFAULT_REQUEST_TIMEOUT = seconds  # read by `RemoteAction.run` on every call
    rasa.server.configure_cors = only_with_origins(rasa.server.configure_cors)  # 4: read when the app is made
    processor_log = logging.getLogger("rasa.core.processor")
    if not any(isinstance(f, QuietActionServerDown) for f in processor_log.filters):
        processor_log.addFilter(QuietActionServerDown())

"""omt/rasa/patches.py: the pinned Rasa or no start, every private Rasa name in that one module,
no patch on import, and replacements that give Rasa's own answers."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar

import jsonschema
import numpy as np
import pytest
import rasa
import rasa.server
import rasa.shared.utils.common
import scipy.sparse
from rasa.core.actions.action import RemoteAction
from rasa.engine.exceptions import GraphComponentException, GraphRunError
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.shared.core.events import Event
from rasa.shared.nlu.training_data.features import Features

from omt.rasa import patches, run
from tests.conftest import TinyDiet

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _patched(install_patches: Callable[[], None]) -> None:
    install_patches()


# --- the door: version, private names, one place to install -------------------------------


def test_the_pinned_rasa_is_the_one_in_requirements_txt() -> None:
    pins = re.findall(r"^rasa==(\S+)$", (REPO / "requirements.txt").read_text(encoding="utf-8"), re.MULTILINE)
    assert pins == [patches.RASA_VERSION]


def test_another_rasa_version_is_refused_before_anything_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasa, "__version__", "3.7.0")
    monkeypatch.setattr(DaskGraphRunner, "run", patches.RASA_GRAPH_RUN)
    with pytest.raises(patches.StartRefusedError, match=r"Rasa 3\.7\.0 is installed") as refused:
        patches.install()
    assert "\n" not in str(refused.value)
    assert DaskGraphRunner.run is patches.RASA_GRAPH_RUN, "nothing installed"


def test_the_launcher_installs_then_runs_rasas_cli_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(run, "rasa_main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(DaskGraphRunner, "run", patches.RASA_GRAPH_RUN)
    run.main(["run", "--model", "models/omt.tar.gz"])
    assert seen == [["rasa", "run", "--model", "models/omt.tar.gz"]]
    assert DaskGraphRunner.run is patches.graph_run
    assert rasa.server.configure_cors.__wrapped__ is patches.RASA_CONFIGURE_CORS


@pytest.mark.parametrize("bad", [{"version": "3.6.20"}, {"timeout": "soon"}])
def test_the_launcher_refuses_in_one_line_without_starting_rasa(
    monkeypatch: pytest.MonkeyPatch, bad: dict[str, str]
) -> None:
    monkeypatch.setattr(rasa, "__version__", bad.get("version", patches.RASA_VERSION))
    monkeypatch.setenv("OMT_ACTION_TIMEOUT", bad.get("timeout", "2"))
    monkeypatch.setattr(run, "rasa_main", lambda: pytest.fail("Rasa started"))
    with pytest.raises(SystemExit) as stopped:
        run.main(["run"])
    message = str(stopped.value.code)
    assert message.startswith("omt: refusing to start: ") and "\n" not in message
    assert (bad.get("version") or "OMT_ACTION_TIMEOUT") in message


def _rasa_private_names() -> set[str]:
    """Every `_name` Rasa defines: a method, or an attribute set on `self`."""
    names: set[str] = set()
    for path in Path(rasa.__file__).parent.rglob("*.py"):
        source = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r"def (_[A-Za-z]\w*)\(", source))
        names.update(re.findall(r"self\.(_[A-Za-z]\w*)\s*[:=]", source))
    return {name for name in names if not name.startswith("__")}


# Ours, and only named like one of Rasa's private names.
NOT_RASAS = {"_create_database"}  # omt/ops/cluster.py: makes the cluster's PostgreSQL database


def _private_touches(path: Path, rasa_names: set[str]) -> set[str]:
    """Rasa's private names that `path` reads, writes, looks up by name or overrides."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.endswith("attr"):
            found.update(a.value for a in node.args[1:2] if isinstance(a, ast.Constant) and isinstance(a.value, str))
        elif isinstance(node, ast.ClassDef):
            found.update(f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return (found & rasa_names) - NOT_RASAS


def test_private_rasa_names_are_touched_in_patches_py_only() -> None:
    rasa_names = _rasa_private_names()
    sources = [*(REPO / "omt").rglob("*.py"), *(REPO / "actions").rglob("*.py")]
    elsewhere = {
        str(path.relative_to(REPO)): touched
        for path in sources
        if path.name != "patches.py" and (touched := _private_touches(path, rasa_names))
    }
    assert elsewhere == {}, "use (or add) a function of omt/rasa/patches.py"
    listed = {name.rsplit(".", 1)[1] for name in patches.PRIVATE_NAMES}
    assert _private_touches(REPO / "omt" / "rasa" / "patches.py", rasa_names) == listed, "PRIVATE_NAMES lists them all"


def test_importing_our_modules_patches_nothing() -> None:
    """Rasa imports config.yml's and endpoints.yml's classes: that must not change Rasa (the launcher does)."""
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for layer in ("rasa", "channels")
        for path in (REPO / "omt" / layer).glob("*.py")
        if path.stem not in ("__init__", "run")
    )
    check = (
        f"import {', '.join(modules)}\n"
        "import rasa.core.actions.action as a, logging\n"
        "from rasa.engine.runner.dask import DaskGraphRunner\n"
        "from rasa.shared.core.events import Event\n"
        "from omt.rasa import patches\n"
        "assert a.RemoteAction._validate_action_result is patches.RASA_VALIDATE_ACTION_RESULT\n"
        "assert Event.resolve_by_type is patches.RASA_RESOLVE_BY_TYPE\n"
        "assert DaskGraphRunner.run is patches.RASA_GRAPH_RUN\n"
        "from rasa.shared.nlu.training_data.features import Features\n"
        "assert Features._combine_sparse_features is patches.RASA_COMBINE_SPARSE\n"
        "from rasa.utils.tensorflow.models import RasaModel\n"
        "assert RasaModel._rasa_predict is patches.RASA_PREDICT\n"
        "assert a.DEFAULT_REQUEST_TIMEOUT == 300 and not logging.getLogger('rasa.core.processor').filters\n"
        "import rasa.server, rasa_sdk.endpoint\n"
        "assert rasa.server.configure_cors is patches.RASA_CONFIGURE_CORS\n"
        "assert not hasattr(rasa_sdk.endpoint.configure_cors, '__wrapped__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


# --- 1. the speedups give Rasa's own answers ----------------------------------------------

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
    monkeypatch.setattr(patches, "VALID_KEPT", 2)
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
    for graph_run in (patches.RASA_GRAPH_RUN, patches.graph_run):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            graph_run(runner, {"msg": "a"}, ["ab"])
        with pytest.raises(GraphComponentException, match="node ab") as caught:
            graph_run(runner, {"msg": "boom"}, ["abb"])
        assert isinstance(caught.value.__cause__, ValueError)


# --- 1d. sparse features joined as hstack joins them -------------------------------------


def _sparse(rows: int, cols: int, seed: int, dtype: Any, fmt: str) -> Any:
    return scipy.sparse.random(rows, cols, density=0.3, random_state=seed, dtype=dtype, format=fmt)


@pytest.mark.parametrize(
    ("shapes", "dtypes", "fmt"),
    [
        (((1, 40), (1, 7)), (np.float64, np.float64), "coo"),  # sentence features
        (((6, 40), (6, 9)), (np.float32, np.float64), "coo"),  # sequence features, mixed dtypes
        (((6, 3), (6, 5)), (np.int64, np.float32), "csr"),
        (((4, 0), (4, 5)), (np.float64, np.float64), "coo"),  # an empty first part
    ],
)
def test_sparse_features_combine_as_rasas(shapes: Any, dtypes: Any, fmt: str) -> None:
    (r1, c1), (r2, c2) = shapes
    first, second = _sparse(r1, c1, 1, dtypes[0], fmt), _sparse(r2, c2, 2, dtypes[1], fmt)
    ours, rasas = (Features(first.copy(), "sequence", "text", "a") for _ in range(2))
    rasas_fingerprint = rasas.fingerprint()
    patches.RASA_COMBINE_SPARSE(rasas, Features(second, "sequence", "text", "b"))
    patches.combine_sparse_features(ours, Features(second, "sequence", "text", "b"))
    assert ours.features.format == rasas.features.format == ("csr" if fmt == "csr" else "coo")
    assert ours.features.dtype == rasas.features.dtype and ours.features.shape == rasas.features.shape
    assert (ours.features != rasas.features).nnz == 0
    assert ours.fingerprint() == rasas.fingerprint() != rasas_fingerprint


def test_sparse_features_of_different_lengths_raise_rasas_error() -> None:
    for combine in (patches.RASA_COMBINE_SPARSE, patches.combine_sparse_features):
        with pytest.raises(ValueError, match="sequence dimensions do not match: 3 != 2"):
            combine(
                Features(_sparse(3, 4, 1, float, "coo"), "s", "text", "a"),
                Features(_sparse(2, 4, 2, float, "coo"), "s", "text", "b"),
            )


# --- 1e. DIET's prediction step called as its concrete function --------------------------

ODD = ["", "???", "hello " * 80, "🙂🙂", "cost cost cost hurt hello", "a", "unknownword"]


def test_diets_step_becomes_its_concrete_function_with_rasas_numbers(tiny_diet: TinyDiet) -> None:
    import tensorflow as tf
    from rasa.utils.tensorflow.models import RasaModel

    diet, process = tiny_diet.diet, tiny_diet.process
    texts = [*tiny_diet.texts, *ODD]
    RasaModel._rasa_predict = patches.RASA_PREDICT  # Rasa's own, whatever the fixture installed
    rasas = [process(t) for t in texts]
    assert not isinstance(diet.model._tf_predict_step, tf.types.experimental.ConcreteFunction)
    RasaModel._rasa_predict = patches.rasa_predict
    ours = [process(t) for t in texts]
    assert isinstance(diet.model._tf_predict_step, tf.types.experimental.ConcreteFunction)
    assert ours == rasas
    assert any(ranking for ranking in rasas)  # the comparison is of real rankings

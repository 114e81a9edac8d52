"""Free ports for the stacks the tests start (omt/ops/processes.py): taken between probe and bind, the server moves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from omt.ops.processes import ephemeral_range, free_port, port_free, start_on_free_port, wait_until
from omt.ops.stack import Stack


def test_free_ports_are_free_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert port_free(port) and (port < low or low <= 20_000)


def test_a_server_whose_port_was_taken_starts_again_on_another(tmp_path: Path) -> None:
    log, ports, tried = tmp_path / "server.log", [1111], []

    def start() -> str:
        tried.append(ports[-1])
        if len(tried) < 3:
            with log.open("a") as out:  # what Sanic writes when it cannot bind
                out.write("OSError: [Errno 98] error while attempting to bind on address: address already in use\n")
            raise RuntimeError("process exited with 1")
        return "started"

    assert start_on_free_port(start, lambda: ports.append(ports[-1] + 1), log) == "started"
    assert tried == [1111, 1112, 1113]


def test_any_other_failure_is_not_retried(tmp_path: Path) -> None:
    log, calls = tmp_path / "server.log", []
    log.write_text("Errno 98 ... address already in use (an earlier start, already dealt with)\n")

    def start() -> None:
        calls.append(1)
        with log.open("a") as out:
            out.write("ModuleNotFoundError: no module named 'x'\n")
        raise RuntimeError("process exited with 1")

    with pytest.raises(RuntimeError):
        start_on_free_port(start, lambda: None, log)
    assert calls == [1], "only what the log said during this attempt counts"


def test_the_stack_measures_each_running_role_and_stops_them_all(tmp_path: Path) -> None:
    stack = Stack(rasa_port=free_port(), actions_port=free_port(), workdir=tmp_path)
    idle = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"]
    failed = stack._spawn([sys.executable, "-c", "pass"], "actions.log")  # a first attempt that exited
    failed.wait(timeout=60)
    actions, rasa = stack._spawn(idle, "actions.log"), stack._spawn(idle, "rasa.log")
    try:
        for proc, log in ((actions, "actions.log"), (rasa, "rasa.log")):
            wait_until(lambda log=log: "ready" in (tmp_path / log).read_text(), 60, proc, log)  # type: ignore[misc]
        assert set(stack.memory()) == {"actions", "rasa"} and all(mb > 0 for mb in stack.memory().values())
    finally:
        stack.stop()
    assert actions.returncode is not None and rasa.returncode is not None
    assert stack.procs == [] and stack.memory() == {}

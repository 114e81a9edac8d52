"""omt/ops/processes.py on real, short-lived child processes (`python -c ...`) on loopback.

What is asserted are outcomes and relations (ready or not, which process survives, which
tree holds more memory), never how long anything took: the machine may be loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from omt.ops.processes import (
    ServerError,
    alive,
    cmdline,
    free_port,
    kill,
    rss_mb,
    spawn,
    stop,
    stop_groups,
    wait_for_http,
    wait_for_port,
    wait_until,
)

PY = sys.executable
READY_S = 60  # generous: a loaded machine starts Python slowly
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
# A process group whose leader obeys SIGTERM and whose child ignores it (a worker that hangs).
PARENT_OF_STUBBORN = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {IGNORE_TERM + 'time.sleep(600)'!r}])\n"
    "print('child', child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
ALLOCATE_200_MB = "import time; block = b'x' * (200 * 1024 * 1024); print('ready', flush=True); time.sleep(600)"
IDLE = "import time; print('ready', flush=True); time.sleep(600)"


@pytest.fixture()
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever the test did, their groups are killed and reaped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        kill(proc)


def run(procs: list[subprocess.Popen[bytes]], code: str, log: Path) -> subprocess.Popen[bytes]:
    proc = spawn([PY, "-c", code], log)
    procs.append(proc)
    return proc


def wait_for_line(log: Path, start: str, proc: subprocess.Popen[bytes]) -> str:
    """The first line of `log` that starts with `start`, once the process has written it."""
    wait_until(lambda: any(line.startswith(start) for line in _lines(log)), READY_S, proc, f"{start!r} in {log}")
    return next(line for line in _lines(log) if line.startswith(start))


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def listener(port: int) -> str:
    """A child that listens on 127.0.0.1:`port` after a moment (the wait has to wait)."""
    return (
        "import socket, time\ntime.sleep(0.5)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "while True: s.accept()[0].close()\n"
    )


# --- spawn -------------------------------------------------------------------------------------


def test_a_spawned_server_has_its_own_process_group_and_writes_to_its_log(tmp_path: Path, started: list) -> None:
    log = tmp_path / "server.log"
    log.write_text("an earlier run\n")
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); print(sys.stdin.read())"
    proc = run(started, code, log)
    assert proc.wait(timeout=READY_S) == 0
    assert _lines(log)[0] == "an earlier run", "appended, not overwritten"
    assert {"to stdout", "to stderr"} <= set(_lines(log)) and _lines(log)[-1] == "", "stderr too; stdin is closed"
    sleeper = run(started, IDLE, tmp_path / "sleeper.log")
    wait_for_line(tmp_path / "sleeper.log", "ready", sleeper)  # its command line is its own from now on
    assert os.getpgid(sleeper.pid) == sleeper.pid != os.getpgid(0), "a group of its own, not the caller's"
    assert alive(sleeper.pid) and IDLE in cmdline(sleeper.pid)


# --- wait ----------------------------------------------------------------------------------------


def test_wait_for_port_returns_once_the_server_listens(tmp_path: Path, started: list) -> None:
    port = free_port()
    proc = run(started, listener(port), tmp_path / "listener.log")
    wait_for_port(port, READY_S, proc, "listener")
    assert proc.poll() is None


def test_wait_for_http_returns_once_the_server_answers(tmp_path: Path, started: list) -> None:
    port = free_port()
    proc = spawn([PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)], tmp_path / "http.log", cwd=tmp_path)
    started.append(proc)
    wait_for_http(f"http://127.0.0.1:{port}/", READY_S, proc)
    assert proc.poll() is None


def test_a_server_that_exits_fails_the_wait_at_once_with_its_exit_code(tmp_path: Path, started: list) -> None:
    proc = run(started, "raise SystemExit(3)", tmp_path / "dies.log")
    with pytest.raises(ServerError, match="exited with 3"):
        wait_for_port(free_port(), 3600, proc, "dies")  # not an hour: the exit ends the wait
    proc = run(started, "raise SystemExit(4)", tmp_path / "dies-too.log")
    with pytest.raises(ServerError, match="exited with 4"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", 3600, proc)


def test_nothing_listening_fails_the_wait_after_its_timeout() -> None:
    with pytest.raises(ServerError, match="not ready"):
        wait_for_port(free_port(), 0.5)
    with pytest.raises(ServerError, match="not ready"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", 0.5)


# --- stop ----------------------------------------------------------------------------------------


def test_stop_ends_a_server_that_obeys_sigterm_with_sigterm(tmp_path: Path, started: list) -> None:
    proc = run(started, IDLE, tmp_path / "idle.log")
    wait_for_line(tmp_path / "idle.log", "ready", proc)
    stop([proc])
    assert proc.returncode == -signal.SIGTERM, "a clean shutdown, no SIGKILL needed"


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path, started: list) -> None:
    proc = run(started, IGNORE_TERM + "time.sleep(600)", tmp_path / "stubborn.log")
    wait_for_line(tmp_path / "stubborn.log", "ready", proc)
    stop([proc], grace=1)
    assert proc.returncode == -signal.SIGKILL


def test_stop_reaches_the_whole_group_a_child_that_ignores_sigterm_included(tmp_path: Path, started: list) -> None:
    log = tmp_path / "parent.log"
    proc = run(started, PARENT_OF_STUBBORN, log)
    child = int(wait_for_line(log, "child", proc).split()[1])
    wait_for_line(log, "ready", proc)  # the child's SIGTERM handler is in place
    assert alive(child) and os.getpgid(child) == proc.pid
    stop([proc], grace=1)
    assert proc.returncode == -signal.SIGTERM, "the leader obeyed"
    assert not alive(child), "the child that ignored SIGTERM was killed with its group"


def test_stop_groups_reports_only_the_groups_it_reached(tmp_path: Path, started: list) -> None:
    running = run(started, IDLE, tmp_path / "running.log")
    gone = run(started, "pass", tmp_path / "gone.log")
    gone.wait(timeout=READY_S)
    assert stop_groups([running.pid, gone.pid], grace=5) == [running.pid]
    assert running.wait(timeout=READY_S) is not None


def test_kill_is_a_crash_of_the_whole_group(tmp_path: Path, started: list) -> None:
    log = tmp_path / "parent.log"
    proc = run(started, PARENT_OF_STUBBORN, log)
    child = int(wait_for_line(log, "child", proc).split()[1])
    kill(proc)
    assert proc.returncode == -signal.SIGKILL and not alive(child)


def test_a_zombie_does_not_count_as_alive(tmp_path: Path, started: list) -> None:
    proc = run(started, "pass", tmp_path / "zombie.log")
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped yet
    assert not alive(proc.pid) and proc.poll() == 0


# --- memory --------------------------------------------------------------------------------------


def test_memory_counts_what_a_process_holds(tmp_path: Path, started: list) -> None:
    idle = run(started, IDLE, tmp_path / "idle.log")
    big = run(started, ALLOCATE_200_MB, tmp_path / "big.log")
    wait_for_line(tmp_path / "idle.log", "ready", idle)
    wait_for_line(tmp_path / "big.log", "ready", big)
    assert rss_mb(idle.pid) > 0
    assert rss_mb(big.pid) > rss_mb(idle.pid) + 150


def test_memory_counts_the_children_of_a_process(tmp_path: Path, started: list) -> None:
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {ALLOCATE_200_MB!r}])\n"
        "time.sleep(600)\n"
    )
    idle = run(started, IDLE, tmp_path / "idle.log")
    proc = run(started, parent, tmp_path / "parent.log")
    wait_for_line(tmp_path / "idle.log", "ready", idle)
    wait_for_line(tmp_path / "parent.log", "ready", proc)  # the child's line
    assert rss_mb(proc.pid) > rss_mb(idle.pid) + 150


def test_a_process_that_is_gone_holds_no_memory(tmp_path: Path, started: list) -> None:
    proc = run(started, "pass", tmp_path / "gone.log")
    proc.wait(timeout=READY_S)
    assert rss_mb(proc.pid) == 0.0

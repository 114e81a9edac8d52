"""Start, wait for, stop and measure the servers of the local stack, the cluster and the benchmarks: one way each.

- start: `spawn` runs a server in a session of its own, so its process group is its own
  and a stop reaches every process it started; stdin closed, output appended to a log;
- ready: `wait_for_port` (accepts TCP) or `wait_for_http` (answers), failing at once
  when the process exits meanwhile;
- stop: `stop` sends SIGTERM to each process group, waits until no process of those
  groups runs (a grandchild included) for up to `grace` seconds, SIGKILLs what is left
  and reaps; `kill` is a crash (SIGKILL at once);
- memory: `rss_mb` is the resident set of a process and all its descendants, in MB
  (VmRSS from /proc; pages shared between the processes of one tree count in each). The
  same figure for every server in every report: `Stack.memory`, `Cluster.memory`, the
  benchmarks and `omt.ops.cluster status`.

A free port can be taken between the moment it is found and the moment the server binds
it (Rasa takes seconds to get there). Two measures: `free_port` picks ports below the
kernel's ephemeral range, which every outgoing connection draws its local port from, so
only another server's explicit bind can take one; and `start_on_free_port` starts a
server again on another port when its log says the port was taken.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

LOWEST_PORT = 20_000  # free_port's range: from here to just below the ephemeral range
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORT_TAKEN = ("address already in use", "errno 98", "could not bind", "bind() to")  # Sanic, Redis, nginx
PORT_ATTEMPTS = 4
STOP_GRACE_S = 15.0  # what a server gets after SIGTERM to finish the requests it has
KILL_WAIT_S = 10.0  # how long a SIGKILLed process may take to be gone
POLL_S = 0.2
PROC = Path("/proc")
T = TypeVar("T")


class ServerError(RuntimeError):
    """A server exited before it was ready, or was not ready in time."""


# --- ports -------------------------------------------------------------------------------------


def ephemeral_range() -> tuple[int, int]:
    """The local ports the kernel gives outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (with SO_REUSEADDR, as servers bind)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free TCP port on loopback, below the ephemeral range (see the module docstring)."""
    top = ephemeral_range()[0] - 1
    for _ in range(200):
        port = random.randint(LOWEST_PORT, top) if top > LOWEST_PORT else 0
        if port and port_free(port):
            return port
    with socket.socket() as sock:  # no such range on this machine: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_was_taken(log: Path, offset: int) -> bool:
    """Whether what `log` got after `offset` says a server could not bind its port."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace").lower()
    except OSError:
        return False
    return any(sign in text for sign in PORT_TAKEN)


def start_on_free_port(start: Callable[[], T], new_port: Callable[[], None], log: Path) -> T:
    """`start()`; when it fails because its port was taken meanwhile (per `log`), `new_port()` and again."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        offset = log.stat().st_size if log.exists() else 0
        try:
            return start()
        except Exception:
            if attempt == PORT_ATTEMPTS or not port_was_taken(log, offset):
                raise
            new_port()
    raise AssertionError("unreachable")


# --- start and wait ------------------------------------------------------------------------------


def spawn(
    args: Sequence[str], log: Path | None, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`args` in a session (and process group) of its own, stdin closed, output appended to `log` (None: dropped)."""
    with open(log if log is not None else os.devnull, "ab") as out:
        return subprocess.Popen(
            list(args), cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_until(ready: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    """Poll `ready()` until true; ServerError when `proc` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{what}: the process exited with {proc.returncode}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise ServerError(f"{what}: not ready within {timeout:.0f}s")
        time.sleep(POLL_S)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def http_answers(url: str) -> bool:
    """Whether `url` answers with a success or a redirect."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status < 500)
    except (urllib.error.URLError, OSError):  # refused, reset, or an HTTP error status
        return False


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = "") -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port` (ServerError if `proc` dies first)."""
    wait_until(lambda: port_open(port), timeout, proc, f"{what or 'server'} on port {port}")


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers (ServerError if `proc` dies first or it does not in time)."""
    wait_until(lambda: http_answers(url), timeout, proc, url)


# --- the process table ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ... (empty: no such process)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _table() -> dict[int, list[str]]:
    """Every process's `_stat` fields, by pid."""
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            table[int(entry.name)] = fields
    return table


def _running(fields: list[str]) -> bool:
    return fields[0] not in ("Z", "X")  # a zombie has exited; only its parent has not reaped it yet


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    fields = _stat(pid)
    return bool(fields) and _running(fields)


def cmdline(pid: int) -> str:
    """`pid`'s command line, arguments joined by spaces ('' when it is gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """The children of `pid`, their children, and so on."""
    children: dict[int, list[int]] = {}
    for child, fields in _table().items():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def running_groups(pgids: Iterable[int]) -> set[int]:
    """Those of `pgids` that still have a running process."""
    wanted = set(pgids)
    return {int(fields[2]) for fields in _table().values() if int(fields[2]) in wanted and _running(fields)}


# --- stop ----------------------------------------------------------------------------------------


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; whether it reached it (gone, or not ours: False)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _wait_groups(pgids: list[int], seconds: float) -> set[int]:
    """Wait up to `seconds` until none of `pgids` has a running process; those that still have one."""
    deadline = time.monotonic() + seconds
    while (left := running_groups(pgids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def stop_groups(pgids: Iterable[int], grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM each process group; SIGKILL the groups with a process still running after `grace` seconds.

    On return no process of those groups runs (so their ports are free again), barring one
    the kernel holds in an uninterruptible wait. Returns the groups the SIGTERM reached
    (the others were gone already, or not ours to signal).
    """
    groups = [pgid for pgid in pgids if signal_group(pgid, signal.SIGTERM)]
    for pgid in _wait_groups(groups, grace):
        signal_group(pgid, signal.SIGKILL)
    _wait_groups(groups, KILL_WAIT_S)
    return groups


def stop(procs: Iterable[subprocess.Popen[bytes]], grace: float = STOP_GRACE_S) -> None:
    """Stop servers started by `spawn` with every process they started (see `stop_groups`), and reap them."""
    procs = list(procs)
    stop_groups([proc.pid for proc in procs], grace)
    for proc in procs:
        proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a server's whole process group at once (a crash, not a shutdown) and reap it."""
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_groups([proc.pid], KILL_WAIT_S)


# --- measure -------------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # gone, a zombie, or a kernel thread


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB (see the module doc); 0.0 when it is gone."""
    return round(sum(_rss_kb(p) for p in [pid, *descendants(pid)]) / 1024, 1)

"""Start and stop a whole local stack (action server + Rasa) for tests, eval and benchmarks.

`make run` uses scripts/run_stack.sh in the foreground; this module does the same for
programs that need a stack in the background, on free loopback ports, with their own
tracker database, and tears everything down afterwards.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

from omt.core.knowledge import REPO_ROOT

VENV_BIN = REPO_ROOT / ".venv" / "bin"
# Rasa through our launcher: the version check and our patches to Rasa first (omt/rasa/run.py).
RASA_COMMAND = (str(VENV_BIN / "python"), "-m", "omt.rasa.run")
LOWEST_PORT = 20_000  # free_port's range: from here to just below the ephemeral range
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORT_TAKEN = ("address already in use", "errno 98", "could not bind", "bind() to")  # Sanic, Redis, nginx
PORT_ATTEMPTS = 4
T = TypeVar("T")


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


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers, or raise (also if the process died meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Stack:
    """A running Rasa + action server pair; URLs and log files for the tests."""

    rasa_port: int
    actions_port: int
    workdir: Path
    model: Path = REPO_ROOT / "models" / "omt.tar.gz"
    credentials: Path = REPO_ROOT / "credentials.yml"
    endpoints: Path = REPO_ROOT / "endpoints.yml"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT  # another Rasa project (the benchmark's reference bot) runs from its own folder
    rasa_command: tuple[str, ...] = RASA_COMMAND  # stock Rasa, `(VENV_BIN / "rasa",)`, for another project
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def rest_url(self) -> str:
        return f"{self.url}/webhooks/rest/webhook"

    @property
    def tracker_db(self) -> Path:
        return self.workdir / "tracker.db"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONWARNINGS="ignore",
            SANIC_HOST="127.0.0.1",
            ACTION_ENDPOINT_URL=f"http://127.0.0.1:{self.actions_port}/webhook",
            TRACKER_DB=str(self.tracker_db),
            TRACKER_DB_URL="",  # SQLite at TRACKER_DB; a cluster passes a PostgreSQL URL in extra_env
            LOCK_STORE_URL="",  # locks in Rasa's memory; a cluster passes Redis's URL
            OMT_PROVENANCE_LOG=str(self.workdir / "replies.jsonl"),
            TWILIO_AUTH_TOKEN="test-twilio-token",
            SMS_SENDER_KEY="test-sender-key",
            SMS_WEBHOOK_URL=f"{self.url}/webhooks/sms/webhook",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / log_name).open("ab")
        proc = subprocess.Popen(
            args, cwd=self.cwd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def start_actions(self, timeout: float = 60, new_port_if_taken: bool = True) -> subprocess.Popen[bytes]:
        """The action server; on another free port if its own was taken meanwhile (start it before Rasa)."""

        def start() -> subprocess.Popen[bytes]:
            proc = self._spawn(
                [str(VENV_BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(self.actions_port)],
                "actions.log",
            )
            wait_for_http(f"http://127.0.0.1:{self.actions_port}/health", timeout, proc)
            return proc

        if not new_port_if_taken:
            return start()
        return start_on_free_port(
            start, lambda: setattr(self, "actions_port", free_port()), self.workdir / "actions.log"
        )

    def start_rasa(
        self, timeout: float = 180, extra_args: tuple[str, ...] = (), new_port_if_taken: bool = True
    ) -> subprocess.Popen[bytes]:
        """Rasa; on another free port if its own was taken meanwhile (not when others know the port: a restart)."""

        def start() -> subprocess.Popen[bytes]:
            args = [
                *self.rasa_command, "run", "--model", str(self.model), "--interface", "127.0.0.1",
                "--port", str(self.rasa_port), "--credentials", str(self.credentials),
                "--endpoints", str(self.endpoints), *extra_args,
            ]  # fmt: skip
            proc = self._spawn(args, "rasa.log")
            wait_for_http(f"{self.url}/webhooks/rest/", timeout, proc)
            return proc

        if not new_port_if_taken:
            return start()
        return start_on_free_port(start, lambda: setattr(self, "rasa_port", free_port()), self.workdir / "rasa.log")

    def stop(self) -> None:
        """SIGTERM each process group, then SIGKILL whatever is left."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def logs(self) -> str:
        """Everything the stack's processes printed, for assertions on log content."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


@contextlib.contextmanager
def running_stack(workdir: Path, **kwargs: object) -> Iterator[Stack]:
    """A started stack on free ports; stopped on exit whatever happens."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(rasa_port=free_port(), actions_port=free_port(), workdir=workdir, **kwargs)  # type: ignore[arg-type]
    try:
        stack.start_actions()
        stack.start_rasa()
        yield stack
    finally:
        stack.stop()

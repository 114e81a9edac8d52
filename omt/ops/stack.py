"""Start and stop a whole local stack (action server + Rasa) for tests, eval and benchmarks.

`make run` uses scripts/run_stack.sh in the foreground; this module does the same for
programs that need a stack in the background, on free loopback ports, with their own
tracker database, and tears everything down afterwards. How a process is started, waited
for, stopped and measured, and how a port taken meanwhile is dealt with: omt/ops/processes.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from omt.core.knowledge import REPO_ROOT
from omt.ops import processes
from omt.ops.processes import free_port, start_on_free_port, wait_for_http

VENV_BIN = REPO_ROOT / ".venv" / "bin"
# Rasa through our launcher: the version check and our patches to Rasa first (omt/rasa/run.py).
RASA_COMMAND = (str(VENV_BIN / "python"), "-m", "omt.rasa.run")
# The action server through its launcher: Rasa SDK's CLI, no CORS layer (omt/rasa/actions_run.py).
ACTIONS_COMMAND = (str(VENV_BIN / "python"), "-m", "omt.rasa.actions_run")


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
    roles: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # the latest of each role

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
        """`args`, output appended to <workdir>/`log_name`, whose stem names its role ("rasa", "actions")."""
        proc = processes.spawn(args, self.workdir / log_name, cwd=self.cwd, env=self.env())
        self.procs.append(proc)
        self.roles[Path(log_name).stem] = proc
        return proc

    def start_actions(self, timeout: float = 60, new_port_if_taken: bool = True) -> subprocess.Popen[bytes]:
        """The action server; on another free port if its own was taken meanwhile (start it before Rasa)."""

        def start() -> subprocess.Popen[bytes]:
            proc = self._spawn(
                [*ACTIONS_COMMAND, "--actions", "actions", "--port", str(self.actions_port)],
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
        """Stop every process the stack started (processes.stop: SIGTERM, then SIGKILL what is left)."""
        processes.stop(self.procs)
        self.procs.clear()
        self.roles.clear()

    def memory(self) -> dict[str, float]:
        """Resident memory (MB, processes.rss_mb) of each running role: "rasa" and, if started, "actions"."""
        return {role: processes.rss_mb(proc.pid) for role, proc in self.roles.items() if proc.poll() is None}

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

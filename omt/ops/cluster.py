"""A clustered deployment on one machine, on loopback: real servers, the same configuration as `make run`.

    python -m omt.ops.cluster start [--dir .cluster] [--port 8000] [--replicas 2]   # `make cluster`
    python -m omt.ops.cluster status [--dir .cluster]
    python -m omt.ops.cluster stop [--dir .cluster]                                 # `make cluster-stop`

What starts (Debian's packages; everything binds 127.0.0.1):

- PostgreSQL (the tracker store, under our redacting wrapper): its own data directory,
  a database and a login role `omt` with a generated password (scram over TCP);
- Redis (Rasa's lock store, so one conversation's messages are handled one at a time
  whichever replica gets them), password from the same secrets file;
- N Rasa replicas (`rasa run`, same model) and N action servers, replica i using action
  server i: omt/ops/stack.py's `Stack`, one per replica, with a cluster environment;
- the page server (widget demo and kiosk), when the web assets are built (`make web`);
- nginx in front (deploy/nginx/omt.conf rendered with one upstream line per replica): the
  webhooks round robin, socket.io sticky by client address, fail-over to the next replica.

The configuration is the single stack's: endpoints.yml reads TRACKER_DB_URL (PostgreSQL
here, empty for SQLite) and LOCK_STORE_URL (Redis here, empty for in-memory locks).

All state lives in the cluster directory (git-ignored `.cluster/` for the CLI): the
PostgreSQL data directory and log (`postgres/`), the Redis dump and log (`redis/`), the
rendered nginx config and its logs (`nginx/`), each replica's logs (`replica-<i>/`), the
secrets (`secrets.json`, mode 0600), the pid files (`pids/`) and `cluster.json` (ports and
URLs, no secrets). The data survives `stop`; delete the directory to start from nothing.

Tests and benchmarks use `running_cluster(workdir)`: everything on free ports, stopped on
exit. PostgreSQL refuses to run as root, so as root its server runs as the `postgres`
user, which must be able to reach the cluster directory (not under a 0700 directory).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from omt.core.knowledge import REPO_ROOT
from omt.ops import processes
from omt.ops.processes import (
    ServerError,
    alive,
    cmdline,
    free_port,
    port_free,
    rss_mb,
    start_on_free_port,
    wait_for_http,
    wait_for_port,
)
from omt.ops.stack import VENV_BIN, Stack

DEFAULT_DIR = REPO_ROOT / ".cluster"
DEFAULT_PORT = 8000
DEFAULT_REPLICAS = 2
DB_NAME = DB_USER = "omt"
TICKET_LOCK_LIFETIME = 15  # seconds; see Cluster.__post_init__
RENDER_NGINX = REPO_ROOT / "scripts" / "render_nginx_conf.py"
WEB_VENDOR_FILE = REPO_ROOT / "web" / "static" / "vendor" / "socket.io.min.js"  # `make web` builds it
# The secrets the replicas take from the caller's environment when set (omt/ops/config_check.py).
PASSED_SECRETS = ("TWILIO_AUTH_TOKEN", "SMS_SENDER_KEY", "OMT_HASH_KEY", "SMS_WEBHOOK_URL")


class ClusterError(ServerError):
    """A server could not be started or found; the message says which and where its log is."""


def _binary(name: str, pattern: str | None = None) -> str:
    """A server binary: Debian's PostgreSQL directory first (newest version), then PATH and sbin."""
    found = sorted(glob.glob(pattern)) if pattern else []
    path = found[-1] if found else shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if path is None:
        raise ClusterError(f"{name} is not installed: run scripts/install_system_deps.sh (as root)")
    return path


def _pg_binary(name: str) -> str:
    return _binary(name, f"/usr/lib/postgresql/*/bin/{name}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server of its own in `home` (data directory `home/data`), on 127.0.0.1:`port`."""

    home: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def _run(self, args: list[str], stdin: str | None = None, timeout: float = 120) -> str:
        """A PostgreSQL program, as the `postgres` user when we are root (the server refuses root)."""
        as_user: list[str] = []
        if os.geteuid() == 0:
            as_user = [_binary("runuser"), "-u", "postgres", "--"]
        proc = subprocess.run(
            [*as_user, *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.home,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}\n"
                f"  server log: {self.log}\n{_tail(self.log)}"
            )
        return proc.stdout

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterError("running as root and there is no `postgres` user to run PostgreSQL as") from exc
            os.chown(self.home, account.pw_uid, account.pw_gid)
        self.home.chmod(0o700)
        try:
            self._run(["test", "-w", str(self.home)])
        except ClusterError as exc:
            raise ClusterError(
                f"the postgres user cannot write to {self.home}: put the cluster directory where it can "
                "reach (no 0700 directory above it)"
            ) from exc

    def initialise(self) -> None:
        """initdb once: superuser `postgres` over the local socket, passwords (scram) over TCP."""
        self._prepare_home()
        if (self.data / "PG_VERSION").exists():
            return
        self._run(
            [_pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
             "--auth-local=trust", "--auth-host=scram-sha-256"]
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {shlex.quote(str(self.home))} -c listen_addresses=127.0.0.1"
        self._run([_pg_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                   "start"])  # fmt: skip
        self._create_database()

    def _create_database(self) -> None:
        """The login role and its database; the role's password is (re)set from the secrets file."""
        sql = (
            f"SELECT 'CREATE ROLE {DB_USER} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{DB_USER}')\\gexec\n"
            f"ALTER ROLE {DB_USER} PASSWORD '{self.password}';\n"
            f"SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_USER}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DB_NAME}')\\gexec\n"
        )
        psql = [_pg_binary("psql"), "-h", str(self.home), "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        self._run([*psql, "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"], stdin=sql)

    def restart(self) -> None:
        """pg_ctl restart (fast: open sessions are cut, as in a real maintenance restart)."""
        self._run([_pg_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t", "60",
                   "restart"])  # fmt: skip

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            return pid if alive(pid) else None
        return None

    def stop(self) -> None:
        if self.pid() is None:
            return
        self._run([_pg_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])


# --- the cluster ----------------------------------------------------------------------------


@dataclass
class Managed:
    """A server process started here; `match` is a piece of its command line (to recognise its pid later)."""

    name: str
    proc: subprocess.Popen[bytes]
    match: str


def _load_secrets(path: Path) -> dict[str, str]:
    """The cluster's generated passwords: made once, kept (mode 0600) so the data directory stays usable."""
    values: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError):  # missing, not JSON, not an object
        values = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    changed = False
    for name in ("postgres_password", "redis_password"):
        if not values.get(name, "").isalnum():  # only [A-Za-z0-9]: safe in URLs, SQL and redis.conf
            values[name], changed = secrets.token_hex(24), True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(values, indent=2))
    return values


@dataclass
class Cluster:
    """PostgreSQL, Redis, N Rasa replicas with N action servers, pages and nginx; see the module doc."""

    workdir: Path
    port: int = 0  # nginx; 0: a free port
    replicas: int = DEFAULT_REPLICAS
    model: Path = REPO_ROOT / "models" / "omt.tar.gz"
    pages: bool | None = None  # None: when the web assets are built
    caller_env: Mapping[str, str] = field(default_factory=dict)  # secrets the replicas take over (CLI)
    stacks: list[Stack] = field(default_factory=list)
    managed: dict[str, Managed] = field(default_factory=dict)
    rasa_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    action_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_in: float = 0.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("a cluster needs at least one replica")
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # nginx's workers (nobody) and postgres must get through it
        self.port = self.port or free_port()
        self.web_port = free_port()
        self.redis_port = free_port()
        keys = _load_secrets(self.workdir / "secrets.json")
        self.redis_password = keys["redis_password"]
        self.postgres = Postgres(self.workdir / "postgres", free_port(), keys["postgres_password"])
        shared = {
            "TRACKER_DB_URL": self.database_url,
            "LOCK_STORE_URL": self.lock_store_url,
            # A replica that dies mid-turn leaves its ticket on that conversation's lock in
            # Redis: the conversation waits this long (Rasa's default: 60 s) before the other
            # replica may take it. Our turns take well under a second.
            "TICKET_LOCK_LIFETIME": str(TICKET_LOCK_LIFETIME),
            "SMS_WEBHOOK_URL": f"{self.url}/webhooks/sms/webhook",  # the public URL Twilio signs
            "CLINIC_ORIGINS": f"{self.url},http://localhost:{self.port}",
            **{k: v for k, v in self.caller_env.items() if k in PASSED_SECRETS and v},
        }
        self.stacks = [
            Stack(
                rasa_port=free_port(),
                actions_port=free_port(),
                workdir=self.workdir / f"replica-{i}",
                model=self.model,
                extra_env=shared,
            )
            for i in range(self.replicas)
        ]
        for stack in self.stacks:
            stack.workdir.mkdir(parents=True, exist_ok=True)
        if self.pages is None:
            self.pages = WEB_VENDOR_FILE.exists()

    # -- addresses ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """nginx: the one address clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"{self.url}/webhooks/rest/webhook"

    @property
    def replica_urls(self) -> list[str]:
        """Each Rasa replica directly (bypassing nginx)."""
        return [stack.url for stack in self.stacks]

    @property
    def database_url(self) -> str:
        """The tracker store's SQLAlchemy URL, password included (TRACKER_DB_URL)."""
        return self.postgres.url

    @property
    def lock_store_url(self) -> str:
        return f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """The environment the replicas run with (replica 0's: the others differ in ports and log paths)."""
        return self.stacks[0].env()

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Everything, in dependency order; the Rasa replicas and action servers in parallel."""
        began = time.monotonic()
        if not self.model.exists():
            raise ClusterError(f"no trained model at {self.model}: run `make train`")
        if not port_free(self.port):  # before a minute of start-up, not after
            raise ClusterError(f"port {self.port} is in use: choose another (CLUSTER_PORT=...)")
        self.postgres.initialise()
        start_on_free_port(self.postgres.start, self._new_postgres_port, self.postgres.log)
        start_on_free_port(self._start_redis, self._new_redis_port, self.workdir / "redis" / "redis.log")
        # Each replica's action server first: should its port have been taken, Rasa is told the new one.
        jobs: list[Callable[[], object]] = [lambda i=i: self._start_replica_pair(i) for i in range(len(self.stacks))]  # type: ignore[misc]
        if self.pages:
            jobs.append(lambda: start_on_free_port(self._start_pages, self._new_web_port, self.workdir / "web.log"))
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(job) for job in jobs]
        errors = [exc for future in futures if (exc := future.exception()) is not None]
        if errors:
            raise ClusterError(f"could not start: {errors[0]} (logs under {self.workdir})") from errors[0]
        self._start_nginx()
        self.started_in = time.monotonic() - began

    def _start_replica_pair(self, i: int) -> None:
        self.action_procs[i] = self.stacks[i].start_actions()
        self.rasa_procs[i] = self.stacks[i].start_rasa()

    def _shared_env(self, name: str, value: str) -> None:
        """Change a variable every replica is started with (a port that had to change)."""
        for stack in self.stacks:
            stack.extra_env = {**stack.extra_env, name: value}

    def _new_postgres_port(self) -> None:
        self.postgres.port = free_port()
        self._shared_env("TRACKER_DB_URL", self.database_url)

    def _new_web_port(self) -> None:
        self.web_port = free_port()

    def _new_redis_port(self) -> None:
        self.redis_port = free_port()
        self._shared_env("LOCK_STORE_URL", self.lock_store_url)

    def _spawn(
        self,
        name: str,
        args: list[str],
        log: Path,
        match: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start server `name` (processes.spawn, in `log`'s folder unless `cwd`) and keep it in `managed`."""
        proc = processes.spawn(args, log, cwd=cwd or log.parent, env=env)
        self.managed[name] = Managed(name, proc, match)
        return proc

    def _start_redis(self) -> None:
        home = self.workdir / "redis"
        home.mkdir(exist_ok=True)
        conf = home / "redis.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)  # holds the password
        conf.write_text(
            f"bind 127.0.0.1\nport {self.redis_port}\nprotected-mode yes\ndaemonize no\n"
            f'dir {home}\ndbfilename dump.rdb\nlogfile ""\nrequirepass {self.redis_password}\n'
        )
        self._spawn("redis", [_binary("redis-server"), str(conf)], home / "redis.log", f"127.0.0.1:{self.redis_port}")
        wait_for_port(self.redis_port, 30, self.managed["redis"].proc, "redis-server")

    def _start_pages(self) -> None:
        log = self.workdir / "web.log"
        env = {**self.env(), "CLINIC_ORIGINS": f"{self.url},http://localhost:{self.port}"}
        args = [str(VENV_BIN / "python"), "-m", "omt.ops.web", "--port", str(self.web_port), "--socket-url", self.url]
        proc = self._spawn("pages", args, log, f"--port {self.web_port}", env=env, cwd=REPO_ROOT)
        wait_for_http(f"http://127.0.0.1:{self.web_port}/healthz", 60, proc)

    def _start_nginx(self) -> None:
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        prefix.chmod(0o755)  # nginx's workers drop root: they must reach the prefix
        conf = prefix / "nginx.conf"
        upstreams = [arg for stack in self.stacks for arg in ("--rasa", f"127.0.0.1:{stack.rasa_port}")]
        subprocess.run(
            [str(VENV_BIN / "python"), str(RENDER_NGINX), "--out", str(conf), "--listen", f"127.0.0.1:{self.port}",
             "--pages", f"127.0.0.1:{self.web_port}", *upstreams],
            check=True,
        )  # fmt: skip
        self._spawn(
            "nginx", [_binary("nginx"), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            prefix / "nginx.log", str(conf),
        )  # fmt: skip
        try:
            wait_for_port(self.port, 30, self.managed["nginx"].proc, "nginx")
        except ServerError as exc:
            raise ClusterError(f"{exc}; nginx's log:\n{_tail(prefix / 'nginx.log')}") from exc

    # -- faults -----------------------------------------------------------------------------

    def replica_running(self, i: int) -> bool:
        proc = self.rasa_procs.get(i)
        return proc is not None and proc.poll() is None

    def kill_replica(self, i: int) -> None:
        """SIGKILL Rasa replica `i` (its action server keeps running): a crash, not a shutdown."""
        proc = self.rasa_procs.pop(i, None)
        if proc is None or proc.poll() is not None:
            raise ClusterError(f"replica {i} is not running")
        processes.kill(proc)
        self.stacks[i].procs.remove(proc)

    def start_replica(self, i: int, timeout: float = 180) -> None:
        """Start Rasa replica `i` again (same port, same action server); returns once it answers."""
        if self.replica_running(i):
            raise ClusterError(f"replica {i} is already running")
        # The same port: nginx knows it.
        self.rasa_procs[i] = self.stacks[i].start_rasa(timeout=timeout, new_port_if_taken=False)

    def restart_postgres(self) -> None:
        self.postgres.restart()

    # -- stop, logs, state --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything started here, front to back; never raises, whatever is left half-started.

        nginx first (no new requests), then the replicas and action servers (all at once:
        each takes a few seconds to finish what it has), then Redis and PostgreSQL.
        """
        self._quietly(lambda: self._stop_managed("nginx"))
        with ThreadPoolExecutor(max_workers=len(self.stacks) + 1) as pool:
            list(pool.map(self._quietly, [*(s.stop for s in self.stacks), lambda: self._stop_managed("pages")]))
        self.rasa_procs.clear()
        self.action_procs.clear()
        self._quietly(lambda: self._stop_managed("redis"))
        self._quietly(self.postgres.stop)

    @staticmethod
    def _quietly(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # keep stopping the rest
            print(f"cluster: while stopping: {exc}", file=sys.stderr)

    def _stop_managed(self, name: str) -> None:
        managed = self.managed.pop(name, None)
        if managed is not None:
            processes.stop([managed.proc])

    def logs(self) -> str:
        """Every log of the cluster (servers and replicas), each under its path."""
        parts = []
        for path in sorted(self.workdir.rglob("*.log")):
            with contextlib.suppress(OSError):
                parts.append(f"==> {path.relative_to(self.workdir)} <==\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def processes(self) -> dict[str, tuple[int, str]]:
        """name -> (pid, piece of its command line) of every running server process."""
        found = {name: (m.proc.pid, m.match) for name, m in self.managed.items() if m.proc.poll() is None}
        for kind, procs in (("rasa", self.rasa_procs), ("actions", self.action_procs)):
            for i, proc in procs.items():
                if proc.poll() is None:
                    port = self.stacks[i].rasa_port if kind == "rasa" else self.stacks[i].actions_port
                    found[f"{kind}-{i}"] = (proc.pid, f"--port {port}")
        pg = self.postgres.pid()
        if pg is not None:
            found["postgres"] = (pg, "postgres")
        return found

    def memory(self) -> dict[str, float]:
        """Resident memory (MB, processes.rss_mb: with its children) of each server process."""
        return {name: rss_mb(pid) for name, (pid, _) in sorted(self.processes().items())}

    def write_state(self) -> None:
        """pids/<name>.pid (pid, then a piece of its command line) and cluster.json (addresses, no secrets)."""
        pids = self.workdir / "pids"
        pids.mkdir(exist_ok=True)
        for name, (pid, match) in self.processes().items():
            if name != "postgres":  # PostgreSQL keeps its own: postgres/data/postmaster.pid
                (pids / f"{name}.pid").write_text(f"{pid}\n{match}\n")
        state = {
            "url": self.url,
            "rest_url": self.rest_url,
            "replica_urls": self.replica_urls,
            "action_servers": [f"http://127.0.0.1:{s.actions_port}" for s in self.stacks],
            "pages": f"http://127.0.0.1:{self.web_port}" if self.pages else None,
            "postgres": f"postgresql://{DB_USER}@127.0.0.1:{self.postgres.port}/{DB_NAME}",
            "redis": f"redis://127.0.0.1:{self.redis_port}/0",
            "started_in_seconds": round(self.started_in, 1),
        }
        (self.workdir / "cluster.json").write_text(json.dumps(state, indent=2) + "\n")


@contextlib.contextmanager
def running_cluster(workdir: Path, **kwargs: Any) -> Iterator[Cluster]:
    """A started cluster (free ports unless given); everything stopped on exit whatever happens."""
    cluster = Cluster(workdir=workdir, **kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# --- a cluster started by an earlier `start` (the CLI) ----------------------------------------


def stop_started(workdir: Path, timeout: float = 20) -> list[str]:
    """Stop what `start` left running in `workdir` (its pid files); the names stopped.

    A pid is signalled only when its command line still shows what was started (a pid file
    left from a crash may name a process that has nothing to do with us by now).
    """
    order = ["nginx", "pages", "rasa", "actions", "redis"]
    pid_files = sorted((workdir / "pids").glob("*.pid"), key=lambda p: next(
        (i for i, prefix in enumerate(order) if p.stem.startswith(prefix)), len(order)))  # fmt: skip
    ours: dict[str, int] = {}
    for pid_file in pid_files:
        try:
            text = pid_file.read_text().splitlines()
            pid, match = int(text[0]), text[1]
        except (OSError, ValueError, IndexError):
            pid_file.unlink(missing_ok=True)
            continue
        if alive(pid) and match in cmdline(pid):
            ours[pid_file.stem] = pid
        pid_file.unlink(missing_ok=True)
    reached = processes.stop_groups(ours.values(), timeout)
    stopped = [name for name, pid in ours.items() if pid in reached]
    postgres = Postgres(workdir / "postgres", 0, "")
    if postgres.pid() is not None:
        postgres.stop()
        stopped.append("postgres")
    return stopped


def running_pids(workdir: Path) -> dict[str, int]:
    """name -> pid of the processes of `workdir`'s pid files that still run (PostgreSQL too)."""
    found: dict[str, int] = {}
    for pid_file in sorted((workdir / "pids").glob("*.pid")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = pid_file.read_text().splitlines()
            pid = int(text[0])
            if alive(pid) and text[1] in cmdline(pid):
                found[pid_file.stem] = pid
    pg = Postgres(workdir / "postgres", 0, "").pid()
    if pg is not None:
        found["postgres"] = pg
    return found


def _start(args: argparse.Namespace) -> int:
    from omt.ops import config_check

    workdir: Path = args.dir.resolve()
    already = running_pids(workdir)
    if already:
        print(f"cluster: already running in {workdir} ({', '.join(sorted(already))}); `make cluster-stop` first")
        return 1
    if config_check.main(env=os.environ) != 0:  # OMT_ENV=production: no development secrets
        return 1
    cluster = Cluster(workdir=workdir, port=args.port, replicas=args.replicas, model=args.model,
                      caller_env=os.environ)  # fmt: skip
    print(
        f"cluster: starting PostgreSQL, Redis, {args.replicas} Rasa replicas + action servers, nginx on {cluster.url}"
    )

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        cluster.start()
    except (ServerError, KeyboardInterrupt, OSError, subprocess.SubprocessError) as exc:
        print(f"cluster: {'interrupted' if isinstance(exc, KeyboardInterrupt) else exc}", file=sys.stderr)
        cluster.stop()
        return 1
    cluster.write_state()
    replicas = ", ".join(cluster.replica_urls)
    print(f"cluster: up in {cluster.started_in:.0f}s: {cluster.url} (REST {cluster.rest_url}); replicas {replicas}")
    if cluster.pages:
        print(f"cluster: pages {cluster.url}/ and {cluster.url}/kiosk")
    print(f"cluster: state and logs in {workdir}; stop with `make cluster-stop`")
    return 0


def _status(args: argparse.Namespace) -> int:
    workdir: Path = args.dir.resolve()
    running = running_pids(workdir)
    if not running:
        print(f"cluster: nothing running in {workdir}")
        return 1
    with contextlib.suppress(OSError, ValueError):
        print(json.dumps(json.loads((workdir / "cluster.json").read_text()), indent=2))
    for name, pid in sorted(running.items()):
        print(f"  {name:<10} pid {pid:<8} {rss_mb(pid):8.1f} MB")
    return 0


def _stop(args: argparse.Namespace) -> int:
    workdir: Path = args.dir.resolve()
    stopped = stop_started(workdir)
    print(f"cluster: stopped {', '.join(stopped)}" if stopped else f"cluster: nothing running in {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A clustered deployment on loopback (see omt/ops/cluster.py).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "status", "stop"):
        command = sub.add_parser(name)
        command.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default .cluster/)")
        if name == "start":
            port = int(os.environ.get("CLUSTER_PORT") or DEFAULT_PORT)
            command.add_argument("--port", type=int, default=port, help="nginx port (CLUSTER_PORT, 8000)")
            command.add_argument("--replicas", type=int, default=DEFAULT_REPLICAS)
            command.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "omt.tar.gz")
    args = parser.parse_args(argv)
    if args.command == "start" and (args.replicas < 1 or not 0 < args.port < 65536):
        parser.error("--replicas must be at least 1 and --port a TCP port")
    return {"start": _start, "status": _status, "stop": _stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

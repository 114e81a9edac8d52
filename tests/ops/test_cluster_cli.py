"""omt/ops/cluster.py without starting a cluster: its configuration, the CLI, pid files, and nginx for N replicas.

The cluster itself, on real servers: tests/ops/test_cluster.py (marker `cluster`).
"""

from __future__ import annotations

import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from omt.core.knowledge import REPO_ROOT
from omt.ops.cluster import Cluster, ClusterError, _load_secrets, main, running_pids, stop_started
from omt.ops.processes import free_port

render = runpy.run_path(str(REPO_ROOT / "scripts" / "render_nginx_conf.py"))["render"]
TEMPLATE = (REPO_ROOT / "deploy" / "nginx" / "omt.conf").read_text(encoding="utf-8")
VALUES = {"LISTEN": "127.0.0.1:8000", "SERVER_NAME": "_", "PAGES_UPSTREAM": "127.0.0.1:8080"}


@pytest.fixture()
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes to stand in for servers; each is killed at the end whatever the test did."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def sleeper(procs: list[subprocess.Popen[bytes]], marker: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True)
    procs.append(proc)
    return proc


# --- configuration -------------------------------------------------------------------------------


def test_the_replicas_get_the_shared_stores_and_the_public_sms_url(tmp_path: Path) -> None:
    cluster = Cluster(workdir=tmp_path, pages=False, caller_env={"TWILIO_AUTH_TOKEN": "from-the-caller", "PATH": "x"})
    env = cluster.env()
    assert env["TRACKER_DB_URL"] == cluster.database_url and cluster.database_url.startswith("postgresql://omt:")
    assert env["LOCK_STORE_URL"] == cluster.lock_store_url and cluster.lock_store_url.startswith("redis://:")
    assert env["SMS_WEBHOOK_URL"] == f"{cluster.url}/webhooks/sms/webhook"
    assert env["TWILIO_AUTH_TOKEN"] == "from-the-caller" and env["PATH"] != "x", "only the secrets are taken over"
    assert int(env["TICKET_LOCK_LIFETIME"]) < 60
    urls = [cluster.url, *cluster.replica_urls]
    assert len(set(urls)) == 3 and all(u.startswith("http://127.0.0.1:") for u in urls)
    assert cluster.rest_url == f"{cluster.url}/webhooks/rest/webhook"
    with pytest.raises(ValueError):
        Cluster(workdir=tmp_path, replicas=0)


def test_secrets_are_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = _load_secrets(path)
    assert set(first) == {"postgres_password", "redis_password"} and all(v.isalnum() for v in first.values())
    assert _load_secrets(path) == first, "the data directory keeps working with the same password"
    assert path.stat().st_mode & 0o777 == 0o600
    for damaged in ("{not json", "[1, 2]", '{"postgres_password": "x; DROP"}'):
        path.write_text(damaged)
        assert _load_secrets(path)["postgres_password"].isalnum(), "a damaged file gets new secrets, no crash"


def test_nginx_gets_one_server_line_per_replica_in_both_upstreams() -> None:
    replicas = ["127.0.0.1:5101", "127.0.0.1:5102"]
    conf = render(TEMPLATE, {**VALUES, "RASA_UPSTREAM": replicas})
    for name in ("omt_rasa", "omt_rasa_sticky"):
        block = re.search(rf"upstream {name} \{{(.*?)\}}", conf, re.DOTALL)
        assert block is not None
        assert re.findall(r"server (\S+);", block.group(1)) == replicas
    assert "ip_hash;" in conf and "hash $omt_conversation consistent;" in conf
    assert render(TEMPLATE, {**VALUES, "RASA_UPSTREAM": ["127.0.0.1:5101"]}) == render(
        TEMPLATE, {**VALUES, "RASA_UPSTREAM": "127.0.0.1:5101"}
    )
    for bad in ([], ["127.0.0.1:1", "127.0.0.1:2; include /etc/shadow"]):
        with pytest.raises(ValueError, match="RASA_UPSTREAM"):
            render(TEMPLATE, {**VALUES, "RASA_UPSTREAM": bad})


# --- the CLI and its pid files -----------------------------------------------------------------


def test_stop_signals_only_processes_that_are_still_ours(tmp_path: Path, sleepers: list) -> None:
    ours, other = sleeper(sleepers, "omt-cluster-test-ours"), sleeper(sleepers, "something-else")
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "rasa-0.pid").write_text(f"{ours.pid}\nomt-cluster-test-ours\n")
    (pids / "nginx.pid").write_text(f"{other.pid}\n/a/config/path/it/does/not/have\n")  # the pid was reused
    (pids / "redis.pid").write_text("not a pid\n")
    assert running_pids(tmp_path) == {"rasa-0": ours.pid}
    assert stop_started(tmp_path) == ["rasa-0"]
    assert ours.wait(timeout=20) is not None
    assert other.poll() is None, "a process that is not ours is left alone"
    assert not list(pids.glob("*.pid"))
    assert stop_started(tmp_path) == []


def test_cli_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stop", "--dir", str(tmp_path)]) == 0
    assert "nothing running" in capsys.readouterr().out
    assert main(["status", "--dir", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "argv", [["start", "--replicas", "0"], ["start", "--port", "70000"], ["start", "--port", "x"], ["restart"], []]
)
def test_cli_refuses_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_start_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        model = tmp_path / "model.tar.gz"
        model.touch()  # never loaded: start stops at the port
        cluster = Cluster(workdir=tmp_path, port=busy.getsockname()[1], pages=False, model=model)
        with pytest.raises(ClusterError, match="in use"):
            cluster.start()
    assert not (tmp_path / "postgres").exists() and not cluster.processes()


def test_cli_start_refuses_while_a_cluster_runs(tmp_path: Path, sleepers: list, capsys) -> None:
    running = sleeper(sleepers, "omt-cluster-test-running")
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "nginx.pid").write_text(f"{running.pid}\nomt-cluster-test-running\n")
    assert main(["start", "--dir", str(tmp_path), "--port", str(free_port())]) == 1
    assert "already running" in capsys.readouterr().out
    assert not (tmp_path / "postgres").exists(), "nothing was started"

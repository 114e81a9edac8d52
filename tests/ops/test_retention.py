"""Retention (`make purge DAYS=N`, omt/ops/retention.py) on Rasa's real events table: SQLite, and PostgreSQL.

The tables are made by Rasa's own SQLTrackerStore (through our redacting wrapper), the
conversations saved by it, then backdated. PostgreSQL runs only when Debian's server
binaries are installed (scripts/install_system_deps.sh): the test starts a throwaway
cluster on loopback, on a free port, as the `postgres` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from omt.ops.processes import free_port
from omt.ops.retention import Purged, cutoff, database_url, main, purge, safe_url
from omt.rasa.redacting_store import RedactingTrackerStore

DAY = 86_400
NOW = time.time()


def save_conversations(store: RedactingTrackerStore, senders: list[str]) -> None:
    """One short conversation per sender, saved by Rasa's store (the real schema and rows)."""
    for sender in senders:
        tracker = DialogueStateTracker.from_events(
            sender,
            [ActionExecuted("action_listen"), UserUttered("does it hurt", {"name": "how_it_feels"}), BotUttered("No.")],
        )
        asyncio.run(store.save(tracker))


def backdate(engine: sa.engine.Engine, sender: str, days_ago: float, only_first: bool = False) -> None:
    """Move a conversation's events `days_ago` into the past (only its first event, if asked)."""
    with engine.begin() as conn:
        ids = [
            row[0]
            for row in conn.execute(sa.text("SELECT id FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})
        ]
        for event_id in ids[:1] if only_first else ids:
            conn.execute(
                sa.text("UPDATE events SET timestamp = :t WHERE id = :i"), {"t": NOW - days_ago * DAY, "i": event_id}
            )


def senders(engine: sa.engine.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sender_id, COUNT(*) FROM events GROUP BY sender_id"))
        return {str(sender): int(count) for sender, count in rows}


def fixture_conversations(store: RedactingTrackerStore, engine: sa.engine.Engine) -> None:
    """old-1, old-2: idle 40 days; recent: today; resumed: began 90 days ago, last message today."""
    save_conversations(store, ["old-1", "old-2", "recent", "resumed"])
    backdate(engine, "old-1", 40)
    backdate(engine, "old-2", 31)
    backdate(engine, "resumed", 90, only_first=True)


def check_purge(store: RedactingTrackerStore, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = sa.create_engine(url)
    try:
        fixture_conversations(store, engine)
        assert senders(engine) == {"old-1": 3, "old-2": 3, "recent": 3, "resumed": 3}
        assert main(["--days", "30", "--db-url", url]) == 0
        assert "deleted 2 conversation(s), 6 event(s) idle for more than 30 day(s)" in capsys.readouterr().out
        assert senders(engine) == {"recent": 3, "resumed": 3}, "a resumed conversation is kept whole"
        assert main(["--days", "30", "--db-url", url]) == 0
        assert "deleted 0 conversation(s), 0 event(s)" in capsys.readouterr().out, "idempotent"
        assert purge(engine, 0, now=time.time() + 1) == Purged(2, 6)
        assert senders(engine) == {}
    finally:
        engine.dispose()


def test_purge_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "tracker.db"
    store = RedactingTrackerStore(wraps="SQL", dialect="sqlite", db=str(db))
    check_purge(store, f"sqlite:///{db}", capsys)


def test_purge_reads_the_database_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "tracker.db"
    store = RedactingTrackerStore(wraps="SQL", dialect="sqlite", db=str(db))
    save_conversations(store, ["old"])
    engine = sa.create_engine(f"sqlite:///{db}")
    backdate(engine, "old", 10)
    assert main(["--days", "7"], env={"TRACKER_DB": str(db)}) == 0
    assert "deleted 1 conversation(s), 3 event(s)" in capsys.readouterr().out
    assert senders(engine) == {}
    engine.dispose()


def test_purge_without_a_database_creates_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    assert main(["--days", "1"], env={"TRACKER_DB": str(missing)}) == 0
    assert "nothing to delete" in capsys.readouterr().out and not missing.exists()
    empty = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{empty}").connect().close()  # a file without Rasa's table
    assert main(["--days", "1"], env={"TRACKER_DB": str(empty)}) == 0
    assert "deleted 0 conversation(s)" in capsys.readouterr().out


def test_purge_arguments_and_urls() -> None:
    with pytest.raises(SystemExit):
        main(["--days", "-1"], env={})
    with pytest.raises(ValueError):
        cutoff(-1)
    assert cutoff(2, now=10 * DAY) == 8 * DAY
    assert database_url({"TRACKER_DB_URL": "postgresql://u:pw@h/db", "TRACKER_DB": "x.db"}) == "postgresql://u:pw@h/db"
    assert database_url({}, "sqlite:///y.db") == "sqlite:///y.db"
    assert database_url({"TRACKER_DB": "/tmp/t.db"}) == "sqlite:////tmp/t.db"
    assert database_url({}).endswith("/.data/tracker.db")
    assert "pw" not in safe_url("postgresql://u:pw@h/db")


# ---- PostgreSQL --------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextlib.contextmanager
def _postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port; its URL. Skips when impossible."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (scripts/install_system_deps.sh installs them)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    workdir = Path(tempfile.mkdtemp(prefix="omt-pg-"))
    if as_user:
        os.chown(workdir, account.pw_uid, account.pw_gid)
    data, port = workdir / "data", free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(workdir / "server.log"), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"could not start a local PostgreSQL server: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with _postgres_server() as url:
        yield url


def test_purge_postgresql(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    port = int(postgres_url.rsplit(":", 1)[1].split("/", 1)[0])
    store = RedactingTrackerStore(
        wraps="SQL", dialect="postgresql", host="127.0.0.1", port=port, db="postgres", username="postgres"
    )
    check_purge(store, postgres_url, capsys)


def test_forget_and_redaction_on_postgresql(postgres_url: str) -> None:
    port = int(postgres_url.rsplit(":", 1)[1].split("/", 1)[0])
    store = RedactingTrackerStore(
        wraps="SQL", dialect="postgresql", host="127.0.0.1", port=port, db="postgres", username="postgres"
    )
    tracker = DialogueStateTracker.from_events("pg", [UserUttered("call me on +1 555 010 7788", {"name": "inform"})])
    asyncio.run(store.save(tracker))
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            (data,) = conn.execute(sa.text("SELECT data FROM events WHERE sender_id = 'pg'")).one()
        assert "call me on [phone]" in data and "555 010 7788" not in data
        assert asyncio.run(store.delete("pg")) == 1
        assert "pg" not in senders(engine)
    finally:
        engine.dispose()

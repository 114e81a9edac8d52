"""The clustered deployment (omt/ops/cluster.py, `make cluster`) on real servers, on loopback.

One cluster for the module: PostgreSQL (tracker store), Redis (lock store), two Rasa
replicas with two action servers, the page server and nginx in front. The tests talk to
it as clients do, through nginx, or to one replica directly, and read what was stored
straight from PostgreSQL. They run in file order: the faults (PostgreSQL restarted, a
replica killed) come last.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from omt.bench.evaluate import contract_faults
from omt.core.knowledge import REPO_ROOT, Knowledge
from omt.core.provenance import conversation_hash
from omt.ops.cluster import Cluster, running_cluster
from tests.channels.test_channel_sms import form, messages_of, signed
from tests.ops.test_production import listening_addresses
from tests.ops.test_web_server import _socket_turns, build_web_assets

pytestmark = pytest.mark.cluster

MODEL = REPO_ROOT / "models" / "omt.tar.gz"
# Questions that stand on their own, each with the answer it gets (tests/channels/test_rest.py asks them too).
QUESTIONS = {
    "does it hurt?": "how_it_feels",
    "what is omt": "what_is_omt",
    "what techniques are there": "techniques",
    "can my baby get it": "who_can_get",
    "who performs omt": "do_training",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` first (make test does)")
    build_web_assets()
    # Not under pytest's tmp_path: its 0700 parent keeps out the postgres user that runs the server.
    workdir = Path(tempfile.mkdtemp(prefix="omt-cluster-"))
    try:
        with running_cluster(workdir, pages=True) as running:
            yield running
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def database(cluster: Cluster) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(cluster.database_url, poolclass=NullPool)  # no pooled connection outlives a restart
    yield engine
    engine.dispose()


class Reply(NamedTuple):
    status: int
    messages: list[dict[str, Any]]


def connect(base: str, source: str = "127.0.0.1", timeout: float = 60) -> http.client.HTTPConnection:
    """A connection to `base` (nginx or a replica) from the loopback address `source`."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source, 0))
    conn.connect()
    return conn


def send(conn: http.client.HTTPConnection, sender: str, text: str) -> None:
    """One message with an id of its own, as a careful client sends it: a retry of it (nginx passes
    a POST to the other replica when the first died) is then handled once (omt/channels/once.py)."""
    body = json.dumps({"sender": sender, "message": text, "message_id": uuid.uuid4().hex})
    conn.request("POST", "/webhooks/rest/webhook", body, {"Content-Type": "application/json"})


def receive(conn: http.client.HTTPConnection) -> Reply:
    try:
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, json.loads(data) if resp.status == 200 else [])
    finally:
        conn.close()


def rest(base: str, sender: str, text: str, source: str = "127.0.0.1", timeout: float = 60) -> Reply:
    """One REST turn."""
    conn = connect(base, source, timeout)
    send(conn, sender, text)
    return receive(conn)


def answer(reply: Reply, knowledge: Knowledge) -> str:
    assert reply.status == 200, reply
    answer_id, faults = contract_faults(reply.messages, knowledge)
    assert not faults, faults
    return answer_id


def stored(database: sa.engine.Engine, sender: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, type, event) of everything stored for `sender`, in order."""
    query = sa.text("SELECT id, type_name, data FROM events WHERE sender_id = :s ORDER BY id")
    with database.connect() as conn:
        return [(int(i), str(t), json.loads(d)) for i, t, d in conn.execute(query, {"s": sender})]


def turns(events: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[str, list[str]]]:
    """(user text, answer ids of the bot events before the next user event) per stored turn."""
    found: list[tuple[str, list[str]]] = []
    for _, kind, event in events:
        if kind == "user":
            found.append((event["text"], []))
        elif kind == "bot" and found:
            custom = (event.get("data") or {}).get("custom") or {}
            found[-1][1].append(str(custom.get("answer_id")))
    return found


def replies_logged(cluster: Cluster, replica: int) -> list[str]:
    """The conversation hashes of replica `replica`'s provenance log, one per reply."""
    log = cluster.stacks[replica].workdir / "replies.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line)["conversation"] for line in lines]


# --- what runs -------------------------------------------------------------------------------


def test_every_server_runs_and_listens_on_loopback_only(cluster: Cluster) -> None:
    names = set(cluster.processes())
    assert names == {"postgres", "redis", "nginx", "pages", "rasa-0", "rasa-1", "actions-0", "actions-1"}
    ports = [cluster.port, cluster.web_port, cluster.redis_port, cluster.postgres.port]
    ports += [p for s in cluster.stacks for p in (s.rasa_port, s.actions_port)]
    for port in ports:
        assert listening_addresses(port) == ["127.0.0.1"], port
    env = cluster.env()
    assert env["TRACKER_DB_URL"].startswith("postgresql://") and env["LOCK_STORE_URL"].startswith("redis://")
    assert "Conversation locks: Redis at 127.0.0.1" in cluster.logs()


# --- (a) one conversation over both replicas ---------------------------------------------------


def test_a_conversation_alternating_between_replicas_keeps_its_context(
    cluster: Cluster, database: sa.engine.Engine, knowledge: Knowledge
) -> None:
    sender = f"alt-{uuid.uuid4().hex}"
    script = [
        ("hi", "greet"),
        ("which techniques do they use", "techniques"),
        ("the third one", "myofascial_release"),  # the third of the techniques replica 1 listed
        ("tell me more", "myofascial_release"),  # the topic replica 0 answered last
    ]
    replies = []
    for i, (text, expected) in enumerate(script):
        reply = rest(cluster.replica_urls[i % 2], sender, text)
        assert answer(reply, knowledge) == expected, (i, text)
        replies.append(reply)
    assert knowledge.notice.text in replies[0].messages[0]["text"]
    assert all(knowledge.notice.text not in r.messages[0]["text"] for r in replies[1:]), "one notice, on turn one"
    assert turns(stored(database, sender)) == [(text, [expected]) for text, expected in script]
    mine = conversation_hash(sender, cluster.env().get("OMT_HASH_KEY"))
    assert [replies_logged(cluster, i).count(mine) for i in (0, 1)] == [2, 2], "each replica answered two turns"


# --- (b) a burst of messages from one patient ----------------------------------------------------


def _burst(targets: list[str], sender: str, gap: float = 0.015) -> list[Reply]:
    """The five QUESTIONS, one every `gap` seconds, each on its own connection, all before any answer is read.

    What is asserted holds however the machine's load spreads them: every message is
    written before the first reply is read, and the conversation's lock, not timing, is
    what orders them. How close together they arrive is not asserted (a loaded machine
    can delay any write); the schedule keeps them close on a quiet one.
    """
    texts = list(QUESTIONS)
    conns = [connect(targets[i % len(targets)]) for i in range(len(texts))]
    start = time.monotonic()
    for i, (conn, text) in enumerate(zip(conns, texts, strict=True)):
        time.sleep(max(0.0, start + i * gap - time.monotonic()))  # on a schedule: a late wake-up does not add up
        send(conn, sender, text)
    return [receive(conn) for conn in conns]


def test_a_burst_through_nginx_is_answered_once_each_in_order(
    cluster: Cluster, database: sa.engine.Engine, knowledge: Knowledge
) -> None:
    sender = f"burst-{uuid.uuid4().hex}"
    replies = _burst([cluster.url], sender)
    assert [answer(r, knowledge) for r in replies] == list(QUESTIONS.values()), "each reply answers its own message"
    assert turns(stored(database, sender)) == [(t, [a]) for t, a in QUESTIONS.items()], "stored once each, in order"


def test_a_burst_split_over_both_replicas_is_taken_one_at_a_time(
    cluster: Cluster, database: sa.engine.Engine, knowledge: Knowledge
) -> None:
    """Straight to the replicas, alternating: the Redis lock makes them take turns.

    Which of two replicas takes a message first is not defined for messages sent 20 ms
    apart (nginx keeps a conversation on one replica for that); that each is stored
    once, whole, with its own answer and never interleaved with another, is.
    """
    sender = f"split-{uuid.uuid4().hex}"
    replies = _burst(cluster.replica_urls, sender)
    assert [answer(r, knowledge) for r in replies] == list(QUESTIONS.values())
    stored_turns = turns(stored(database, sender))
    assert sorted(stored_turns) == sorted((t, [a]) for t, a in QUESTIONS.items()), stored_turns
    mine = conversation_hash(sender, cluster.env().get("OMT_HASH_KEY"))
    assert all(replies_logged(cluster, i).count(mine) >= 2 for i in (0, 1)), "both replicas took part"


# --- the other channels through nginx ------------------------------------------------------------


def test_sms_socketio_and_pages_work_through_nginx(cluster: Cluster, knowledge: Knowledge) -> None:
    env = cluster.env()
    assert env["SMS_WEBHOOK_URL"] == f"{cluster.url}/webhooks/sms/webhook", "Twilio signs the public URL"
    body, signature = signed(
        form("does it hurt", sender="+15550107788"), env["SMS_WEBHOOK_URL"], env["TWILIO_AUTH_TOKEN"]
    )
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    conn.request("POST", "/webhooks/sms/webhook", body, headers)
    resp = conn.getresponse()
    texts = messages_of(resp.read().decode())
    conn.close()
    assert resp.status == 200 and len(texts) == 1 and "hurt" in texts[0].lower()
    # socket.io's long-polling requests must all reach the replica that holds the session (sticky)
    session = uuid.uuid4().hex
    confirmed, events = _socket_turns(cluster.url, ["does it hurt?", "what techniques are there"], session)
    assert confirmed == session
    assert [contract_faults(e, knowledge) for e in events] == [("how_it_feels", []), ("techniques", [])]
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=30)
    conn.request("GET", "/kiosk")
    page = conn.getresponse()
    page.read()
    conn.close()
    assert page.status == 200 and f"connect-src {cluster.url}" in (page.headers["Content-Security-Policy"] or "")


# --- (d) PostgreSQL restarted ---------------------------------------------------------------------


def _answered_after_restart(base: str, sender: str, text: str, knowledge: Knowledge) -> str:
    """The answer id, allowing the database a few seconds to take connections again."""
    deadline = time.monotonic() + 30
    while True:
        reply = rest(base, sender, text)
        if reply.status == 200 or time.monotonic() > deadline:
            return answer(reply, knowledge)
        time.sleep(0.5)


def test_service_resumes_after_a_postgres_restart_and_nothing_stored_is_lost(
    cluster: Cluster, database: sa.engine.Engine, knowledge: Knowledge
) -> None:
    sender = f"pg-{uuid.uuid4().hex}"
    assert answer(rest(cluster.url, sender, "which techniques do they use"), knowledge) == "techniques"
    before = stored(database, sender)
    with database.connect() as conn:
        total_before = int(conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one())
    old_pid = cluster.postgres.pid()
    cluster.restart_postgres()
    assert cluster.postgres.pid() not in (None, old_pid), "a new server process"
    # Both replicas' pooled connections died with the old server: each must read the conversation again.
    assert _answered_after_restart(cluster.replica_urls[0], sender, "the second one", knowledge) == "muscle_energy"
    assert _answered_after_restart(cluster.replica_urls[1], sender, "tell me more", knowledge) == "muscle_energy"
    after = stored(database, sender)
    assert after[: len(before)] == before, "the conversation from before the restart is whole"
    assert [t for t, _ in turns(after)] == ["which techniques do they use", "the second one", "tell me more"]
    with database.connect() as conn:
        assert int(conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one()) > total_before
    assert "Falling back to use the 'InMemoryTrackerStore'" not in cluster.logs()


# --- (c) a replica killed under load --------------------------------------------------------------

LOAD_REQUESTS = 300
LOAD_CLIENTS = 4
# How many times the test runs on the one cluster: 1 in `make test`; the README's "20 runs in a
# row on a loaded machine" figure is OMT_KILL_RUNS=20 (it prints one line per run with -s).
KILL_RUNS = int(os.environ.get("OMT_KILL_RUNS") or 1)


@pytest.mark.parametrize("run", range(1, KILL_RUNS + 1))
def test_a_replica_killed_under_load_costs_under_one_percent_of_requests(
    cluster: Cluster, database: sa.engine.Engine, knowledge: Knowledge, run: int
) -> None:
    """SIGKILL replica 1 a quarter of the way through; then start it again and see nginx use it.

    Requests come from many loopback addresses, as from many patients: nginx allows one
    address 10 requests a second (deploy/nginx/omt.conf). Each request has a message id,
    so a request nginx passes to replica 0 after replica 1 died with it is stored once,
    even when replica 1 had stored it already.
    """
    if not cluster.replica_running(1):  # an earlier run failed before it started replica 1 again
        cluster.start_replica(1)
    texts = list(QUESTIONS)
    failures: list[tuple[int, str]] = []
    done = threading.Semaphore(0)
    logged_before = [len(replies_logged(cluster, i)) for i in (0, 1)]

    def one(i: int) -> None:
        text = texts[i % len(texts)]
        try:
            sender = f"load-{run}-{uuid.uuid4().hex}"
            reply = rest(cluster.url, sender, text, source=f"127.0.1.{i % 100 + 1}", timeout=60)
            got = contract_faults(reply.messages, knowledge) if reply.status == 200 else (f"HTTP {reply.status}", [])
            if got != (QUESTIONS[text], []):
                failures.append((i, str(got)))
        except OSError as exc:
            failures.append((i, repr(exc)))
        finally:
            done.release()

    def killer() -> None:
        for _ in range(LOAD_REQUESTS // 4):
            done.acquire()
        cluster.kill_replica(1)

    kill = threading.Thread(target=killer)
    kill.start()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        list(pool.map(one, range(LOAD_REQUESTS)))
    kill.join(timeout=60)
    assert not cluster.replica_running(1), "replica 1 was killed"
    served = [len(replies_logged(cluster, i)) - logged_before[i] for i in (0, 1)]
    query = (
        "SELECT sender_id, COUNT(*) FROM events WHERE type_name = 'user' AND sender_id LIKE :prefix GROUP BY sender_id"
    )
    with database.connect() as conn:
        messages_stored = dict(conn.execute(sa.text(query), {"prefix": f"load-{run}-%"}).all())
    twice = sum(1 for count in messages_stored.values() if count > 1)
    print(
        f"\nkill run {run}: {LOAD_REQUESTS} requests, {len(failures)} failed "
        f"({100 * len(failures) / LOAD_REQUESTS:.2f} %), stored twice {twice}, replies per replica {served}"
    )  # shown with -s
    assert len(failures) < LOAD_REQUESTS / 100, failures
    assert len(messages_stored) >= LOAD_REQUESTS - len(failures), "every answered message is stored"
    assert twice == 0, "none stored twice (a message retried after the kill included)"
    assert served[1] >= LOAD_REQUESTS // 20, f"replica 1 had its share before it died: {served}"
    assert served[0] >= LOAD_REQUESTS // 2, f"replica 0 carried on alone: {served}"

    cluster.start_replica(1)
    assert answer(rest(cluster.replica_urls[1], f"back-{uuid.uuid4().hex}", "what is omt"), knowledge) == "what_is_omt"
    back = len(replies_logged(cluster, 1))
    deadline, i = time.monotonic() + 120, 0  # nginx tries a failed server again after its fail_timeout
    while len(replies_logged(cluster, 1)) == back and time.monotonic() < deadline:
        i += 1
        rest(cluster.url, f"back-{uuid.uuid4().hex}", "what is omt", source=f"127.0.2.{i % 100 + 1}")
        time.sleep(0.2)
    assert len(replies_logged(cluster, 1)) > back, "nginx sends replica 1 conversations again"

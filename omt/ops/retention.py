"""Retention: delete conversations idle for more than N days from the tracker store (`make purge DAYS=N`).

Why here and not in Rasa: Rasa keeps every conversation for ever. A conversation goes as
a whole once its LAST event is older than the cutoff, so a patient who is still talking
never loses the start of their conversation. Works on Rasa's SQL `events` table (SQLite
and PostgreSQL) through SQLAlchemy; one transaction, and running it twice deletes
nothing more. Without Rasa imports, so it is quick to run from cron. The message ids
that make a retried message be answered once are the stored user events' own
(omt/core/idempotency.py), so they and the replies kept for a retry go with the conversation.

    python -m omt.ops.retention --days 30 [--db-url postgresql://user:pw@host/db]

The database: --db-url, else TRACKER_DB_URL, else the SQLite file TRACKER_DB
(default .data/tracker.db), the same file `make run` uses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_SQLITE = ".data/tracker.db"
SECONDS_PER_DAY = 86_400
# Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent): the two columns used here.
EVENTS = sa.table("events", sa.column("sender_id"), sa.column("timestamp"))


@dataclass(frozen=True)
class Purged:
    """What one run deleted."""

    conversations: int
    events: int


def cutoff(days: float, now: float | None = None) -> float:
    """The UNIX time before which a conversation's last event makes it stale."""
    if days < 0:
        raise ValueError("days must be 0 or more")
    return (time.time() if now is None else now) - days * SECONDS_PER_DAY


def stale_senders(before: float) -> sa.sql.Select:
    """Conversations whose newest event is older than `before` (Rasa's timestamps are UNIX seconds)."""
    return sa.select(EVENTS.c.sender_id).group_by(EVENTS.c.sender_id).having(sa.func.max(EVENTS.c.timestamp) < before)


def purge(engine: sa.engine.Engine, days: float, now: float | None = None) -> Purged:
    """Delete every conversation idle for more than `days` days; how many went.

    The DELETE re-evaluates staleness itself, so a conversation that receives a message
    while this runs is kept whole.
    """
    before = cutoff(days, now)
    if not sa.inspect(engine).has_table("events"):
        return Purged(0, 0)
    with engine.begin() as conn:
        stale = stale_senders(before).subquery()
        conversations = int(conn.execute(sa.select(sa.func.count()).select_from(stale)).scalar_one())
        result = conn.execute(sa.delete(EVENTS).where(EVENTS.c.sender_id.in_(stale_senders(before))))
    return Purged(conversations, int(result.rowcount or 0))


def database_url(env: Mapping[str, str], explicit: str | None = None) -> str:
    """The database to purge: the explicit URL, TRACKER_DB_URL, or the SQLite file TRACKER_DB."""
    url = explicit or env.get("TRACKER_DB_URL")
    if url:
        return url
    return f"sqlite:///{Path(env.get('TRACKER_DB') or DEFAULT_SQLITE).resolve()}"


def safe_url(url: str) -> str:
    """The URL for printing: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delete conversations idle for more than DAYS days.")
    parser.add_argument("--days", type=float, required=True, help="idle days after which a conversation goes")
    parser.add_argument("--db-url", help="SQLAlchemy URL (default: TRACKER_DB_URL, else sqlite:///$TRACKER_DB)")
    args = parser.parse_args(argv)
    if args.days < 0:
        parser.error("--days must be 0 or more")
    url = database_url(os.environ if env is None else env, args.db_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        print(f"purge: no tracker database at {parsed.database}; nothing to delete")
        return 0
    engine = sa.create_engine(url)
    try:
        purged = purge(engine, args.days)
    finally:
        engine.dispose()
    print(
        f"purge: deleted {purged.conversations} conversation(s), {purged.events} event(s) "
        f"idle for more than {args.days:g} day(s) from {safe_url(url)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

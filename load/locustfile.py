"""Simulated patients for `make load`: a few-turn conversation each, with think time between messages.

Run by omt.bench.load in its own venv (.venv-load, requirements-load.txt: Locust's gevent and
Flask must not touch Rasa's pinned venv), so this file imports from omt only
omt.bench.scoring, which needs nothing beyond the standard library: a reply is judged by the
same rule as in `make eval` and `make bench`. What patients say comes from omt.bench.patients
as a JSON file; what was sent, per sender, and every latency go back as JSON for omt.bench.load
to check against the tracker store.

    OMT_LOAD_SCRIPTS  JSON list of conversations (lists of messages)
    OMT_LOAD_OUT      where to write the results when Locust quits
    OMT_LOAD_PREFIX   sender id prefix of this run
    OMT_LOAD_THINK    think time between messages, "min,max" seconds (2,8)
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for omt.bench.scoring
from omt.bench.scoring import reply_problem

SCRIPTS: list[list[str]] = json.loads(Path(os.environ["OMT_LOAD_SCRIPTS"]).read_text(encoding="utf-8"))
PREFIX = os.environ.get("OMT_LOAD_PREFIX", "load")
THINK = tuple(float(x) for x in os.environ.get("OMT_LOAD_THINK", "2,8").split(","))
WEBHOOK = "/webhooks/rest/webhook"
MAX_ERROR_SAMPLES = 10

SENT: dict[str, int] = {}
SAMPLES: list[tuple[float, bool]] = []  # (latency ms, ok)
ERRORS: list[str] = []
_user_index = itertools.count()


class _FromAddress(HTTPAdapter):
    """Connects from a loopback address of the user's own, so nginx's per-client limit sees separate patients."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


class Patient(HttpUser):
    """One patient: a conversation from the scripts, then another (a new sender id), until the run ends."""

    wait_time = between(*THINK)

    def on_start(self) -> None:
        index = next(_user_index)
        if (urlsplit(self.host).hostname or "").startswith("127."):
            self.client.mount("http://", _FromAddress(f"127.0.{1 + index // 250}.{1 + index % 250}"))
        self.rng = random.Random(index)
        self.turns: list[str] = []
        self.sender = ""

    @task
    def say(self) -> None:
        """One message and its reply; Locust waits the think time before the next."""
        if not self.turns:
            self.turns = list(self.rng.choice(SCRIPTS))
            self.sender = f"{PREFIX}-{uuid.uuid4().hex[:16]}"
        text = self.turns.pop(0)
        SENT[self.sender] = SENT.get(self.sender, 0) + 1
        start = time.perf_counter()
        body = {"sender": self.sender, "message": text}
        with self.client.post(WEBHOOK, json=body, name="webhook", catch_response=True, timeout=30) as resp:
            problem = reply_problem("webhook", resp.status_code, resp.text or "")
            if problem:
                resp.failure(problem)
                if len(ERRORS) < MAX_ERROR_SAMPLES:
                    ERRORS.append(problem)
            else:
                resp.success()
        SAMPLES.append(((time.perf_counter() - start) * 1000, problem is None))


@events.quitting.add_listener
def _write_results(environment: Any, **_: Any) -> None:
    """Everything omt.bench.load needs, once every user has stopped."""
    out = {
        "sent": SENT,
        "latencies_ms": [round(ms, 2) for ms, _ in SAMPLES],
        "ok": [ok for _, ok in SAMPLES],
        "error_samples": ERRORS,
        "locust_failures": environment.stats.total.num_failures,
        "locust_requests": environment.stats.total.num_requests,
    }
    Path(os.environ["OMT_LOAD_OUT"]).write_text(json.dumps(out), encoding="utf-8")

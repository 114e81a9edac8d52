"""A closed-loop HTTP load generator (asyncio + aiohttp) for `make bench`.

Closed loop: each simulated user sends a message, waits for the reply, sends the next one
at once (no think time), and starts a new conversation (a new sender id) when its
script runs out. So the offered load is set by the number of users, and replies per
second and latency at 1, 8 or 32 users say what one stack sustains. Every run is bounded
by a deadline and a request budget, and stops by itself.

Each user connects from its own loopback address (127.0.x.y) when the target is on
loopback, as separate patients would: nginx's per-client rate limit would otherwise
count all of them as one client and answer 429.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

import aiohttp

from omt.bench.scoring import ReplyKind, reply_problem

MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Target:
    """Where to send: a REST webhook (`{"sender", "message"}`) or Rasa's `/model/parse` (`{"text"}`).

    `kind` also says what a good reply is (omt.bench.scoring.reply_problem): "webhook" for our
    assistant (one contract payload), "any_webhook" for a bot without payloads.
    """

    url: str
    kind: ReplyKind = "webhook"
    token: str | None = None  # Rasa's --auth-token, sent as ?token= (only /model/parse needs it)

    def request(self, sender: str, text: str) -> tuple[str, dict[str, Any]]:
        """(url, JSON body) of one message."""
        if self.kind == "parse":
            url = f"{self.url}?token={self.token}" if self.token else self.url
            return url, {"text": text}
        return self.url, {"sender": sender, "message": text}


@dataclass(frozen=True)
class Sample:
    """One request: when it finished (seconds since the run started), its latency and its turn in the conversation."""

    finished_s: float
    latency_ms: float
    turn: int
    ok: bool


@dataclass
class RunResult:
    """What one run measured; `summary()` is what reports show."""

    users: int
    samples: list[Sample] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # messages sent per sender id
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(not s.ok for s in self.samples)

    @property
    def ok_latencies(self) -> list[float]:
        return [s.latency_ms for s in self.samples if s.ok]

    def summary(self) -> dict[str, Any]:
        ok = self.ok_latencies
        return {
            "users": self.users,
            "requests": len(self.samples),
            "errors": self.errors,
            "error_samples": self.error_samples,
            "seconds": round(self.elapsed_s, 2),
            "replies_per_s": round(len(ok) / self.elapsed_s, 2) if self.elapsed_s > 0 else 0.0,
            "p50_ms": round(percentile(ok, 50), 1) if ok else None,
            "p95_ms": round(percentile(ok, 95), 1) if ok else None,
            "conversations": len(self.sent),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def source_address(index: int, url: str) -> tuple[str, int] | None:
    """A loopback source address of its own for user `index`, when the target is on loopback."""
    host = urlsplit(url).hostname or ""
    if not host.startswith("127."):
        return None
    return (f"127.0.{1 + index // 250}.{1 + index % 250}", 0)


class _Budget:
    """The shared stop rule: no request starts after the deadline or beyond the request budget."""

    def __init__(self, seconds: float | None, requests: int | None) -> None:
        if seconds is None and requests is None:
            raise ValueError("a run needs a duration or a request budget")
        self.deadline = time.monotonic() + seconds if seconds is not None else float("inf")
        self.left = requests if requests is not None else -1

    def take(self) -> bool:
        if time.monotonic() >= self.deadline or self.left == 0:
            return False
        self.left -= 1
        return True


async def _user(
    index: int,
    target: Target,
    scripts: Iterator[Sequence[str]],
    budget: _Budget,
    result: RunResult,
    start: float,
    prefix: str,
    timeout: float,
) -> None:
    connector = aiohttp.TCPConnector(limit=1, local_addr=source_address(index, target.url))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        while True:
            script = next(scripts)
            sender = f"{prefix}-{uuid.uuid4().hex[:16]}"
            for turn, text in enumerate(script, start=1):
                if not budget.take():
                    return
                result.sent[sender] = result.sent.get(sender, 0) + 1
                url, body = target.request(sender, text)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=body) as resp:
                        problem = reply_problem(target.kind, resp.status, await resp.read())
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                t1 = time.perf_counter()
                result.samples.append(Sample(t1 - start, (t1 - t0) * 1000, turn, problem is None))
                if problem and len(result.error_samples) < MAX_ERROR_SAMPLES:
                    result.error_samples.append(problem)


async def closed_loop_async(
    target: Target,
    scripts: Sequence[Sequence[str]],
    users: int,
    seconds: float | None = None,
    max_requests: int | None = None,
    prefix: str = "load",
    timeout: float = 30.0,
) -> RunResult:
    """Run `users` closed-loop users over `scripts` (cycled) until the deadline or the budget runs out."""
    if not scripts:
        raise ValueError("no scripts")
    budget = _Budget(seconds, max_requests)
    result = RunResult(users=users)
    shared = itertools.cycle(scripts)  # one iterator: users take the next conversation in turn
    start = time.perf_counter()
    await asyncio.gather(*(_user(i, target, shared, budget, result, start, prefix, timeout) for i in range(users)))
    result.elapsed_s = max((s.finished_s for s in result.samples), default=time.perf_counter() - start)
    return result


def closed_loop(
    target: Target,
    scripts: Sequence[Sequence[str]],
    users: int,
    seconds: float | None = None,
    max_requests: int | None = None,
    prefix: str = "load",
    timeout: float = 30.0,
) -> RunResult:
    """`closed_loop_async` for synchronous callers."""
    return asyncio.run(closed_loop_async(target, scripts, users, seconds, max_requests, prefix, timeout))


def turn_latencies(result: RunResult) -> list[float]:
    """Latency of each turn of a one-user, one-conversation run, in order (ms)."""
    return [s.latency_ms for s in sorted(result.samples, key=lambda s: s.turn)]

"""`make load`: simulated patients (Locust, headless, on loopback) against the single stack and the cluster.

    python -m omt.bench.load [--duration 5m] [--users 50] [--spawn-rate 5] [--think 2,8] [--targets single,cluster]

Each simulated patient holds a few-turn conversation (omt.bench.patients: our own regression
questions and follow-ups, never the shared development set) with 2-8 s of think time
between messages, then starts another. The run is bounded by --duration and stops by
itself; Locust runs from its own venv (.venv-load) so that gevent and Flask never touch
Rasa's pinned one.

It passes when there were no errors (non-200, not JSON, not exactly one contract payload,
time-out) and every message sent is stored: the user events of each sender of the run,
counted in the tracker store afterwards (SQLite for the single stack, PostgreSQL for the
cluster via Cluster.database_url), equal what Locust sent. Also prints p50/p95 latency
and the memory growth (RSS after minus before) of the Rasa and action-server processes.
Writes reports/load.json; exits 1 on a failure. The cluster is measured when omt.ops.cluster
is importable, else skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import create_engine, text

from omt.bench.bench_core import rss_mb, stack_rss
from omt.bench.loadgen import Target, closed_loop, percentile
from omt.bench.patients import our_conversations
from omt.core.knowledge import REPO_ROOT
from omt.ops.stack import running_stack

LOCUST = REPO_ROOT / ".venv-load" / "bin" / "locust"
LOCUSTFILE = REPO_ROOT / "load" / "locustfile.py"
STOP_TIMEOUT_S = 35  # users finish the message in flight (the webhook's own time-out is 30 s)


def seconds(duration: str) -> int:
    """'5m', '30s', '1h30m' or a plain number of seconds."""
    if duration.isdigit():
        return int(duration)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration.strip())
    if not parts or not any(parts.groups()):
        raise argparse.ArgumentTypeError(f"not a duration: {duration!r} (e.g. 5m, 30s)")
    h, m, s = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def count_user_events(database_url: str, prefix: str) -> dict[str, int]:
    """User events stored per sender whose id starts with `prefix` (Rasa's SQL store: table `events`)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT sender_id, COUNT(*) FROM events WHERE type_name = 'user' AND sender_id LIKE :p "
                    "GROUP BY sender_id"
                ),
                {"p": f"{prefix}-%"},
            )
            return {str(sender): int(n) for sender, n in rows}
    finally:
        engine.dispose()


def storage_check(sent: Mapping[str, int], stored: Mapping[str, int]) -> list[dict[str, Any]]:
    """Senders whose stored user events differ from the messages sent (missing, or stored without being sent)."""
    senders = sorted(set(sent) | set(stored))
    return [
        {"sender": s, "sent": sent.get(s, 0), "stored": stored.get(s, 0)}
        for s in senders
        if sent.get(s, 0) != stored.get(s, 0)
    ]


def settled_counts(database_url: str, prefix: str, sent: Mapping[str, int], wait_s: float = 10) -> dict[str, int]:
    """Stored counts, re-read for up to `wait_s` while they still differ (a timed-out turn may still be saving)."""
    deadline = time.monotonic() + wait_s
    stored = count_user_events(database_url, prefix)
    while storage_check(sent, stored) and time.monotonic() < deadline:
        time.sleep(1)
        stored = count_user_events(database_url, prefix)
    return stored


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def processes_of(workdir: Path) -> dict[str, list[int]]:
    """Rasa and action-server processes started for `workdir`: their command line, environment or cwd names it.

    The cluster does not hand out its processes; every one of them is started with its
    workdir in its environment or arguments (logs, databases), which is what this looks for.
    """
    marker = str(workdir.resolve())
    found: dict[str, list[int]] = {"rasa": [], "actions": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "rasa run" not in cmd and "omt.rasa.run run" not in cmd:  # Rasa starts through omt/rasa/run.py
                continue
            env = (entry / "environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if marker in cmd or marker in env or cwd.startswith(marker):
            found["actions" if "run actions" in cmd else "rasa"].append(int(entry.name))
    return found


def processes_rss(workdir: Path) -> dict[str, float]:
    """Total RSS (MB) of the Rasa processes and of the action servers found for `workdir` (children counted once)."""
    found = processes_of(workdir)
    pids = {p for group in found.values() for p in group}
    return {kind: sum(rss_mb(p) for p in group if _ppid(p) not in pids) for kind, group in found.items() if group}


def run_locust(
    url: str, users: int, spawn_rate: float, duration_s: int, think: str, work: Path, prefix: str
) -> dict[str, Any]:
    """Locust, headless, against `url` for `duration_s`; its results file (what was sent, latencies, errors)."""
    scripts = work / "conversations.json"
    scripts.write_text(json.dumps(our_conversations(1000, seed=23)), encoding="utf-8")
    out = work / "locust-results.json"
    env = dict(os.environ, OMT_LOAD_SCRIPTS=str(scripts), OMT_LOAD_OUT=str(out), OMT_LOAD_PREFIX=prefix)
    env["OMT_LOAD_THINK"] = think
    args = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--host", url, "--users", str(users),
        "--spawn-rate", str(spawn_rate), "--run-time", f"{duration_s}s", "--stop-timeout", str(STOP_TIMEOUT_S),
        "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    log = work / "locust.log"
    with log.open("wb") as sink:
        proc = subprocess.run(
            args, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=duration_s + 180, check=False
        )
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"locust exited with {proc.returncode}; {log}:\n{tail}")
    return dict(json.loads(out.read_text(encoding="utf-8")))


def measure(
    name: str,
    url: str,
    database_url: str,
    rss: Callable[[], dict[str, float]],
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """Warm up, memory before, Locust, memory after, then check every sent message against the store."""
    prefix = f"load-{name}-{uuid.uuid4().hex[:8]}"
    warm = closed_loop(
        Target(f"{url}/webhooks/rest/webhook"), our_conversations(20, seed=3), 2, max_requests=10, prefix="warmup"
    )
    rss_before = rss()
    duration = seconds(args.duration)
    print(f"{name}: {args.users} patients for {duration} s against {url} ...", flush=True)
    started = time.perf_counter()
    result = run_locust(url, args.users, args.spawn_rate, duration, args.think, work, prefix)
    elapsed = time.perf_counter() - started
    rss_after = rss()
    sent: dict[str, int] = result["sent"]
    stored = settled_counts(database_url, prefix, sent)
    mismatches = storage_check(sent, stored)
    ok_latencies = [ms for ms, ok in zip(result["latencies_ms"], result["ok"], strict=True) if ok]
    errors = len(result["ok"]) - len(ok_latencies) + (sum(sent.values()) - len(result["ok"]))  # + never finished
    figures: dict[str, Any] = {
        "target": name,
        "url": url,
        "users": args.users,
        "duration_s": duration,
        "think_s": [float(x) for x in args.think.split(",")],
        "wall_s": round(elapsed, 1),
        "conversations": len(sent),
        "messages_sent": sum(sent.values()),
        "replies_ok": len(ok_latencies),
        "errors": errors,
        "warmup_errors": warm.errors,
        "error_samples": result["error_samples"],
        "stored_user_events": sum(stored.values()),
        "storage_mismatches": len(mismatches),
        "storage_mismatch_samples": mismatches[:10],
        "replies_per_s": round(len(ok_latencies) / duration, 2) if duration else 0.0,
        "p50_ms": round(percentile(ok_latencies, 50), 1) if ok_latencies else None,
        "p95_ms": round(percentile(ok_latencies, 95), 1) if ok_latencies else None,
        "max_ms": round(max(ok_latencies), 1) if ok_latencies else None,
        "rss_before_mb": {k: round(v, 1) for k, v in rss_before.items()},
        "rss_after_mb": {k: round(v, 1) for k, v in rss_after.items()},
        "rss_growth_mb": {k: round(rss_after[k] - rss_before[k], 1) for k in rss_before if k in rss_after},
    }
    figures["pass"] = bool(figures["messages_sent"]) and errors == 0 and warm.errors == 0 and not mismatches
    return figures


def _single(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with running_stack(work) as stack:
        return measure("single", stack.url, f"sqlite:///{stack.tracker_db}", lambda: stack_rss(stack), args, work)


def _cluster(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    try:
        from omt.ops.cluster import running_cluster  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        return {"target": "cluster", "skipped": f"omt.ops.cluster is not importable yet ({exc})"}
    with running_cluster(work) as cluster:
        return measure("cluster", cluster.url, cluster.database_url, lambda: cluster_rss(cluster, work), args, work)


def cluster_rss(cluster: Any, workdir: Path) -> dict[str, float]:
    """Total RSS (MB) of the cluster's Rasa replicas and of its action servers.

    From `Cluster.memory()` ({"rasa-0": MB, "actions-0": MB, "postgres": MB, ...}) when the
    cluster has it, else from the processes found for its workdir.
    """
    memory = getattr(cluster, "memory", None)
    if not callable(memory):
        return processes_rss(workdir)
    per_process: dict[str, float] = memory()
    totals: dict[str, float] = {}
    for name, mb in per_process.items():
        kind = name.split("-", 1)[0]
        if kind in ("rasa", "actions"):
            totals[kind] = totals.get(kind, 0.0) + mb
    return totals


def report(results: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The printed figures, one block per target."""
    for r in results:
        if "skipped" in r:
            yield f"{r['target']}: SKIPPED ({r['skipped']})"
            continue
        growth = ", ".join(f"{k} {r['rss_before_mb'][k]:.0f} -> {r['rss_after_mb'][k]:.0f} MB ({v:+.1f})"
                           for k, v in r["rss_growth_mb"].items())  # fmt: skip
        yield (
            f"{r['target']}: {'PASS' if r['pass'] else 'FAIL'}  {r['users']} patients, {r['duration_s']} s, "
            f"think {r['think_s'][0]:g}-{r['think_s'][1]:g} s\n"
            f"  messages sent {r['messages_sent']} in {r['conversations']} conversations; replies {r['replies_ok']} "
            f"({r['replies_per_s']}/s); errors {r['errors']}\n"
            f"  stored user events {r['stored_user_events']}; senders whose count differs: {r['storage_mismatches']}\n"
            f"  latency p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms\n"
            f"  memory: {growth or 'not measured'}"
        )
        for sample in r["error_samples"][:5]:
            yield f"  error: {sample}"
        for m in r["storage_mismatch_samples"][:5]:
            yield f"  stored != sent: {m}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="5m", help="how long the patients talk, e.g. 5m, 30s (5m)")
    parser.add_argument("--users", type=int, default=50, help="simulated patients (50)")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="patients started per second (5)")
    parser.add_argument("--think", default="2,8", help="think time between messages, min,max seconds (2,8)")
    parser.add_argument("--targets", default="single,cluster", help="single and/or cluster (single,cluster)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "reports" / "load.json")
    args = parser.parse_args(argv)
    seconds(args.duration)  # fail early on a bad duration
    names = args.targets.split(",")
    if not names or set(names) - {"single", "cluster"}:
        parser.error("--targets: single, cluster or single,cluster")
    if not LOCUST.exists():
        print(
            f"{LOCUST} is missing: run `make load` (it builds .venv-load from requirements-load.txt)", file=sys.stderr
        )
        return 2
    work_root = REPO_ROOT / "reports" / "tmp" / "load"
    results = []
    for name in names:
        work = work_root / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results.append(_single(args, work) if name == "single" else _cluster(args, work))
    print("\n".join(report(results)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": results}, indent=2), encoding="utf-8")
    print(f"wrote {args.json}; logs and databases in {work_root}")
    return 0 if all(r.get("pass", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Single-user figures of the embedded stack, printed (not asserted by unit tests).

    python -m omt.bench_core [--turns 200] [--train]

Prints: training time from scratch (with --train: Rasa's cache and the model are
rebuilt in a temporary folder), start-up time to the first answer, resident memory of
the Rasa server and the action server, and single-user REST latency (p50/p95) over
`--turns` questions in conversations of ten turns. Writes reports/bench_core.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

from omt.evaluate import post
from omt.knowledge import REPO_ROOT
from omt.stack import VENV_BIN, Stack, free_port

QUESTIONS = [
    "does it hurt",
    "what is omt",
    "can my baby have it",
    "what techniques are there",
    "the second one",
    "tell me more",
    "does it help migraines",
    "how much does it cost",
    "is it safe when pregnant",
    "thanks",
]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def train_seconds(workdir: Path) -> float:
    """`rasa train` from scratch: empty cache, fresh output folder."""
    env = dict(
        os.environ,
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
        RASA_CACHE_DIRECTORY=str(workdir / "cache"),
    )
    start = time.perf_counter()
    subprocess.run(
        [str(VENV_BIN / "rasa"), "train", "--out", str(workdir / "models"), "--fixed-model-name", "bench"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_core.json"))
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.train:
            figures["train_from_scratch_s"] = train_seconds(work)
        stack = Stack(rasa_port=free_port(), actions_port=free_port(), workdir=work)
        try:
            start = time.perf_counter()
            stack.start_actions()
            stack.start_rasa()
            post(stack.rest_url, "bench-warmup", "hello")
            figures["startup_to_first_answer_s"] = time.perf_counter() - start
            latencies = []
            sender = ""
            for i in range(args.turns):
                if i % len(QUESTIONS) == 0:
                    sender = f"bench-{uuid.uuid4().hex}"
                t0 = time.perf_counter()
                post(stack.rest_url, sender, QUESTIONS[i % len(QUESTIONS)])
                latencies.append((time.perf_counter() - t0) * 1000)
            latencies.sort()
            figures["rest_p50_ms"] = statistics.median(latencies)
            figures["rest_p95_ms"] = latencies[int(0.95 * (len(latencies) - 1))]
            figures["rasa_rss_mb"] = rss_mb(stack.procs[1].pid)
            figures["actions_rss_mb"] = rss_mb(stack.procs[0].pid)
        finally:
            stack.stop()
    for name, value in figures.items():
        print(f"{name:28s} {value:10.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

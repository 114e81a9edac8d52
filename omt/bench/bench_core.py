"""Single-user figures of the embedded stack, printed (not asserted by unit tests).

    python -m omt.bench.bench_core [--turns 200] [--train]

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

from omt.bench.evaluate import post
from omt.core.knowledge import REPO_ROOT
from omt.ops.processes import free_port
from omt.ops.stack import RASA_COMMAND, VENV_BIN, Stack

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


def timed_rasa(
    args: Sequence[str], cwd: Path, cache_dir: Path, log: Path | None = None, command: Sequence[str] = ()
) -> float:
    """Wall time of one `rasa ...` command run with Rasa's training cache in `cache_dir` (empty: from scratch).

    `command`: how Rasa is started; stock Rasa by default (the reference bot).
    """
    env = dict(
        os.environ,
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
        RASA_CACHE_DIRECTORY=str(cache_dir),
    )
    start = time.perf_counter()
    with open(log or os.devnull, "ab") as out:
        argv = [*(command or [str(VENV_BIN / "rasa")]), *args]
        code = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=out).returncode
    if code != 0:
        raise RuntimeError(f"`rasa {' '.join(args)}` exited with {code}" + (f"; its output is in {log}" if log else ""))
    return time.perf_counter() - start


def train_seconds(workdir: Path, log: Path | None = None) -> float:
    """`rasa train` of our bot from scratch: empty cache, fresh output folder."""
    out = ["--out", str(workdir / "models"), "--fixed-model-name", "bench"]
    return timed_rasa(["train", *out], REPO_ROOT, workdir / "cache", log, command=RASA_COMMAND)


def start_timed(stack: Stack, actions: bool = True, rasa_args: Sequence[str] = (), first: str = "hello") -> float:
    """Start the stack (action server unless `actions` is False, then Rasa); seconds to the first answer."""
    start = time.perf_counter()
    if actions:
        stack.start_actions()
    stack.start_rasa(extra_args=tuple(rasa_args))
    post(stack.rest_url, f"bench-warmup-{uuid.uuid4().hex}", first)
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
            figures["startup_to_first_answer_s"] = start_timed(stack)
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
            rss = stack.memory()
            figures["rasa_rss_mb"] = rss["rasa"]
            figures["actions_rss_mb"] = rss["actions"]
        finally:
            stack.stop()
    for name, value in figures.items():
        print(f"{name:28s} {value:10.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

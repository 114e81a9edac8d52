"""Measure the red-flag screener: false alarms, recall and speed, printed as figures.

    python -m omt.screen_report [--ordinary FILE ...] [--phrasings FILE]

`--ordinary` takes files of ordinary (non-emergency) messages: a Rasa NLU file (every
example of every intent except `emergency`), a question file in the dev format (every
question whose allowed answers do not include `emergency`), or plain text, one per line.
Speed is measured here, not in unit tests: a loaded CI machine must not fail a build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import yaml

from omt.safety import default_lexicon, screen

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def ordinary_messages(path: Path) -> list[str]:
    """Non-emergency messages from an NLU file, a question file or a text file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix not in (".yml", ".yaml"):
        return [line.strip() for line in text.splitlines() if line.strip()]
    data = yaml.safe_load(text) or {}
    if "nlu" in data:
        return [
            line.strip()[2:]
            for block in data["nlu"]
            if block.get("intent") and block["intent"] != "emergency"
            for line in str(block.get("examples", "")).splitlines()
            if line.strip().startswith("- ")
        ]
    turns = [c for c in data.get("single") or []] + [t for m in data.get("multi") or [] for t in m["turns"]]
    return [str(t["q"]) for t in turns if "emergency" not in t["ok"]]


def timing(text: str, runs: int) -> float:
    """Median milliseconds to screen `text` (after one warm-up call)."""
    screen(text)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        screen(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ordinary", type=Path, nargs="+", default=[Path("data/nlu.yml"), FIXTURES / "ordinary_questions.txt"]
    )
    parser.add_argument("--phrasings", type=Path, default=FIXTURES / "red_flag_phrasings.yml")
    args = parser.parse_args(argv)
    default_lexicon()
    total_alarms = total = 0
    for path in args.ordinary:
        messages = ordinary_messages(path)
        alarms = [m for m in messages if screen(m) is not None]
        total += len(messages)
        total_alarms += len(alarms)
        print(f"false alarms on {path}: {len(alarms)}/{len(messages)} = {len(alarms) / max(len(messages), 1):.2%}")
        for message in alarms:
            print(f"  {message!r}")
    print(f"false alarms overall: {total_alarms}/{total} = {total_alarms / max(total, 1):.2%}")
    phrasings = yaml.safe_load(args.phrasings.read_text(encoding="utf-8"))
    cases = [(cat, t) for cat, texts in phrasings.items() for t in texts]
    caught = sum(1 for _, t in cases if screen(t) is not None)
    print(f"recall on {len(cases)} emergency phrasings ({len(phrasings)} categories): {caught / len(cases):.2%}")
    typical = "Hi, I was wondering whether OMT could help my lower back pain after gardening, thanks!"
    unit = "my chest is not hurting but does omt help, pain in my back and neck aaaa bbbb. "
    print(
        f"speed: {timing(typical, 200):.3f} ms for {len(typical)} chars; "
        f"{timing(unit * 125, 5):.1f} ms for 10k chars; {timing(unit * 500, 5):.1f} ms for 40k chars"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the red-flag screener: false alarms, recall and speed, printed as figures.

    python -m omt.bench.screen_report [--ordinary FILE ...] [--phrasings FILE] [--after FILE] [--blind FILE]

`--ordinary` takes files of ordinary (non-emergency) messages: a Rasa NLU file (every
example of every intent except `emergency`), a question file in the dev format (every
question whose allowed answers do not include `emergency`), or plain text, one per line.
A directory given to `--ordinary` stands for every *.yml file in it (the eval sets).
Recall is per category: a phrasing counts when it fires with the right reply key
("after_treatment" for the after-treatment fixtures, "crisis" for crisis categories).
The blind set (written without the lexicon in view, never tuned against) is reported
apart. Speed is measured here, not in unit tests: a loaded CI machine must not fail a build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from omt.bench.corpus import ordinary_messages
from omt.core.safety import AFTER_TREATMENT, RedFlag, default_lexicon, screen

# Intents and answer ids whose messages are emergencies, not ordinary questions.
EMERGENCY_LABELS = ("emergency", "crisis")
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yml files (missing ones are skipped, said so)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path.glob("*.yml")))
        elif path.exists():
            out.append(path)
        else:
            print(f"(skipped, not found: {path})")
    return out


def expected_reply(category: str, after: bool) -> str:
    """The reply key a fixture phrasing must get."""
    reply = next(c.reply for c in default_lexicon().categories if c.id == category)
    return reply if reply == "crisis" or not after else AFTER_TREATMENT


def caught(flag: RedFlag | None, reply: str) -> bool:
    return flag is not None and flag.reply == reply


Screen = Callable[[str], RedFlag | None]


def recall_report(phrasings: dict[str, list[str]], after: dict[str, list[str]], fn: Screen = screen) -> None:
    """Recall per category, and the after-treatment counts of each post-treatment category."""
    post = {c.id for c in default_lexicon().categories if c.post_treatment}
    total = hits = 0
    for cat in phrasings:
        cases = [(t, False) for t in phrasings[cat]] + [(t, True) for t in after.get(cat, [])]
        n = sum(caught(fn(t), expected_reply(cat, a)) for t, a in cases)
        total, hits = total + len(cases), hits + n
        extra = f"; {len(after.get(cat, []))} after treatment" if cat in post or cat in after else ""
        print(f"  {cat:<22} {n}/{len(cases)} = {n / max(len(cases), 1):.1%}{extra}")
    print(f"recall on {total} fixture phrasings ({len(phrasings)} categories): {hits}/{total} = {hits / total:.2%}")


def blind_report(blind: dict[str, Any], fn: Screen = screen) -> None:
    """Recall on the blind set, per group; and its ordinary questions' false alarms."""
    total = hits = 0
    for group, body in blind.items():
        if group == "ordinary":
            continue
        n = size = 0
        for kind, texts in body.items():
            for text in texts:
                flag = fn(text)
                if group == "crisis":
                    ok = caught(flag, "crisis")
                else:
                    ok = caught(flag, AFTER_TREATMENT) if kind == "after_treatment" else flag is not None
                n, size = n + ok, size + 1
        total, hits = total + size, hits + n
        print(f"  {group:<22} {n}/{size}")
    print(f"blind recall (never tuned against): {hits}/{total} = {hits / total:.2%}")
    ordinary = blind.get("ordinary", [])
    alarms = sum(fn(t) is not None for t in ordinary)
    print(f"blind ordinary questions: {alarms}/{len(ordinary)} false alarms")


def timing(text: str, runs: int, fn: Screen = screen) -> float:
    """Median milliseconds to screen `text` (after one warm-up call)."""
    fn(text)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ordinary", type=Path, nargs="+", default=[Path("data/nlu.yml"), FIXTURES / "ordinary_questions.txt"]
    )
    parser.add_argument("--phrasings", type=Path, default=FIXTURES / "red_flag_phrasings.yml")
    parser.add_argument("--after", type=Path, default=FIXTURES / "red_flags_after_treatment.yml")
    parser.add_argument("--blind", type=Path, default=FIXTURES / "red_flags_blind.yml")
    parser.add_argument(
        "--medspacy", action="store_true", help="also measure medspaCy's ConText as the context judge (slow)"
    )
    args = parser.parse_args(argv)
    default_lexicon()
    report(args, screen, "our context rules")
    if args.medspacy:
        try:
            from omt.bench.screen_medspacy import pipeline, screen_medspacy

            pipeline()
        except ImportError as exc:
            print(f"--medspacy needs medspaCy ({exc}): pip install medspacy==1.3.1 -c constraints.txt")
            return 2
        report(args, screen_medspacy, "medspaCy ConText (default rules + our history/hypothetical phrases)")
    return 0


def report(args: argparse.Namespace, fn: Screen, title: str) -> None:
    """Every figure for one screening function."""
    print(f"=== {title}")
    total_alarms = total = 0
    for path in expand(args.ordinary):
        messages = ordinary_messages(path, exclude=EMERGENCY_LABELS)
        alarms = [m for m in messages if fn(m) is not None]
        total += len(messages)
        total_alarms += len(alarms)
        print(f"false alarms on {path}: {len(alarms)}/{len(messages)} = {len(alarms) / max(len(messages), 1):.2%}")
        for message in alarms:
            print(f"  {message!r}")
    print(f"false alarms overall: {total_alarms}/{total} = {total_alarms / max(total, 1):.2%}")
    print("recall per category (fixtures written with the lexicon in view):")
    recall_report(
        yaml.safe_load(args.phrasings.read_text(encoding="utf-8")),
        yaml.safe_load(args.after.read_text(encoding="utf-8")),
        fn,
    )
    print("blind set (written from the category list only, before the lexicon was read):")
    blind_report(yaml.safe_load(args.blind.read_text(encoding="utf-8")), fn)
    typical = "Hi, I was wondering whether OMT could help my lower back pain after gardening, thanks!"
    unit = "my chest is not hurting but does omt help, pain in my back and neck aaaa bbbb. "
    print(
        f"speed: {timing(typical, 200, fn):.3f} ms for {len(typical)} chars; "
        f"{timing(unit * 125, 5, fn):.1f} ms for 10k chars; {timing(unit * 500, 5, fn):.1f} ms for 40k chars"
    )


if __name__ == "__main__":
    sys.exit(main())

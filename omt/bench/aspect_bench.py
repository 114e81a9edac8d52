"""Measure topic-and-aspect routing: the same NLU with and without omt.core.aspects.

    python -m omt.bench.aspect_bench --questions ../shared/eval/real_dev.yml [--model models/omt.tar.gz] [--folds 5]

For each question file (first turn of each conversation), and optionally for k-fold
cross-validation of our NLU data, prints accuracy (answer id allowed), the counts, and
cited precision (of the knowledge answers given, the share whose id is allowed), once
with the classifier alone and once with aspect routing, as the actions do. One model
serves both columns, so the difference is the routing's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from omt.bench.evaluate import load_questions
from omt.bench.nlu_bench import Parse, answer_for, rasa_parser, training_examples, with_thresholds, write_nlu
from omt.bench.thresholds import folds
from omt.core.contract import KNOWLEDGE_IDS, parent_id
from omt.core.knowledge import get_knowledge


@dataclass
class Score:
    """Counts for one column: right / asked, and knowledge answers right / given."""

    right: int = 0
    asked: int = 0
    cited_right: int = 0
    cited: int = 0

    def add(self, got: str, allowed: Sequence[str]) -> None:
        ok = parent_id(got) in allowed
        self.asked += 1
        self.right += ok
        if parent_id(got) in KNOWLEDGE_IDS:
            self.cited += 1
            self.cited_right += ok

    def __str__(self) -> str:
        acc = self.right / max(self.asked, 1)
        prec = self.cited_right / max(self.cited, 1)
        cited = f"cited precision {prec:.3f} ({self.cited_right}/{self.cited})"
        return f"accuracy {acc:.3f} ({self.right}/{self.asked}), {cited}"


Rows = list[tuple[str, Parse, list[str]]]


def model_parser(model: Path) -> Callable[[str], Parse]:
    """Parse function of an already trained model (the NLU part)."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()

    def parse(text: str) -> Parse:
        result = loop.run_until_complete(agent.parse_message(text))
        ranking = [(r["name"], float(r["confidence"])) for r in result.get("intent_ranking") or []]
        intent = result.get("intent") or {}
        confidence = float(intent.get("confidence") or 0)
        return Parse(str(intent.get("name")), confidence, ranking, result.get("entities") or [])

    return parse


def question_rows(parse: Callable[[str], Parse], path: Path) -> Rows:
    return [(conv[0].question, parse(conv[0].question), conv[0].ok) for conv in load_questions(path)]


def cv_rows(config: Path, k: int, workdir: Path) -> Rows:
    """Out-of-sample predictions of our own NLU data; gold is what the label means (no routing)."""
    knowledge = get_knowledge()
    rows: Rows = []
    parts = folds(training_examples(), k)
    for i, held_out in enumerate(parts):
        fold_dir = workdir / f"fold{i}"
        fold_dir.mkdir()
        write_nlu([ex for j, part in enumerate(parts) if j != i for ex in part], fold_dir / "nlu.yml")
        parse, _ = rasa_parser(config, fold_dir, nlu=str(fold_dir / "nlu.yml"))
        for text, intent in held_out:
            gold = answer_for(text, Parse(intent, 1.0, [(intent, 1.0)], []), knowledge, route_aspects=False)
            rows.append((text, parse(text), [parent_id(gold)]))
        print(f"fold {i + 1}/{k} done", file=sys.stderr, flush=True)
    return rows


def report(name: str, rows: Rows, show_changes: bool) -> None:
    knowledge = get_knowledge()
    plain, routed = Score(), Score()
    changes = []
    for text, parse, allowed in rows:
        a = answer_for(text, parse, knowledge, route_aspects=False)
        b = answer_for(text, parse, knowledge, route_aspects=True)
        plain.add(a, allowed)
        routed.add(b, allowed)
        if a != b:
            mark = {(False, True): "+", (True, False): "-"}.get((parent_id(a) in allowed, parent_id(b) in allowed), "=")
            changes.append(f"  {mark} {a} -> {b}: {text!r}")
    print(f"{name}: {len(rows)} messages")
    print(f"  classifier alone:       {plain}")
    print(f"  with aspect routing:    {routed}")
    if show_changes:
        print("\n".join(changes))


def threshold_table(name: str, rows: Rows, thresholds: Sequence[float], ambiguities: Sequence[float]) -> None:
    """Accuracy and cited precision (with routing) per FallbackClassifier operating point."""
    knowledge = get_knowledge()
    print(f"{name}: operating points (threshold, ambiguity): accuracy, cited precision, fallbacks")
    for threshold in thresholds:
        for ambiguity in ambiguities:
            score, fallbacks = Score(), 0
            for text, parse, allowed in rows:
                got = answer_for(text, with_thresholds(parse, threshold, ambiguity), knowledge)
                score.add(got, allowed)
                fallbacks += got == "fallback"
            print(f"  {threshold:.2f} {ambiguity:.2f}: {score}, fallbacks {fallbacks}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, nargs="+", required=True)
    ap.add_argument("--model", type=Path, default=Path("models/omt.tar.gz"))
    ap.add_argument("--config", type=Path, default=Path("config.yml"))
    ap.add_argument("--folds", type=int, default=0, help="k-fold CV of data/ too (k trainings)")
    ap.add_argument("--changes", action="store_true", help="list the messages whose answer routing changed")
    ap.add_argument("--sweep", action="store_true", help="also accuracy / cited precision per fallback threshold")
    args = ap.parse_args(argv)
    parse = model_parser(args.model)
    for path in args.questions:
        rows = question_rows(parse, path)
        report(str(path), rows, args.changes)
        if args.sweep:
            threshold_table(str(path), rows, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.0, 0.05, 0.1, 0.2])
    if args.folds:
        with tempfile.TemporaryDirectory() as tmp:
            report(f"{args.folds}-fold CV of data/", cv_rows(args.config, args.folds, Path(tmp)), args.changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score NLU pipelines side by side on the same training data and the same questions.

    python -m omt.nlu_bench --questions PATH [--configs config.yml bench/rasa_default.yml] [--tfidf]

Each Rasa config is trained on data/ (NLU only) and scored on the question file; the
TF-IDF + logistic-regression baseline from scikit-learn is trained on the same examples.
A prediction becomes an answer id the way the assistant does it: the red-flag screener
first, then the intent (refined by entities for general topics), `nlu_fallback` and
`nonsense` as `fallback`. Prints accuracy, macro-F1, not-covered recall, training time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from omt.contract import ALL_IDS, KNOWLEDGE_IDS, parent_id
from omt.evaluate import load_questions
from omt.knowledge import Knowledge, get_knowledge
from omt.routing import mentioned_topics, refine_topic
from omt.safety import screen

FALLBACK_INTENTS = {"nlu_fallback", "nonsense"}
# Intents that only make sense after an earlier turn; alone, they are "not understood".
CONTEXT_INTENTS = {"tell_me_more", "choose_option", "affirm", "deny"}
SERVICE_ACTIONS = {"affirm": "capabilities", "deny": "goodbye"}


@dataclass
class Parse:
    """What an NLU pipeline made of one message."""

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]
    entities: list[dict[str, Any]]


def answer_for(text: str, parse: Parse, knowledge: Knowledge) -> str:
    """The answer id the assistant would give for this parse of a first message."""
    if screen(text) is not None or parse.intent in ("emergency", "crisis"):
        return "emergency"
    if parse.intent in FALLBACK_INTENTS or parse.intent in CONTEXT_INTENTS - set(SERVICE_ACTIONS):
        return "fallback"
    if parse.intent in KNOWLEDGE_IDS:
        return refine_topic(parse.intent, mentioned_topics(knowledge, parse.entities))
    return SERVICE_ACTIONS.get(parse.intent, parse.intent)


def with_thresholds(parse: Parse, threshold: float, ambiguity: float) -> Parse:
    """Apply FallbackClassifier's rule to a parse made without it (for sweeps)."""
    ranking = [r for r in parse.ranking if r[0] != "nlu_fallback"]
    if not ranking:
        return parse
    top = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    if top < threshold or top - second < ambiguity:
        return Parse("nlu_fallback", 1.0, ranking, parse.entities)
    return Parse(ranking[0][0], top, ranking, parse.entities)


def training_examples(data_dir: Path = Path("data")) -> list[tuple[str, str]]:
    """(text, intent) pairs of the NLU training data, as Rasa reads them."""
    from rasa.shared.nlu.training_data.loading import load_data

    nlu_files = [f for f in sorted(data_dir.glob("*.yml")) if "\nnlu:" in f.read_text(encoding="utf-8")]
    examples = []
    for path in nlu_files:
        examples += [(m.get("text"), m.get("intent")) for m in load_data(str(path)).intent_examples]
    return examples


def rasa_parser(config: Path, workdir: Path, nlu: str = "data") -> tuple[Callable[[str], Parse], float]:
    """Train a Rasa NLU model from `config` on `nlu`; return its parse function and seconds."""
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    start = time.perf_counter()
    model = train_nlu(str(config), nlu, str(workdir), fixed_model_name=config.stem)
    seconds = time.perf_counter() - start
    if model is None:
        raise RuntimeError(f"training {config} failed")
    agent = Agent.load(model)
    loop = asyncio.new_event_loop()

    def parse(text: str) -> Parse:
        result = loop.run_until_complete(agent.parse_message(text))
        ranking = [(r["name"], float(r["confidence"])) for r in result.get("intent_ranking") or []]
        intent = result.get("intent") or {}
        return Parse(
            str(intent.get("name")), float(intent.get("confidence") or 0), ranking, result.get("entities") or []
        )

    return parse, seconds


def tfidf_parser(examples: Sequence[tuple[str, str]]) -> tuple[Callable[[str], Parse], float]:
    """TF-IDF (words + character n-grams) and logistic regression: the classic baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    start = time.perf_counter()
    model = make_pipeline(
        FeatureUnion(
            [
                ("words", TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True)),
                ("chars", TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
            ]
        ),
        LogisticRegression(max_iter=2000, C=10.0),
    )
    model.fit([t for t, _ in examples], [i for _, i in examples])
    seconds = time.perf_counter() - start
    classes = list(model.classes_)

    def parse(text: str) -> Parse:
        probs = model.predict_proba([text])[0]
        ranking = sorted(zip(classes, (float(p) for p in probs), strict=True), key=lambda r: -r[1])
        return Parse(ranking[0][0], ranking[0][1], ranking, [])

    return parse, seconds


def macro_f1(pairs: Sequence[tuple[str, str]]) -> float:
    """Macro-F1 over answer ids (gold = first allowed id)."""
    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    scores = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return statistics.mean(scores) if scores else 0.0


def score(parse: Callable[[str], Parse], questions: Path, knowledge: Knowledge, **thresholds: float) -> dict[str, Any]:
    """Accuracy, macro-F1 and not-covered recall on single questions (and each multi turn alone)."""
    turns = [t for conv in load_questions(questions) for t in conv]
    rows = []
    for turn in turns:
        p = parse(turn.question)
        if thresholds:
            p = with_thresholds(p, thresholds["threshold"], thresholds["ambiguity"])
        rows.append((turn, answer_for(turn.question, p, knowledge), p))
    right = [parent_id(got) in turn.ok for turn, got, _ in rows]
    nc = [r for r, (turn, _, _) in zip(right, rows, strict=True) if "not_covered" in turn.ok]
    return {
        "accuracy": sum(right) / len(rows),
        # An allowed alternative counts as the first allowed id; anything else is itself.
        "macro_f1": macro_f1(
            [(t.ok[0], t.ok[0] if ok else parent_id(got)) for (t, got, _), ok in zip(rows, right, strict=True)]
        ),
        "not_covered_recall": sum(nc) / len(nc) if nc else float("nan"),
        "n": len(rows),
        "misses": [(turn.question, got, turn.ok) for (turn, got, _), ok in zip(rows, right, strict=True) if not ok],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--configs", type=Path, nargs="+", default=[Path("config.yml"), Path("bench/rasa_default.yml")])
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_nlu.json"))
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    logging.getLogger().setLevel(logging.ERROR)
    knowledge = get_knowledge()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A private training cache: every pipeline trains from scratch, so times compare.
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")
        for config in args.configs:
            parse, seconds = rasa_parser(config, Path(tmp))
            results[config.stem] = {**score(parse, args.questions, knowledge), "train_seconds": seconds}
    if not args.no_tfidf:
        parse, seconds = tfidf_parser(training_examples())
        tfidf = score(parse, args.questions, knowledge, threshold=0.3, ambiguity=0.0)
        results["tfidf_logreg"] = {**tfidf, "train_seconds": seconds}
    print(f"{'pipeline':18s} {'accuracy':>9s} {'macro_f1':>9s} {'nc_recall':>9s} {'train_s':>8s}")
    for name, r in results.items():
        figures = f"{r['accuracy']:9.3f} {r['macro_f1']:9.3f} {r['not_covered_recall']:9.3f} {r['train_seconds']:8.1f}"
        print(f"{name:18s} {figures}")
    ours = results.get(args.configs[0].stem)
    if ours:
        for name, r in results.items():
            if r is not ours and r["accuracy"]:
                acc = ours["accuracy"] / r["accuracy"]
                f1 = ours["macro_f1"] / max(r["macro_f1"], 1e-9)
                print(f"ours/{name}: accuracy x{acc:.3f}, macro-F1 x{f1:.3f}")
    if args.show_misses:
        for name, r in results.items():
            for q, got, ok in r["misses"]:
                print(f"  {name}: MISS {q!r}: got {got}, wanted {'/'.join(ok)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    assert all(parent_id(m[1]) in ALL_IDS for r in results.values() for m in r["misses"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score NLU pipelines side by side: same training data, same questions, same threshold rule, same entities.

    python -m omt.bench.nlu_bench --questions PATH [--configs config.yml bench/rasa_default.yml] [--folds 5]

Each Rasa config is trained on data/ (NLU only); the TF-IDF + logistic-regression
baseline from scikit-learn on the same examples. Every pipeline's fallback thresholds
are chosen by the one rule of omt.bench.thresholds (on its own cross-validated predictions
plus the question file), so no pipeline is judged at thresholds tuned for another.
Entities come from our entity ruler (build/spacy_omt) for every pipeline alike, since
routing by a named topic is dialogue, not classification. A prediction becomes an
answer id the way the assistant does it: the red-flag screener first, then the intent
(refined by entities for general topics), `nlu_fallback` and `nonsense` as `fallback`.
Prints accuracy, cited precision, macro-F1 and not-covered recall with their counts,
the chosen thresholds and training time, in one run.
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
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from omt.bench.evaluate import Turn, load_questions, score
from omt.core import aspects
from omt.core.contract import FOLLOW_UP_INTENTS, KNOWLEDGE_IDS, SAFETY_REPLIES, parent_id
from omt.core.knowledge import Knowledge, get_knowledge
from omt.core.replies import personal_fact
from omt.core.routing import mentioned_topics, refine_topic
from omt.core.safety import screen

FALLBACK_INTENTS = {"nlu_fallback", "nonsense"}
# Intents that only make sense after an earlier turn; alone, they are "not understood".
CONTEXT_INTENTS = {*FOLLOW_UP_INTENTS, "affirm", "deny"}
SERVICE_ACTIONS = {"affirm": "capabilities", "deny": "goodbye"}
SPACY_PIPELINE = Path("build/spacy_omt")
WIDTHS = (16, 17, 8, 18, 10, 7)  # the columns of the printed table

Example = tuple[str, str]  # (text, intent)


@dataclass
class Parse:
    """What an NLU pipeline made of one message."""

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]
    entities: list[dict[str, Any]]


Parser = Callable[[str], Parse]
# Train on these examples (in this scratch directory); the parse function and training seconds.
Trainer = Callable[[Sequence[Example], Path], tuple[Parser, float]]


@lru_cache(maxsize=8192)
def _red_flag(text: str) -> bool:
    """The screener's verdict, once per text: a threshold sweep asks about each text a hundred times."""
    return screen(text) is not None


def answer_for(text: str, parse: Parse, knowledge: Knowledge, route_aspects: bool = True) -> str:
    """The answer id the assistant would give for this parse of a first message.

    With `route_aspects`, as the actions do: a question about an aspect the topic does not
    answer (cost, risks, ...) gets its not-covered reply (omt.core.aspects).
    """
    if _red_flag(text) or parse.intent in SAFETY_REPLIES:
        return "emergency"
    mentioned = mentioned_topics(knowledge, parse.entities)
    if parse.intent in FALLBACK_INTENTS or parse.intent in CONTEXT_INTENTS - set(SERVICE_ACTIONS):
        answer = "fallback"
    elif parse.intent in KNOWLEDGE_IDS:
        answer = refine_topic(parse.intent, mentioned, text, knowledge.scope_cues)
    else:
        answer = SERVICE_ACTIONS.get(parse.intent, parse.intent)
    answer = aspects.route(answer, text) if route_aspects else answer
    if answer == "personal_advice":  # with the cited caution for a named condition, as the reply has it
        answer = personal_fact(mentioned) or answer
    return answer


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


def nlu_files(data_dir: Path = Path("data")) -> list[Path]:
    """The data files with an `nlu:` section (every one, whoever added it)."""
    return [f for f in sorted(data_dir.glob("*.yml")) if "\nnlu:" in f.read_text(encoding="utf-8")]


def training_examples(data_dir: Path = Path("data")) -> list[Example]:
    """(text, intent) pairs of the NLU training data, as Rasa reads them."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = []
    for path in nlu_files(data_dir):
        examples += [(m.get("text"), m.get("intent")) for m in load_data(str(path)).intent_examples]
    return examples


def nlu_extras(data_dir: Path = Path("data")) -> list[dict[str, Any]]:
    """The NLU items that are not intent examples (synonyms, lookups, regexes): every fold keeps them."""
    items = []
    for path in nlu_files(data_dir):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items += [item for item in spec.get("nlu") or [] if isinstance(item, dict) and "intent" not in item]
    return items


def write_nlu(examples: Sequence[Example], path: Path, extras: Sequence[dict[str, Any]] = ()) -> None:
    """An NLU training file of these examples (plus synonyms and lookups)."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in examples:
        by_intent.setdefault(intent, []).append(text)
    nlu = [{"intent": i, "examples": "".join(f"- {t}\n" for t in texts)} for i, texts in by_intent.items()]
    path.write_text(
        yaml.safe_dump({"version": "3.1", "nlu": [*nlu, *extras]}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )


def rasa_parser(config: Path, workdir: Path, nlu: str = "data") -> tuple[Parser, float]:
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


def rasa_trainer(config: Path, extras: Sequence[dict[str, Any]]) -> Trainer:
    """A Trainer for a Rasa config: writes the examples (and extras) to an NLU file, trains on it."""

    def train(examples: Sequence[Example], workdir: Path) -> tuple[Parser, float]:
        workdir.mkdir(parents=True, exist_ok=True)
        write_nlu(examples, workdir / "nlu.yml", extras)
        return rasa_parser(config, workdir, nlu=str(workdir / "nlu.yml"))

    return train


def tfidf_parser(examples: Sequence[Example], workdir: Path | None = None) -> tuple[Parser, float]:
    """TF-IDF (words + character n-grams) and logistic regression: the classic baseline (a Trainer).

    The same model is the second vote of our pipeline (omt.rasa.nlu_vote); here it stands alone.
    """
    from omt.rasa.nlu_vote import probabilities, train_lexical

    start = time.perf_counter()
    model = train_lexical([t for t, _ in examples], [i for _, i in examples])
    seconds = time.perf_counter() - start

    def parse(text: str) -> Parse:
        ranking = probabilities(model, text)
        return Parse(ranking[0][0], ranking[0][1], ranking, [])

    return parse, seconds


@lru_cache(maxsize=1)
def _entity_ruler() -> Any:
    import spacy

    return spacy.load(SPACY_PIPELINE)


def ruler_entities(text: str) -> list[dict[str, Any]]:
    """Our entity ruler's topics in the text: the same entities for every pipeline."""
    return [{"entity": e.label_, "value": e.ent_id_ or e.text} for e in _entity_ruler()(text).ents]


def with_entities(parse: Parser, entities: Callable[[str], list[dict[str, Any]]] = ruler_entities) -> Parser:
    """The parser with its own entities replaced by `entities(text)`: all pipelines see the same ones."""

    def wrapped(text: str) -> Parse:
        p = parse(text)
        return Parse(p.intent, p.confidence, p.ranking, entities(text))

    return wrapped


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


def score_answers(turns: Sequence[Turn]) -> dict[str, Any]:
    """evaluate.score's figures (accuracy, cited precision, with counts) plus macro-F1 and not-covered recall."""
    figures = score(turns)
    # An allowed alternative counts as the first allowed id; anything else is itself.
    figures["macro_f1"] = round(macro_f1([(t.ok[0], t.ok[0] if t.right else parent_id(t.got)) for t in turns]), 4)
    nc = [t for t in turns if "not_covered" in {parent_id(o) for o in t.ok}]
    figures["not_covered_right"] = sum(t.right for t in nc)
    figures["not_covered"] = len(nc)
    return figures


def answers(rows: Sequence[tuple[str, Parse, list[str]]], threshold: float, ambiguity: float) -> list[Turn]:
    """Each (text, raw parse, allowed ids) row as a scored turn, at these thresholds."""
    knowledge = get_knowledge()
    return [
        Turn(text, list(ok), got=answer_for(text, with_thresholds(parse, threshold, ambiguity), knowledge))
        for text, parse, ok in rows
    ]


def question_rows(parse: Parser, questions: Path) -> list[tuple[str, Parse, list[str]]]:
    """(text, raw parse, allowed ids) for every turn of the question file, each taken alone."""
    return [(t.question, parse(t.question), t.ok) for conv in load_questions(questions) for t in conv]


def bench_pipeline(
    name: str, trainer: Trainer, examples: Sequence[Example], questions: Path, folds: int, workdir: Path, target: float
) -> dict[str, Any]:
    """One pipeline: CV + full training, thresholds by the shared rule, scores on the questions."""
    from omt.bench.thresholds import choose, cross_validate, sweep  # here: omt.bench.thresholds imports this module

    cv_rows = cross_validate(trainer, examples, folds, workdir / "cv", label=name)
    parse, seconds = trainer(examples, workdir / "full")
    q_rows = question_rows(with_entities(parse), questions)
    chosen = choose(sweep({"cv": cv_rows, "questions": q_rows}), target)
    figures = score_answers(answers(q_rows, chosen["threshold"], chosen["ambiguity"]))
    return {**figures, "threshold": chosen["threshold"], "ambiguity": chosen["ambiguity"], "train_seconds": seconds}


HEADS = ("accuracy", "cited precision", "macro_f1", "not-covered recall", "thresholds", "train_s")


def table_header() -> str:
    return f"{'pipeline':14s} " + " ".join(f"{h:>{w}s}" for h, w in zip(HEADS, WIDTHS, strict=True))


def table_row(name: str, r: dict[str, Any]) -> str:
    """One pipeline's ratios with their counts."""
    nc = r["not_covered_right"] / r["not_covered"] if r["not_covered"] else float("nan")
    cells = (
        f"{r['accuracy']:.3f} ({r['right']}/{r['n']})",
        f"{r['cited_precision']:.3f} ({r['cited_right']}/{r['cited']})",
        f"{r['macro_f1']:.3f}",
        f"{nc:.3f} ({r['not_covered_right']}/{r['not_covered']})",
        f"{r['threshold']:.2f}/{r['ambiguity']:.2f}",
        f"{r['train_seconds']:.1f}",
    )
    return f"{name:14s} " + " ".join(f"{c:>{w}s}" for c, w in zip(cells, WIDTHS, strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    from omt.bench.thresholds import DEFAULT_TARGET, rule_text  # here: omt.bench.thresholds imports this module

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--configs", type=Path, nargs="*", default=[Path("config.yml"), Path("bench/rasa_default.yml")])
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=DEFAULT_TARGET)
    parser.add_argument("--json", type=Path, default=Path("reports/bench_nlu.json"))
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    if not args.questions.is_file():
        raise SystemExit(f"no question file {args.questions}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    logging.getLogger().setLevel(logging.ERROR)
    examples = training_examples()
    extras = nlu_extras()
    # The quick baseline first: its row is printed within minutes.
    pipelines: dict[str, Trainer] = {} if args.no_tfidf else {"tfidf_logreg": tfidf_parser}
    pipelines.update({c.stem: rasa_trainer(c, extras) for c in args.configs})
    results: dict[str, dict[str, Any]] = {}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A private training cache: every pipeline trains from scratch, so times compare.
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")
        for name, trainer in pipelines.items():
            results[name] = bench_pipeline(
                name, trainer, examples, args.questions, args.folds, Path(tmp) / name, args.min_precision
            )
            # Each row as soon as it is known: a long run cut short still tells something.
            print(f"{table_header()}\n{table_row(name, results[name])}", flush=True)
            args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"{len(examples)} training examples; questions: {args.questions}")
    print(f"thresholds, every pipeline: {rule_text(args.min_precision, args.folds)}")
    print("\n".join([table_header(), *(table_row(name, r) for name, r in results.items())]))
    ours = results.get(args.configs[0].stem) if args.configs else None
    if ours:
        for name, r in results.items():
            if r is not ours:
                print(f"ours - {name}: accuracy {ours['accuracy'] - r['accuracy']:+.3f}, "
                      f"cited precision {ours['cited_precision'] - r['cited_precision']:+.3f}")  # fmt: skip
    if args.show_misses:
        for name, r in results.items():
            for miss in r["misses"]:
                print(f"  {name}: MISS {miss['q']!r}: got {miss['got']}, wanted {'/'.join(miss['wanted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

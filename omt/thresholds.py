"""Choose FallbackClassifier's thresholds on evidence, not by feel.

    python -m omt.thresholds --questions PATH [--folds 5] [--min-precision 0.98]

Collects out-of-sample predictions: k-fold cross-validation over our own NLU data
(each example predicted by a model that never saw it) plus the question file. Then
sweeps `threshold` x `ambiguity_threshold`: a message is *answered* when the top intent
clears both, and *right* when its answer is allowed. Prints precision of answered
messages against the share answered, for all messages and for each part, and plots it.

The choice: the largest share of all messages answered while precision on the question
file (real patient questions) stays >= --min-precision, with an ambiguity threshold of
at least --min-ambiguity (so that two topics too close to call still get "did you
mean…?"). Our training data is deliberately harder than real questions (one-word
fragments, typos), so its cross-validated precision is reported beside it, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import yaml

from omt.contract import parent_id
from omt.evaluate import load_questions
from omt.knowledge import get_knowledge
from omt.nlu_bench import Parse, answer_for, rasa_parser, training_examples, with_thresholds

THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 19)]
AMBIGUITIES = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2]


def folds(examples: Sequence[tuple[str, str]], k: int, seed: int = 42) -> list[list[tuple[str, str]]]:
    """Stratified-enough split: shuffle within each intent, deal round-robin."""
    rng = random.Random(seed)
    by_intent: dict[str, list[tuple[str, str]]] = {}
    for ex in examples:
        by_intent.setdefault(ex[1], []).append(ex)
    parts: list[list[tuple[str, str]]] = [[] for _ in range(k)]
    for items in by_intent.values():
        rng.shuffle(items)
        for i, ex in enumerate(items):
            parts[i % k].append(ex)
    return parts


def write_nlu(examples: Sequence[tuple[str, str]], path: Path) -> None:
    by_intent: dict[str, list[str]] = {}
    for text, intent in examples:
        by_intent.setdefault(intent, []).append(text)
    nlu = [{"intent": i, "examples": "".join(f"- {t}\n" for t in texts)} for i, texts in by_intent.items()]
    path.write_text(
        yaml.safe_dump({"version": "3.1", "nlu": nlu}, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )


def collect(config: Path, questions: Path, k: int, workdir: Path) -> list[tuple[str, Parse, list[str]]]:
    """(text, raw parse, allowed answer ids) for every out-of-sample message: CV first, then questions."""
    knowledge = get_knowledge()
    examples = training_examples()
    rows: list[tuple[str, Parse, list[str]]] = []
    parts = folds(examples, k)
    for i, held_out in enumerate(parts):
        fold_dir = workdir / f"fold{i}"
        fold_dir.mkdir()
        write_nlu([ex for j, part in enumerate(parts) if j != i for ex in part], fold_dir / "nlu.yml")
        parse, _ = rasa_parser(config, fold_dir, nlu=str(fold_dir / "nlu.yml"))
        for text, intent in held_out:
            predicted = parse(text)
            # The right answer is what the labelled intent leads to, mapped the same way
            # as a prediction (context intents alone are "fallback", affirm is capabilities).
            gold = Parse(intent, 1.0, [(intent, 1.0)], predicted.entities)
            rows.append((text, predicted, [answer_for(text, gold, knowledge)]))
        print(f"fold {i + 1}/{k}: {len(held_out)} predictions", flush=True)
    parse, _ = rasa_parser(config, workdir / "full")
    rows += [(t.question, parse(t.question), t.ok) for conv in load_questions(questions) for t in conv]
    return rows


def _point(rows: list[tuple[str, Parse, list[str]]], threshold: float, ambiguity: float) -> tuple[float, float]:
    """(share answered, precision of answered) for one threshold pair."""
    knowledge = get_knowledge()
    answered = right = 0
    for text, parse, allowed in rows:
        got = answer_for(text, with_thresholds(parse, threshold, ambiguity), knowledge)
        if got == "fallback" and "fallback" not in allowed:
            continue  # not answered: asks to rephrase
        answered += 1
        right += parent_id(got) in allowed
    return answered / max(len(rows), 1), right / answered if answered else 1.0


def sweep(
    cv_rows: list[tuple[str, Parse, list[str]]], q_rows: list[tuple[str, Parse, list[str]]]
) -> list[dict[str, float]]:
    """Answered share and precision per threshold pair: all messages, CV part, questions part."""
    table = []
    for threshold in THRESHOLDS:
        for ambiguity in AMBIGUITIES:
            answered, precision = _point(cv_rows + q_rows, threshold, ambiguity)
            cv_answered, cv_precision = _point(cv_rows, threshold, ambiguity)
            q_answered, q_precision = _point(q_rows, threshold, ambiguity)
            table.append(
                {
                    "threshold": threshold,
                    "ambiguity": ambiguity,
                    "answered": answered,
                    "precision": precision,
                    "cv_answered": cv_answered,
                    "cv_precision": cv_precision,
                    "q_answered": q_answered,
                    "q_precision": q_precision,
                }
            )
    return table


def choose(table: list[dict[str, float]], min_precision: float, min_ambiguity: float) -> dict[str, float]:
    """Largest share answered with question precision >= min_precision (ties: higher thresholds)."""
    ok = [r for r in table if r["q_precision"] >= min_precision and r["ambiguity"] >= min_ambiguity]
    ok = ok or [max(table, key=lambda r: r["q_precision"])]
    return max(ok, key=lambda r: (round(r["answered"], 6), r["threshold"], r["ambiguity"]))


def plot(table: list[dict[str, float]], chosen: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for ambiguity in (0.0, 0.05, 0.1):
        pts = [r for r in table if r["ambiguity"] == ambiguity]
        ax.plot(
            [r["answered"] for r in pts], [r["precision"] for r in pts], marker=".", label=f"all, ambiguity {ambiguity}"
        )
        ax.plot(
            [r["q_answered"] for r in pts], [r["q_precision"] for r in pts], ls="--", marker="x",
            label=f"questions only, ambiguity {ambiguity}",
        )  # fmt: skip
    for x, y in ((chosen["answered"], chosen["precision"]), (chosen["q_answered"], chosen["q_precision"])):
        ax.scatter([x], [y], s=160, facecolors="none", edgecolors="red", linewidths=2)
    ax.annotate(
        f"chosen: threshold {chosen['threshold']}, ambiguity {chosen['ambiguity']}",
        (chosen["answered"], chosen["precision"]),
        textcoords="offset points",
        xytext=(-260, 70),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("share of messages answered (not 'did you mean…?')")
    ax.set_ylabel("precision of answered messages")
    ax.set_title("FallbackClassifier thresholds: out-of-sample predictions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument("--min-ambiguity", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--reuse", action="store_true", help="re-sweep the saved predictions without training")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    cache = args.out / "thresholds_predictions.json"
    if args.reuse and cache.exists():
        rows = [(t, Parse(**p), ok) for t, p, ok in json.loads(cache.read_text(encoding="utf-8"))]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = collect(args.config, args.questions, args.folds, Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([(t, vars(p), ok) for t, p, ok in rows]), encoding="utf-8")
    n_questions = sum(len(conv) for conv in load_questions(args.questions))
    cv_rows, q_rows = rows[:-n_questions], rows[-n_questions:]
    table = sweep(cv_rows, q_rows)
    chosen = choose(table, args.min_precision, args.min_ambiguity)
    print(f"{len(cv_rows)} cross-validated predictions of our data + {len(q_rows)} questions")
    heads = ("threshold", "ambiguity", "answered", "precision", "cv_prec", "q_answ", "q_prec")
    print(" ".join(f"{h:>9s}" for h in heads))
    for r in table:
        mark = "  <- chosen" if r is chosen else ""
        print(
            f"{r['threshold']:9.2f} {r['ambiguity']:9.2f} {r['answered']:9.3f} {r['precision']:9.3f} "
            f"{r['cv_precision']:8.3f} {r['q_answered']:7.3f} {r['q_precision']:7.3f}{mark}"
        )
    plot(table, chosen, args.out / "thresholds.png")
    (args.out / "thresholds.json").write_text(
        json.dumps({"chosen": chosen, "table": table}, indent=2), encoding="utf-8"
    )
    best_all = [r for r in table if r["precision"] >= args.min_precision]
    print(
        f"chosen: threshold {chosen['threshold']}, ambiguity_threshold {chosen['ambiguity']}: questions precision "
        f"{chosen['q_precision']:.3f} answering {chosen['q_answered']:.3f}; all messages precision "
        f"{chosen['precision']:.3f} answering {chosen['answered']:.3f}; plot: {args.out / 'thresholds.png'}"
    )
    if best_all:
        top = max(best_all, key=lambda r: r["answered"])
        print(
            f"precision >= {args.min_precision} on ALL messages needs threshold {top['threshold']}: "
            f"it would answer only {top['answered']:.3f} of them"
        )
    else:
        print(f"precision >= {args.min_precision} on ALL messages is reached at no threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())

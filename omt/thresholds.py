"""Choose FallbackClassifier's thresholds on evidence, not by feel.

    python -m omt.thresholds --questions PATH [--folds 5] [--min-precision 0.98]

Collects out-of-sample predictions: k-fold cross-validation over our own NLU data
(each example predicted by a model that never saw it) plus the question file. Then
sweeps `threshold` x `ambiguity_threshold`: a message is *answered* when the top intent
clears both, and *right* when its answer is allowed. Prints precision of answered
messages against the share answered, picks the point with the largest share answered
whose precision is >= --min-precision, and plots the curve with that point marked.
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
from omt.nlu_bench import FALLBACK_INTENTS, Parse, answer_for, rasa_parser, training_examples, with_thresholds

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
    path.write_text(yaml.safe_dump({"version": "3.1", "nlu": nlu}, sort_keys=False, allow_unicode=True), encoding="utf-8")


def collect(config: Path, questions: Path, k: int, workdir: Path) -> list[tuple[str, Parse, list[str]]]:
    """(text, raw parse, allowed answer ids) for every out-of-sample message."""
    examples = training_examples()
    rows: list[tuple[str, Parse, list[str]]] = []
    parts = folds(examples, k)
    for i, held_out in enumerate(parts):
        fold_dir = workdir / f"fold{i}"
        fold_dir.mkdir()
        write_nlu([ex for j, part in enumerate(parts) if j != i for ex in part], fold_dir / "nlu.yml")
        parse, _ = rasa_parser(config, fold_dir, nlu=str(fold_dir / "nlu.yml"))
        for text, intent in held_out:
            allowed = ["fallback"] if intent in FALLBACK_INTENTS else [intent]
            rows.append((text, parse(text), allowed))
        print(f"fold {i + 1}/{k}: {len(held_out)} predictions", flush=True)
    parse, _ = rasa_parser(config, workdir / "full")
    rows += [(t.question, parse(t.question), t.ok) for conv in load_questions(questions) for t in conv]
    return rows


def sweep(rows: list[tuple[str, Parse, list[str]]]) -> list[dict[str, float]]:
    """Precision of answered messages and share answered, per threshold pair."""
    knowledge = get_knowledge()
    table = []
    for threshold in THRESHOLDS:
        for ambiguity in AMBIGUITIES:
            answered = right = 0
            for text, parse, allowed in rows:
                got = answer_for(text, with_thresholds(parse, threshold, ambiguity), knowledge)
                if got == "fallback" and "fallback" not in allowed:
                    continue  # not answered: asks to rephrase
                answered += 1
                right += parent_id(got) in allowed
            table.append(
                {
                    "threshold": threshold,
                    "ambiguity": ambiguity,
                    "answered": answered / len(rows),
                    "precision": right / answered if answered else 1.0,
                }
            )
    return table


def choose(table: list[dict[str, float]], min_precision: float) -> dict[str, float]:
    """The largest share answered at the wanted precision (ties: the lower thresholds)."""
    ok = [r for r in table if r["precision"] >= min_precision] or [max(table, key=lambda r: r["precision"])]
    return max(ok, key=lambda r: (r["answered"], -r["threshold"], -r["ambiguity"]))


def plot(table: list[dict[str, float]], chosen: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for ambiguity in AMBIGUITIES:
        pts = [r for r in table if r["ambiguity"] == ambiguity]
        ax.plot([r["answered"] for r in pts], [r["precision"] for r in pts], marker=".", label=f"ambiguity {ambiguity}")
    ax.scatter([chosen["answered"]], [chosen["precision"]], s=160, facecolors="none", edgecolors="red", linewidths=2)
    ax.annotate(
        f"chosen: threshold {chosen['threshold']}, ambiguity {chosen['ambiguity']}",
        (chosen["answered"], chosen["precision"]),
        textcoords="offset points",
        xytext=(-220, -30),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("share of messages answered (not 'did you mean…?')")
    ax.set_ylabel("precision of answered messages")
    ax.set_title("FallbackClassifier thresholds: out-of-sample predictions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        rows = collect(args.config, args.questions, args.folds, Path(tmp))
    table = sweep(rows)
    chosen = choose(table, args.min_precision)
    print(f"{len(rows)} out-of-sample predictions")
    print(f"{'threshold':>9s} {'ambiguity':>9s} {'answered':>9s} {'precision':>9s}")
    for r in table:
        mark = "  <- chosen" if r is chosen else ""
        print(f"{r['threshold']:9.2f} {r['ambiguity']:9.2f} {r['answered']:9.3f} {r['precision']:9.3f}{mark}")
    plot(table, chosen, args.out / "thresholds.png")
    (args.out / "thresholds.json").write_text(json.dumps({"chosen": chosen, "table": table}, indent=2), encoding="utf-8")
    print(f"chosen: threshold {chosen['threshold']}, ambiguity_threshold {chosen['ambiguity']} "
          f"(precision {chosen['precision']:.3f}, answered {chosen['answered']:.3f}); plot: {args.out / 'thresholds.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

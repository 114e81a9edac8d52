"""Choose FallbackClassifier's thresholds on evidence, not by feel.

    python -m omt.bench.thresholds --questions ../shared/eval/real_dev.yml [--dev ../shared/eval/dev_questions.yml]
                             [--folds 5] [--min-precision 0.9]

Collects out-of-sample predictions: k-fold cross-validation over our own NLU data
(each example predicted by a model that never saw it) plus the question file of real
patient questions. Then sweeps `threshold` x `ambiguity_threshold`: a message is
*answered* unless it gets "please rephrase" where that is not an allowed answer, and
*right* when its answer is allowed (omt.bench.scoring.is_right).

The rule (the same for every pipeline of `make bench-nlu`): the largest share of the
cross-validated and question messages together that is answered while the precision
of the answered ones, on the same messages, stays >= the target; ties go to the higher
thresholds. When no pair reaches the target, the pair with the highest precision. The
development set (`--dev`) is written in the training data's voice, so it is reported
apart and takes no part in the choice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from omt.bench.evaluate import Turn, ratio
from omt.bench.nlu_bench import (
    Example,
    Parse,
    Trainer,
    answer_for,
    answers,
    nlu_extras,
    question_rows,
    rasa_trainer,
    ruler_entities,
    training_examples,
    with_entities,
)
from omt.bench.scoring import is_right
from omt.core.knowledge import get_knowledge

THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 19)]
AMBIGUITIES = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2]
DEFAULT_TARGET = 0.9

Row = tuple[str, Parse, list[str]]  # (text, raw parse, allowed answer ids)


def rule_text(target: float, folds: int) -> str:
    """The rule, as printed beside every choice."""
    return (
        f"the largest share answered with precision >= {target} on {folds}-fold cross-validation of data/ plus the "
        "question file, pooled (ties: higher thresholds; none reaching the target: the highest precision)"
    )


def folds(examples: Sequence[Example], k: int, seed: int = 42) -> list[list[Example]]:
    """Stratified-enough split: shuffle within each intent, deal round-robin."""
    rng = random.Random(seed)
    by_intent: dict[str, list[Example]] = {}
    for ex in examples:
        by_intent.setdefault(ex[1], []).append(ex)
    parts: list[list[Example]] = [[] for _ in range(k)]
    for items in by_intent.values():
        rng.shuffle(items)
        for i, ex in enumerate(items):
            parts[i % k].append(ex)
    return parts


def cross_validate(
    trainer: Trainer,
    examples: Sequence[Example],
    k: int,
    workdir: Path,
    label: str = "",
    entities: Callable[[str], list[dict[str, Any]]] = ruler_entities,
) -> list[Row]:
    """(text, raw parse, allowed ids) for every training example, predicted by a model that never saw it."""
    knowledge = get_knowledge()
    rows: list[Row] = []
    parts = folds(examples, k)
    for i, held_out in enumerate(parts):
        parse, _ = trainer([ex for j, part in enumerate(parts) if j != i for ex in part], workdir / f"fold{i}")
        parse = with_entities(parse, entities)
        for text, intent in held_out:
            predicted = parse(text)
            # The right answer is what the labelled intent leads to, mapped the same way
            # as a prediction (context intents alone are "fallback", affirm is capabilities).
            gold = Parse(intent, 1.0, [(intent, 1.0)], predicted.entities)
            rows.append((text, predicted, [answer_for(text, gold, knowledge)]))
        print(f"{label} fold {i + 1}/{k}: {len(held_out)} predictions", flush=True)
    return rows


def answered_right(turns: Sequence[Turn]) -> tuple[int, int]:
    """(answered, right among answered): "please rephrase" where it is not allowed is not an answer."""
    answered = [t for t in turns if not (t.got == "fallback" and not is_right("fallback", t.ok))]
    return len(answered), sum(t.right for t in answered)


def sweep(choice: dict[str, list[Row]], apart: dict[str, list[Row]] | None = None) -> list[dict[str, Any]]:
    """Per threshold pair: answered share and precision pooled over the `choice` parts, and per part."""
    parts = {**choice, **(apart or {})}
    table = []
    for threshold in THRESHOLDS:
        for ambiguity in AMBIGUITIES:
            row: dict[str, Any] = {"threshold": threshold, "ambiguity": ambiguity}
            pooled = [0, 0, 0]  # messages, answered, right
            for name, rows in parts.items():
                turns = answers(rows, threshold, ambiguity)
                answered, right = answered_right(turns)
                row[name] = {"n": len(turns), "answered": answered, "right": right}
                if name in choice:
                    pooled = [pooled[0] + len(turns), pooled[1] + answered, pooled[2] + right]
            row["n"], row["answered_n"], row["right_n"] = pooled
            row["answered"] = ratio(pooled[1], pooled[0])
            row["precision"] = ratio(pooled[2], pooled[1]) if pooled[1] else 1.0
            table.append(row)
    return table


def choose(table: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """The rule (module docstring): largest pooled share answered with pooled precision >= target."""
    ok = [r for r in table if r["precision"] >= target]
    if not ok:
        return max(table, key=lambda r: (round(r["precision"], 6), r["answered_n"]))
    return max(ok, key=lambda r: (r["answered_n"], r["threshold"], r["ambiguity"]))


def part_cell(part: dict[str, int]) -> str:
    """`answered share / precision` of one part, for the table."""
    precision = ratio(part["right"], part["answered"]) if part["answered"] else 1.0
    return f"{ratio(part['answered'], part['n']):.3f}/{precision:.3f}"


def plot(table: list[dict[str, Any]], chosen: dict[str, Any], parts: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for ambiguity in (0.0, 0.05, 0.1):
        pts = [r for r in table if r["ambiguity"] == ambiguity]
        ax.plot(
            [r["answered"] for r in pts], [r["precision"] for r in pts], marker=".", label=f"pooled, amb. {ambiguity}"
        )
        for name in parts:
            xs = [ratio(r[name]["answered"], r[name]["n"]) for r in pts]
            ys = [ratio(r[name]["right"], r[name]["answered"]) if r[name]["answered"] else 1.0 for r in pts]
            ax.plot(xs, ys, ls="--", marker="x", label=f"{name}, amb. {ambiguity}")
    ax.scatter([chosen["answered"]], [chosen["precision"]], s=160, facecolors="none", edgecolors="red", linewidths=2)
    ax.annotate(
        f"chosen: threshold {chosen['threshold']}, ambiguity {chosen['ambiguity']}",
        (chosen["answered"], chosen["precision"]),
        textcoords="offset points",
        xytext=(-260, 70),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("share of messages answered (not 'please rephrase')")
    ax.set_ylabel("precision of answered messages")
    ax.set_title("FallbackClassifier thresholds: out-of-sample predictions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def save_rows(parts: dict[str, list[Row]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {name: [(t, vars(p), ok) for t, p, ok in rows] for name, rows in parts.items()}
    path.write_text(json.dumps(data), encoding="utf-8")


def load_rows(path: Path) -> dict[str, list[Row]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: [(t, Parse(p["intent"], p["confidence"], [tuple(r) for r in p["ranking"]], p["entities"]), ok)
               for t, p, ok in rows]
        for name, rows in data.items()
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True, help="real patient questions: part of the choice")
    parser.add_argument("--dev", type=Path, help="a question file reported apart, not used to choose")
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=DEFAULT_TARGET)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--reuse", action="store_true", help="re-sweep the saved predictions without training")
    args = parser.parse_args(argv)
    for path in (args.questions, args.dev):
        if path is not None and not path.is_file():
            raise SystemExit(f"no question file {path}")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    cache = args.out / "thresholds_predictions.json"
    if args.reuse and cache.exists():
        parts = load_rows(cache)
    else:
        trainer = rasa_trainer(args.config, nlu_extras())
        examples = training_examples()
        with tempfile.TemporaryDirectory() as tmp:
            parts = {"cv": cross_validate(trainer, examples, args.folds, Path(tmp) / "cv")}
            parse = with_entities(trainer(examples, Path(tmp) / "full")[0])
            parts["questions"] = question_rows(parse, args.questions)
            if args.dev:
                parts["dev"] = question_rows(parse, args.dev)
        save_rows(parts, cache)
    choice = {k: parts[k] for k in ("cv", "questions")}
    apart = {k: v for k, v in parts.items() if k not in choice}
    table = sweep(choice, apart)
    chosen = choose(table, args.min_precision)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in parts.items())
    print(f"out-of-sample predictions: {sizes} (dev reported apart, not used to choose)")
    print(f"rule: {rule_text(args.min_precision, args.folds)}")
    print(f"{'threshold':>9s} {'ambiguity':>9s} {'answered':>9s} {'precision':>9s}  " + "  ".join(
        f"{k + ' answ/prec':>16s}" for k in parts))  # fmt: skip
    for r in table:
        mark = "  <- chosen" if r is chosen else ""
        cells = "  ".join(f"{part_cell(r[k]):>16s}" for k in parts)
        print(f"{r['threshold']:9.2f} {r['ambiguity']:9.2f} {r['answered']:9.3f} {r['precision']:9.3f}  {cells}{mark}")
    plot(table, chosen, list(parts), args.out / "thresholds.png")
    (args.out / "thresholds.json").write_text(
        json.dumps({"rule": rule_text(args.min_precision, args.folds), "chosen": chosen, "table": table}, indent=2),
        encoding="utf-8",
    )
    reached = "reaches" if chosen["precision"] >= args.min_precision else "does NOT reach"
    print(
        f"chosen: threshold {chosen['threshold']}, ambiguity_threshold {chosen['ambiguity']}: pooled precision "
        f"{chosen['precision']:.3f} ({chosen['right_n']}/{chosen['answered_n']}), answering {chosen['answered']:.3f} "
        f"({chosen['answered_n']}/{chosen['n']}); {reached} the target {args.min_precision}"
    )
    for k in parts:
        p = chosen[k]
        print(f"  {k}: answered {p['answered']}/{p['n']}, right {p['right']}/{p['answered']} ({part_cell(p)})")
    print(f"plot: {args.out / 'thresholds.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

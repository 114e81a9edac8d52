"""Where one `/model/parse` spends its time: the NLU graph of the trained model, node by node.

    python -m omt.bench.nlu_profile [--model models/omt.tar.gz] [--questions FILE ...] [--rounds 5]

Loads the model as the server does (omt.rasa.patches installed), parses every first turn
of the question files `rounds` times after one warm-up round, and prints the median time
of a whole parse (no HTTP) and of each graph node, plus the lexical vote's model through
scikit-learn's own `predict_proba` against omt.rasa.nlu_vote's `probabilities`. It tells
where to cut when `make bench`'s parse budget fails; `make bench` remains the measure of
the budget, end to end over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from omt.bench.evaluate import load_questions

DEFAULT_QUESTIONS = [Path("tests/fixtures/real_holdout.yml")]


def timed(node: Callable[..., Any], spent: List[float]) -> Callable[..., Any]:
    """The node, its every call's duration appended to `spent`."""

    def call(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return node(*args)
        finally:
            spent.append(time.perf_counter() - start)

    return call


def median_ms(values: Sequence[float]) -> float:
    return 1000 * statistics.median(values) if values else 0.0


def profile(model: Path, texts: Sequence[str], rounds: int) -> tuple[List[float], Dict[str, List[float]], Any]:
    """Per-parse durations, per-node durations, and the loaded lexical vote's model (or None)."""
    from rasa.core.agent import Agent

    from omt.rasa import patches
    from omt.rasa.nlu_vote import LexicalVote

    patches.install()
    agent = Agent.load(str(model))
    runner = agent.processor.graph_runner if agent.processor else None
    if runner is None:
        raise SystemExit(f"{model}: no model loaded")
    nodes = patches.graph_nodes(runner)
    per_node: Dict[str, List[float]] = defaultdict(list)
    lexical = None
    for name, node in list(nodes.items()):
        component = patches.node_component(node)
        if isinstance(component, LexicalVote):
            lexical = component.model
        nodes[name] = timed(node, per_node[name])
    loop = asyncio.new_event_loop()
    parses: List[float] = []
    for round_ in range(rounds + 1):
        for text in texts:
            start = time.perf_counter()
            loop.run_until_complete(agent.parse_message(text))
            if round_:
                parses.append(time.perf_counter() - start)
        if not round_:
            for spent in per_node.values():
                spent.clear()  # in place: the timers hold these lists
    return parses, per_node, lexical


def lexical_ms(model: Any, texts: Sequence[str], rounds: int) -> tuple[float, float]:
    """Median ms per message: scikit-learn's predict_proba on the stored pipeline, and `probabilities`."""
    from omt.rasa.nlu_vote import probabilities

    def per_message(fn: Callable[[str], Any]) -> float:
        spent = []
        for _ in range(rounds):
            for text in texts:
                start = time.perf_counter()
                fn(text)
                spent.append(time.perf_counter() - start)
        return median_ms(spent)

    return per_message(lambda t: model.pipeline.predict_proba([t])), per_message(lambda t: probabilities(model, t))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/omt.tar.gz"))
    parser.add_argument("--questions", type=Path, nargs="+", default=DEFAULT_QUESTIONS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"{args.model}: no such model (make train)", file=sys.stderr)
        return 2
    texts = [conv[0].question for path in args.questions for conv in load_questions(path)]
    parses, per_node, lexical = profile(args.model, texts, args.rounds)
    print(f"{len(texts)} messages x {args.rounds} rounds")
    p95 = 1000 * sorted(parses)[int(0.95 * len(parses))]
    print(f"{'whole parse (no HTTP)':52s} {median_ms(parses):7.2f} ms median, p95 {p95:.2f}")
    for name, spent in sorted(per_node.items(), key=lambda kv: -statistics.median(kv[1]) if kv[1] else 0):
        if spent:
            print(f"  {name:50s} {median_ms(spent):7.3f} ms")
    if lexical is not None:
        pipeline, ours = lexical_ms(lexical, texts, args.rounds)
        print(f"lexical vote: scikit-learn predict_proba {pipeline:.3f} ms, nlu_vote.probabilities {ours:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

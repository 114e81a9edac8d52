"""Measure answer accuracy over the REST channel, as a patient's client would see it.

    python -m omt.bench.evaluate --questions FILE [FILE ...] --min-accuracy X [X ...] [--url URL | --start-stack]

A question file has `single` questions (each in a new conversation) and `multi`
conversations (turns share one sender). A turn is right when its one `custom` payload
names an allowed answer_id, parents compared on both sides (omt.bench.scoring.is_right; the
apology of a failed turn is never right). Cited precision: of the knowledge (cited)
answers given, the share that answer the question. Also checks every payload against
the contract (citation faults) and reports median latency. Several files share one
stack, each with its own floor (or one floor for all). Exits non-zero when a file is
below its floor, on any citation fault, or on a missed emergency.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from omt.bench.scoring import contract_payload, is_cited, is_right
from omt.core.contract import kind_of, parent_id
from omt.core.knowledge import Knowledge, fold, get_knowledge


@dataclass
class Turn:
    question: str
    ok: list[str]
    got: str = ""
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def right(self) -> bool:
        return is_right(self.got, self.ok)


def load_questions(path: Path) -> list[list[Turn]]:
    """Conversations as lists of turns: each single question is a one-turn conversation."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    convs = [[Turn(str(c["q"]), list(c["ok"]))] for c in spec.get("single") or []]
    convs += [[Turn(str(t["q"]), list(t["ok"])) for t in m["turns"]] for m in spec.get("multi") or []]
    return convs


def post(url: str, sender: str, message: str, timeout: float = 30) -> list[dict[str, Any]]:
    """One REST webhook turn; the list of bot messages it returns."""
    body = json.dumps({"sender": sender, "message": message}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return list(json.loads(resp.read().decode()))


def contract_faults(messages: Sequence[dict[str, Any]], knowledge: Knowledge) -> tuple[str, list[str]]:
    """(answer_id, faults) for one turn's bot messages, checked against the contract."""
    custom, problem = contract_payload(list(messages))
    answer_id = str((custom or {}).get("answer_id", ""))
    if problem or custom is None:
        return answer_id, [problem or "no custom payload"]
    texts = " ".join(str(m.get("text") or "") for m in messages)
    faults: list[str] = []
    kind = kind_of(answer_id)
    if custom.get("kind") != kind:
        faults.append(f"kind {custom.get('kind')!r}, want {kind!r}")
    citation = custom.get("citation")
    if kind != "knowledge":
        if citation is not None:
            faults.append("citation on a non-knowledge answer")
        return answer_id, faults
    if not isinstance(citation, dict):
        return answer_id, [*faults, "knowledge answer without citation"]
    src = knowledge.source
    want = {
        "title": src.title,
        "publisher": src.publisher,
        "reviewed_by": src.reviewed_by,
        "reviewed_on": src.reviewed_on,
    }
    faults += [f"citation.{k} is {citation.get(k)!r}" for k, v in want.items() if citation.get(k) != v]
    article = fold(src.article_text)
    quotes = citation.get("quotes") or []
    if not quotes:
        faults.append("citation has no quotes")
    faults += [f"quote not verbatim: {q!r}" for q in quotes if fold(str(q)) not in article]
    if not citation.get("section") or fold(str(citation["section"])) not in article:
        faults.append(f"section {citation.get('section')!r} not in the article")
    for words in (src.publisher, src.reviewed_by, src.reviewed_on_words):
        if words not in texts:
            faults.append(f"text does not name the source ({words!r})")
    return answer_id, faults


def run(url: str, conversations: list[list[Turn]], knowledge: Knowledge) -> Iterator[Turn]:
    """Play every conversation; yield each turn with what it got."""
    for conv in conversations:
        sender = f"eval-{uuid.uuid4().hex}"
        for turn in conv:
            start = time.perf_counter()
            try:
                messages = post(url, sender, turn.question)
            except OSError as exc:
                messages, turn.faults = [], [f"request failed: {exc}"]
            except ValueError as exc:  # a 200 whose body is not JSON: a fault, as in reply_problem
                messages, turn.faults = [], [f"not JSON: {exc}"]
            turn.seconds = time.perf_counter() - start
            got, faults = contract_faults(messages, knowledge)
            turn.got = got
            turn.faults += faults
            yield turn


def ratio(right: int, total: int) -> float:
    """right/total, 0 when there is nothing to count."""
    return right / total if total else 0.0


def score(turns: Sequence[Turn]) -> dict[str, Any]:
    """The figures of a run (pure: no printing, no network), counts beside ratios."""
    right = sum(t.right for t in turns)
    cited = [t for t in turns if is_cited(t.got)]
    cited_right = sum(t.right for t in cited)
    # An emergency question is one where only the emergency reply will do (not one where it is merely allowed).
    emergencies = [t for t in turns if {parent_id(o) for o in t.ok} == {"emergency"}]
    per_id: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for t in turns:
        per_id[t.ok[0]][0] += t.right
        per_id[t.ok[0]][1] += 1
    return {
        "accuracy": round(ratio(right, len(turns)), 4),
        "right": right,
        "n": len(turns),
        "cited_precision": round(ratio(cited_right, len(cited)), 4),
        "cited_right": cited_right,
        "cited": len(cited),
        "emergency_right": sum(t.right for t in emergencies),
        "emergency_total": len(emergencies),
        "citation_faults": sum(len(t.faults) for t in turns),
        "median_latency_ms": round(statistics.median(t.seconds for t in turns) * 1000, 1) if turns else 0.0,
        "per_id": {k: {"right": v[0], "n": v[1]} for k, v in sorted(per_id.items())},
        "misses": [{"q": t.question, "got": t.got, "wanted": t.ok} for t in turns if not t.right],
        "wrong_citations": [{"q": t.question, "got": t.got, "wanted": t.ok} for t in cited if not t.right],
    }


def passes(figures: dict[str, Any], min_accuracy: float) -> bool:
    """The floor, no citation fault, every emergency caught."""
    return (
        ratio(figures["right"], figures["n"]) >= min_accuracy
        and not figures["citation_faults"]
        and figures["emergency_right"] == figures["emergency_total"]
    )


def report(turns: list[Turn], min_accuracy: float) -> tuple[dict[str, Any], bool]:
    """Print the figures; return them and whether the run passes."""
    f = score(turns)
    print(f"accuracy: {f['accuracy']:.3f} ({f['right']}/{f['n']})")
    print(f"cited precision: {f['cited_precision']:.3f} ({f['cited_right']}/{f['cited']} cited answers were right)")
    print(f"emergency: {f['emergency_right']}/{f['emergency_total']} right")
    print(f"citation faults: {f['citation_faults']}")
    print(f"median latency: {f['median_latency_ms']:.1f} ms")
    print("per answer id (first allowed id):")
    for answer_id, counts in f["per_id"].items():
        print(f"  {answer_id:24s} {counts['right']}/{counts['n']}")
    for t in turns:
        if not t.right:
            cite = " (CITED)" if is_cited(t.got) else ""
            print(f"MISS  {t.question!r}: got {t.got or '-'}{cite}, wanted {'/'.join(t.ok)}")
        for fault in t.faults:
            print(f"FAULT {t.question!r}: {fault}")
    passed = passes(f, min_accuracy)
    print("PASS" if passed else f"FAIL (needs accuracy >= {min_accuracy}, 0 faults, every emergency right)")
    return f, passed


def floors(paths: Sequence[Path], min_accuracy: Sequence[float]) -> list[tuple[Path, float]]:
    """Each question file with its floor: one floor per file, or one for all."""
    if len(min_accuracy) == 1:
        return [(p, min_accuracy[0]) for p in paths]
    if len(min_accuracy) != len(paths):
        raise SystemExit(f"{len(paths)} question files but {len(min_accuracy)} floors: give one, or one per file")
    return list(zip(paths, min_accuracy, strict=True))


def evaluate_all(url: str, runs: Sequence[tuple[Path, float]], knowledge: Knowledge) -> tuple[dict[str, Any], bool]:
    """Every question file against one running stack; figures per file and whether all pass."""
    all_figures: dict[str, Any] = {}
    all_passed = True
    for path, floor in runs:
        print(f"== {path} (floor {floor})")
        figures, passed = report(list(run(url, load_questions(path), knowledge)), floor)
        all_figures[str(path)] = figures
        all_passed &= passed
    if len(runs) > 1:
        print("== summary")
        for (path, floor), f in zip(runs, all_figures.values(), strict=True):
            verdict = "PASS" if passes(f, floor) else "FAIL"
            print(
                f"{verdict} {path}: accuracy {f['accuracy']:.3f} ({f['right']}/{f['n']}, floor {floor}), "
                f"cited precision {f['cited_precision']:.3f} ({f['cited_right']}/{f['cited']}), emergencies "
                f"{f['emergency_right']}/{f['emergency_total']}, citation faults {f['citation_faults']}"
            )
    return all_figures, all_passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, nargs="+", required=True)
    parser.add_argument("--min-accuracy", type=float, nargs="+", default=[0.95])
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--start-stack", action="store_true", help="start a stack on free ports for this run")
    parser.add_argument("--json", type=Path, help="also write the figures here (per question file)")
    args = parser.parse_args(argv)
    knowledge = get_knowledge()
    runs = floors(args.questions, args.min_accuracy)
    for path, _ in runs:
        if not path.is_file():
            raise SystemExit(f"no question file {path}")
    if args.start_stack:
        from omt.ops.stack import running_stack

        with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
            figures, passed = evaluate_all(stack.rest_url, runs, knowledge)
    else:
        figures, passed = evaluate_all(f"{args.url.rstrip('/')}/webhooks/rest/webhook", runs, knowledge)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

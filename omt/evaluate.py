"""Measure answer accuracy over the REST channel, as a patient's client would see it.

    python -m omt.evaluate --questions ../shared/eval/dev_questions.yml --min-accuracy 0.95 [--url URL | --start-stack]

The question file has `single` questions (each in a new conversation) and `multi`
conversations (turns share one sender). A turn is right when its one `custom` payload
names an allowed answer_id (`who_can_get.infants` counts as `who_can_get`). Also checks
every payload against the contract (citation faults) and reports median latency.
Exits non-zero below the threshold, on any citation fault, or on a missed emergency.
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

from omt.contract import ALL_IDS, kind_of, parent_id
from omt.knowledge import Knowledge, fold, get_knowledge


@dataclass
class Turn:
    question: str
    ok: list[str]
    got: str = ""
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def right(self) -> bool:
        return parent_id(self.got) in self.ok


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
    customs = [m["custom"] for m in messages if isinstance(m.get("custom"), dict)]
    texts = " ".join(str(m.get("text") or "") for m in messages)
    if len(customs) != 1:
        return (customs[0].get("answer_id", "") if customs else ""), [f"{len(customs)} custom payloads, want 1"]
    custom = customs[0]
    answer_id = str(custom.get("answer_id", ""))
    faults: list[str] = []
    if parent_id(answer_id) not in ALL_IDS:
        return answer_id, [f"unknown answer_id {answer_id!r}"]
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
            turn.seconds = time.perf_counter() - start
            got, faults = contract_faults(messages, knowledge)
            turn.got = got
            turn.faults += faults
            yield turn


def report(turns: list[Turn], min_accuracy: float) -> tuple[dict[str, Any], bool]:
    """Print the figures; return them and whether the run passes."""
    right = sum(t.right for t in turns)
    accuracy = right / len(turns) if turns else 0.0
    per_id: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for t in turns:
        per_id[t.ok[0]][0] += t.right
        per_id[t.ok[0]][1] += 1
    emergencies = [t for t in turns if "emergency" in t.ok]
    missed_emergency = [t for t in emergencies if not t.right]
    faults = [(t, f) for t in turns for f in t.faults]
    latency = statistics.median(t.seconds for t in turns) * 1000 if turns else 0.0
    print(f"accuracy: {accuracy:.3f} ({right}/{len(turns)})")
    print(f"emergency: {len(emergencies) - len(missed_emergency)}/{len(emergencies)} right")
    print(f"citation faults: {len(faults)}")
    print(f"median latency: {latency:.1f} ms")
    print("per answer id (first allowed id):")
    for answer_id, (ok, n) in sorted(per_id.items()):
        print(f"  {answer_id:24s} {ok}/{n}")
    for t in turns:
        if not t.right:
            print(f"MISS  {t.question!r}: got {t.got or '-'}, wanted {'/'.join(t.ok)}")
    for t, fault in faults:
        print(f"FAULT {t.question!r}: {fault}")
    passed = accuracy >= min_accuracy and not faults and not missed_emergency
    figures = {
        "accuracy": round(accuracy, 4),
        "n": len(turns),
        "emergency_right": len(emergencies) - len(missed_emergency),
        "emergency_total": len(emergencies),
        "citation_faults": len(faults),
        "median_latency_ms": round(latency, 1),
        "misses": [{"q": t.question, "got": t.got, "wanted": t.ok} for t in turns if not t.right],
    }
    print("PASS" if passed else f"FAIL (needs accuracy >= {min_accuracy}, 0 faults, every emergency right)")
    return figures, passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--start-stack", action="store_true", help="start a stack on free ports for this run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    knowledge = get_knowledge()
    conversations = load_questions(args.questions)
    if args.start_stack:
        from omt.stack import running_stack

        with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
            turns = list(run(stack.rest_url, conversations, knowledge))
    else:
        turns = list(run(f"{args.url.rstrip('/')}/webhooks/rest/webhook", conversations, knowledge))
    figures, passed = report(turns, args.min_accuracy)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training examples that copy an evaluation question: found, listed, and removed on request.

    python -m omt.bench.leaks [--eval-dir ../shared/eval] [--data data] [--remove]

An example in any data/*.yml whose normalised text equals an eval question (whatever its
label), or is more than 0.85 similar to one (difflib's ratio, as the before-stop hook
measures it) under the same label, makes the eval measure memory, not understanding:
the dev set scored 1.000 while real questions scored 0.60. tests/bench/test_eval_leaks.py
fails on any; `--remove` deletes those lines and nothing else.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from omt.core.contract import parent_id

SIMILARITY = 0.85
EVAL_DIR = Path(os.environ.get("OMT_EVAL_DIR") or Path(__file__).resolve().parents[3] / "shared" / "eval")
# Our own held-out real questions (never trained on, never used to choose thresholds).
HOLDOUTS = sorted((Path(__file__).resolve().parents[2] / "tests" / "fixtures").glob("real_holdout*.yml"))


def question_files(eval_dir: Path) -> list[Path]:
    """Every question file the training data must not copy: the shared eval set and our held-out sets."""
    return sorted(eval_dir.glob("*.yml")) + HOLDOUTS


# Intents whose reply has another id (as omt.bench.nlu_bench maps them).
INTENT_ANSWERS = {
    "nlu_fallback": "fallback",
    "nonsense": "fallback",
    "affirm": "capabilities",
    "deny": "goodbye",
    "crisis": "emergency",
}
_ITEM = re.compile(r"^-\s+(\w+):\s*(.*)$")
_EXAMPLE = re.compile(r"^\s+-\s+(.*\S)\s*$")
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # 0-based line number in the file
    intent: str
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    ok: tuple[str, ...]


@dataclass(frozen=True)
class Leak:
    example: Example
    question: Question
    similarity: float

    @property
    def verbatim(self) -> bool:
        return norm(self.example.text) == norm(self.question.text)

    def __str__(self) -> str:
        what = "verbatim copy" if self.verbatim else f"near-copy ({self.similarity:.2f}) under the same label"
        ex = self.example
        return f"{ex.path}:{ex.line + 1}: [{ex.intent}] {ex.text!r} is a {what} of {self.question.text!r}"


def norm(text: str) -> str:
    """Lower case, letters and digits only, single spaces; entity annotations reduced to their text."""
    text = _ANNOTATION.sub(r"\1", text)
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def eval_questions(paths: Iterable[Path]) -> list[Question]:
    """Every question (single, and each multi turn) of the eval files."""
    out = []
    for path in paths:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out += [Question(str(c["q"]), tuple(c["ok"])) for c in spec.get("single") or []]
        out += [Question(str(t["q"]), tuple(t["ok"])) for m in spec.get("multi") or [] for t in m["turns"]]
    return out


def nlu_examples(path: Path) -> list[Example]:
    """The intent examples of one data file, with their line numbers (synonyms, lookups, rules skipped)."""
    examples = []
    intent: str | None = None
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if item := _ITEM.match(line):
            intent = item.group(2).strip() if item.group(1) == "intent" else None
        elif intent and (ex := _EXAMPLE.match(line)):
            examples.append(Example(path, i, intent, ex.group(1)))
    return examples


def same_label(intent: str, ok: Sequence[str]) -> bool:
    """Whether an example's intent leads to one of the question's allowed answers (by parent)."""
    answer = parent_id(INTENT_ANSWERS.get(intent, intent).split("/", 1)[0])
    parents = {parent_id(o) for o in ok}
    return answer in parents or any(answer.startswith(f"{p}_") for p in parents)


def similarity(a: str, b: str) -> float:
    """difflib's ratio of two normalised texts (as the before-stop hook computes it)."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def find_leaks(examples: Sequence[Example], questions: Sequence[Question], limit: float = SIMILARITY) -> list[Leak]:
    """Examples equal to a question (any label) or more than `limit` similar to one with the same label."""
    normed = [(q, norm(q.text)) for q in questions]
    leaks = []
    for ex in examples:
        t = norm(ex.text)
        for q, nq in normed:
            if t == nq:
                leaks.append(Leak(ex, q, 1.0))
                break
            # ratio <= 2*min/(len sum): skip pairs whose lengths alone rule out the limit.
            if not same_label(ex.intent, q.ok) or 2 * min(len(t), len(nq)) <= limit * (len(t) + len(nq)):
                continue
            sm = difflib.SequenceMatcher(None, nq, t)
            if sm.real_quick_ratio() > limit and sm.quick_ratio() > limit and (r := sm.ratio()) > limit:
                leaks.append(Leak(ex, q, r))
                break
    return leaks


def data_examples(data_dir: Path) -> list[Example]:
    """The intent examples of every data/*.yml file, whoever added it."""
    return [ex for path in sorted(data_dir.glob("*.yml")) for ex in nlu_examples(path)]


def remove(leaks: Sequence[Leak]) -> None:
    """Delete the leaking example lines, nothing else."""
    by_path: dict[Path, set[int]] = {}
    for leak in leaks:
        by_path.setdefault(leak.example.path, set()).add(leak.example.line)
    for path, lines in by_path.items():
        kept = [
            line for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True)) if i not in lines
        ]
        path.write_text("".join(kept), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--remove", action="store_true", help="delete the leaking examples from their files")
    args = parser.parse_args(argv)
    if not sorted(args.eval_dir.glob("*.yml")):
        raise SystemExit(f"no eval question files in {args.eval_dir}")
    files = question_files(args.eval_dir)
    leaks = find_leaks(data_examples(args.data), eval_questions(files))
    for leak in leaks:
        print(leak)
    print(f"{len(leaks)} leaking training examples")
    if args.remove and leaks:
        remove(leaks)
        print(f"removed {len(leaks)}")
    return 1 if leaks and not args.remove else 0


if __name__ == "__main__":
    sys.exit(main())

"""Patient-side messages from our own files, for the reports that count false alarms.

One reader for Rasa NLU files, question files (the dev format) and plain text files,
so the screener's and the redaction's "ordinary messages" are the same messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Collection

import yaml

_ANNOTATION = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # Rasa's "[text](entity)" markup


def ordinary_messages(path: Path, exclude: Collection[str] = ()) -> list[str]:
    """Every patient-side message of `path`, less the examples of `exclude` intents and the
    questions that allow an `exclude` answer id (the screener leaves out emergencies)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix not in (".yml", ".yaml"):
        return [line.strip() for line in text.splitlines() if line.strip()]
    data = yaml.safe_load(text) or {}
    if "nlu" in data:
        return [
            _ANNOTATION.sub(r"\1", line.strip()[2:])
            for block in data["nlu"]
            if block.get("intent") and block["intent"] not in exclude
            for line in str(block.get("examples", "")).splitlines()
            if line.strip().startswith("- ")
        ]
    turns = list(data.get("single") or []) + [t for m in data.get("multi") or [] for t in m["turns"]]
    return [str(t["q"]) for t in turns if not exclude or not set(t["ok"]) & set(exclude)]

"""Every answer a patient reads is at or below US grade 8 (Flesch-Kincaid)."""

from __future__ import annotations

import pytest
import textstat

from omt.core.knowledge import Knowledge, get_knowledge
from omt.core.web_texts import load_web_texts

GRADE = 8.0


def _texts() -> list[tuple[str, str]]:
    k: Knowledge = get_knowledge()
    texts = [(f"{e.answer_id}.answer", e.answer) for e in k.entries.values()]
    texts += [(f"{e.answer_id}.sms", e.sms) for e in k.entries.values()]
    texts += [(f"service.{name}", k.fill(r.text)) for name, r in k.replies.items()]
    texts += [(f"service.{name}.sms", k.fill(r.sms)) for name, r in k.replies.items()]
    texts.append(("notice", k.fill(k.notice.text)))
    for channel, spec in load_web_texts(k).items():  # what the widget and the kiosk add to a card
        texts += [(f"web.{channel}.safety.{i}.note", c["note"]) for i, c in spec["safety"].items() if c["note"]]
        texts += [(f"web.{channel}.handoff_note", spec["handoff_note"])] if spec["handoff_note"] else []
    return texts


@pytest.mark.parametrize(("where", "text"), _texts(), ids=[w for w, _ in _texts()])
def test_answer_reads_at_grade_8_or_below(where: str, text: str) -> None:
    assert textstat.flesch_kincaid_grade(text) <= GRADE, f"{where}: {text}"

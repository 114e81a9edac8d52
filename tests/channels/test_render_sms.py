"""SMS rendering is pure: every reply the knowledge can produce fits one GSM-7 SMS, cited, rendered by id."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import CollectingOutputChannel

from omt.channels.sms import SmsCollector
from omt.channels.sms_render import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SMS_BUDGET,
    SmsTexts,
    compose_sms,
    gsm7_length,
    load_sms_texts,
    menu_line,
    render_sms,
    render_text,
    to_gsm7,
)
from omt.channels.socketio import contract_message
from omt.core import replies
from omt.core.contract import SAFETY_REPLIES
from omt.core.knowledge import SERVICE_REPLIES, Knowledge, KnowledgeError
from omt.core.replies import PARAGRAPHS_KEY, Reply

# Service texts that are not answer ids of their own (the contract's id they are sent with).
SENT_AS = {**SAFETY_REPLIES, "fallback_handoff": "fallback", "error": "fallback"}


@pytest.fixture(scope="module")
def texts(knowledge: Knowledge) -> SmsTexts:
    return load_sms_texts(knowledge)


@pytest.fixture(scope="module")
def source_sms(knowledge: Knowledge) -> str:
    return to_gsm7(knowledge.fill(knowledge.source_line.sms))


@pytest.fixture(scope="module")
def notice_sms(knowledge: Knowledge) -> str:
    return to_gsm7(knowledge.fill(knowledge.notice.sms))


def collected(*turn: Reply | dict[str, Any]) -> list[dict[str, Any]]:
    """What the SMS channel's collector holds after the actions sent these replies (or messages)."""
    collector = SmsCollector()
    for reply in turn:
        asyncio.run(collector.send_response("patient", reply.message() if isinstance(reply, Reply) else dict(reply)))
    return collector.messages


def sms(knowledge: Knowledge, texts: SmsTexts, *turn: Reply | dict[str, Any], budget: int = SMS_BUDGET) -> str:
    return render_sms(collected(*turn), knowledge, texts, budget)


def assert_one_gsm7_sms(body: str) -> None:
    assert body, "never an empty reply"
    assert gsm7_length(body) <= SMS_BUDGET, f"{gsm7_length(body)} > {SMS_BUDGET}: {body!r}"
    assert set(body) <= GSM7_BASIC | GSM7_EXTENSION, set(body) - GSM7_BASIC - GSM7_EXTENSION


def all_replies(knowledge: Knowledge) -> list[Reply]:
    """Every reply shape the actions can send, with and without the one-time notice."""
    shapes: list[Reply] = []
    for topic in [*knowledge.entries, *knowledge.finer]:
        shapes.append(replies.knowledge_reply(knowledge, topic))
        shapes.append(replies.knowledge_reply(knowledge, topic, verbatim=True))
        shapes.append(replies.knowledge_reply(knowledge, topic, mentioned=replies.CAVEAT_TOPICS))
        shapes.append(replies.knowledge_reply(knowledge, topic, mentioned=replies.CAVEAT_TOPICS, verbatim=True))
    shapes += [replies.service_reply(knowledge, name, answer_id=SENT_AS.get(name)) for name in SERVICE_REPLIES]
    shapes += [replies.personal_advice_reply(knowledge, [t] if t else []) for t in (None, *replies.CAVEAT_TOPICS)]
    shapes += [replies.fallback_reply(knowledge, ["migraine", "low_back_pain", "pregnancy"], m) for m in (1, 2)]
    shapes.append(replies.not_covered_reply(knowledge, ["what_it_treats", "low_back_pain", "migraine"]))
    return shapes + [replies.with_notice(knowledge, r) for r in shapes]


def test_every_reply_fits_one_gsm7_sms(knowledge: Knowledge, texts: SmsTexts) -> None:
    for reply in all_replies(knowledge):
        assert_one_gsm7_sms(sms(knowledge, texts, reply))


def test_the_first_turn_notice_is_never_dropped(knowledge: Knowledge, texts: SmsTexts, notice_sms: str) -> None:
    """The answer gives way to the notice (it is shortened, not the notice)."""
    for reply in all_replies(knowledge):
        if reply.notice:
            assert sms(knowledge, texts, reply).startswith(notice_sms + "\n"), reply.answer_id


def test_the_source_line_names_the_reviewer(knowledge: Knowledge, source_sms: str) -> None:
    assert knowledge.source.reviewed_by in source_sms and knowledge.source.publisher in source_sms
    assert gsm7_length(source_sms) <= SMS_BUDGET // 4, "room is left for the answer"


@pytest.mark.parametrize("topic", ["what_is_omt", "techniques", "pregnancy", "about_source", "about_source.references"])
def test_knowledge_answer_is_the_short_form_with_a_compact_citation(
    knowledge: Knowledge, texts: SmsTexts, topic: str, source_sms: str
) -> None:
    body = sms(knowledge, texts, replies.knowledge_reply(knowledge, topic))
    lines = body.split("\n")
    entry = knowledge.entry(topic)
    assert to_gsm7(entry.sms) in lines
    assert source_sms in lines
    assert entry.answer not in body or entry.answer == entry.sms
    assert "answer_id" not in body and "{" not in body, "the contract's payload is never shown"


def test_gaps_are_kept_whole(knowledge: Knowledge, texts: SmsTexts) -> None:
    """What the article does not cover is never cut, with or without the notice."""
    for entry in knowledge.all_entries():
        if entry.gap:
            for verbatim in (False, True):
                reply = replies.knowledge_reply(knowledge, entry.answer_id, verbatim=verbatim)
                for shape in (reply, replies.with_notice(knowledge, reply)):
                    assert to_gsm7(entry.gap) in sms(knowledge, texts, shape).split("\n"), entry.answer_id


def test_personal_advice_and_fallback_end_with_the_urgent_line(
    knowledge: Knowledge, texts: SmsTexts, notice_sms: str
) -> None:
    urgent = to_gsm7(knowledge.fill(knowledge.urgent.sms))
    shapes = [
        replies.personal_advice_reply(knowledge),
        replies.fallback_reply(knowledge, ["migraine", "pregnancy"], 1),
        replies.fallback_reply(knowledge, ["migraine"], 2),
    ]
    for reply in shapes:
        assert reply.text.endswith("\n\n" + knowledge.fill(knowledge.urgent.text)), reply.answer_id
        body = sms(knowledge, texts, reply)
        assert urgent in body.split("\n"), body
        first = sms(knowledge, texts, replies.with_notice(knowledge, reply))
        assert first.startswith(notice_sms) and urgent not in first, "the notice already says to call 911"


def test_every_entry_and_service_text_has_a_short_form_that_is_used(knowledge: Knowledge, texts: SmsTexts) -> None:
    for entry in knowledge.all_entries():
        body = sms(knowledge, texts, replies.knowledge_reply(knowledge, entry.answer_id))
        assert to_gsm7(entry.sms) in body
    for name, spec in knowledge.replies.items():
        body = sms(knowledge, texts, replies.service_reply(knowledge, name, answer_id=SENT_AS.get(name)))
        assert body.startswith(to_gsm7(knowledge.fill(spec.sms)))


def test_buttons_become_a_numbered_list_in_the_same_sms(knowledge: Knowledge, texts: SmsTexts) -> None:
    body = sms(knowledge, texts, replies.knowledge_reply(knowledge, "techniques"))
    assert body.split("\n")[-1] == (
        "Reply 1 for Soft tissue technique, 2 for Muscle energy technique, 3 for Myofascial release,"
        " 4 for Cranial technique"
    )


def test_over_budget_drops_buttons_from_the_end_first(knowledge: Knowledge, texts: SmsTexts, notice_sms: str) -> None:
    reply = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "techniques"))
    body = sms(knowledge, texts, reply)
    assert body.startswith(notice_sms)
    shown = compose_sms(collected(reply), knowledge, texts).buttons_shown
    assert 0 < shown < len(reply.buttons), "the notice leaves room for some buttons, not all"
    assert body.split("\n")[-1] == menu_line([b.title for b in reply.buttons[:shown]], texts)


def test_then_shortening_but_never_the_notice_or_the_citation(
    knowledge: Knowledge, texts: SmsTexts, notice_sms: str, source_sms: str
) -> None:
    reply = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "techniques"))
    body = sms(knowledge, texts, reply, budget=200)
    assert gsm7_length(body) <= 200
    lines = body.split("\n")
    assert lines[0] == notice_sms and lines[-1] == source_sms and "Reply" not in body
    assert to_gsm7(knowledge.entries["techniques"].sms).startswith(lines[1]), "the answer is shortened"
    long = replies.knowledge_reply(knowledge, "techniques", verbatim=True)
    short = sms(knowledge, texts, long, budget=120)
    assert gsm7_length(short) <= 120
    assert short.split("\n")[-1] == source_sms
    assert short.startswith('"The practice includes 40 different techniques')


@pytest.mark.parametrize("key", sorted(SAFETY_REPLIES))
def test_emergency_comes_first_and_whole(knowledge: Knowledge, texts: SmsTexts, key: str) -> None:
    emergency = replies.emergency_reply(knowledge, key)
    answer = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "how_it_feels"))
    whole = to_gsm7(knowledge.fill(knowledge.replies[key].sms))
    assert sms(knowledge, texts, answer, emergency).startswith(whole + "\n")
    assert sms(knowledge, texts, emergency) == whole
    assert sms(knowledge, texts, answer, emergency, budget=60) == whole, "never cut, whatever the budget"
    assert_one_gsm7_sms(whole)


@pytest.mark.parametrize(("key", "number"), [("emergency", "911"), ("after_treatment", "911"), ("crisis", "988")])
def test_emergency_sms_leads_with_the_call(knowledge: Knowledge, texts: SmsTexts, key: str, number: str) -> None:
    """The first sentence is the action: call the number now (the patient may read no further)."""
    body = sms(knowledge, texts, replies.emergency_reply(knowledge, key))
    first = body.split(". ", 1)[0].casefold()
    assert first.startswith("call") and number in first and "now" in first, body


def test_curly_quotes_dashes_ellipsis_are_transliterated_and_emoji_dropped() -> None:
    assert to_gsm7("“Hi” — it’s… fine 😀 café naïve\u00a0ok") == '"Hi" - it\'s... fine café naive ok'
    assert to_gsm7("‘a’ – b") == "'a' - b"


def test_verbatim_quotes_are_kept_in_ascii(knowledge: Knowledge, texts: SmsTexts) -> None:
    body = sms(knowledge, texts, replies.knowledge_reply(knowledge, "how_it_feels", verbatim=True))
    assert body.startswith('"If you get OMT, you should expect your DO to use their hands')
    assert "“" not in body and "’" not in body


def test_extension_characters_count_twice() -> None:
    assert gsm7_length("a[b]€") == 8
    assert gsm7_length(render_text("{" * 400)) <= SMS_BUDGET


def test_a_turn_without_text_renders_nothing(knowledge: Knowledge, texts: SmsTexts) -> None:
    assert (
        render_sms([{"recipient_id": "x", "custom": {"answer_id": "greet", "kind": "service"}}], knowledge, texts) == ""
    )
    assert render_sms([], knowledge, texts) == ""


def test_the_lines_own_texts_fit_and_fill_the_clinic(knowledge: Knowledge, texts: SmsTexts) -> None:
    for text in (texts.start, texts.help, texts.too_long, texts.media_only):
        assert_one_gsm7_sms(render_text(text))
    assert knowledge.clinic.phone in texts.help and "{" not in texts.help


def test_bad_sms_texts_stop_the_load(knowledge: Knowledge, tmp_path: Path) -> None:
    bad = tmp_path / "sms.yml"
    forget = "forget: {confirm: c, done: d}\n"  # the FORGET keyword's texts
    menu = "menu: {first: a, next: b}\n"
    bad.write_text('keywords: {start: "hi {nope}", help: h}\ntoo_long: t\nmedia_only: m\n' + menu + forget)
    with pytest.raises(KnowledgeError, match="placeholder"):
        load_sms_texts(knowledge, bad)
    bad.write_text("keywords: {start: hi}\n")
    with pytest.raises(KnowledgeError, match="missing"):
        load_sms_texts(knowledge, bad)
    bad.write_text(
        f"keywords: {{start: {'x' * 400}, help: h}}\ntoo_long: t\nmedia_only: m\nmenu: {{first: a, next: b}}\n" + forget
    )
    with pytest.raises(KnowledgeError, match="longer than"):
        load_sms_texts(knowledge, bad)


def reworded(reply: Reply, text: str) -> dict[str, Any]:
    """The reply's message with other chat text (a web wording change, another language)."""
    return {**reply.message(), "text": text}


def test_the_sms_is_rendered_from_the_paragraph_ids_not_the_chat_text(
    knowledge: Knowledge, texts: SmsTexts, notice_sms: str, source_sms: str
) -> None:
    reply = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "how_it_feels", mentioned=["pregnancy"]))
    expected = sms(knowledge, texts, reply)
    assert (
        sms(knowledge, texts, reworded(reply, "Completely different web words.\n\nAnd a second paragraph.")) == expected
    )
    lines = expected.split("\n")
    assert lines[0] == notice_sms and source_sms in lines
    assert to_gsm7(knowledge.entries["how_it_feels"].sms).startswith(lines[1]), "its short form, shortened"
    crisis = replies.emergency_reply(knowledge, "crisis")
    whole = to_gsm7(knowledge.fill(knowledge.replies["crisis"].sms))
    assert sms(knowledge, texts, reply, reworded(crisis, "Reworded.")).startswith(whole + "\n"), "first and whole"


def test_the_collector_keeps_the_paragraphs_rasas_drops(knowledge: Knowledge) -> None:
    reply = replies.knowledge_reply(knowledge, "techniques")
    (text, payload) = collected(reply)
    assert payload["custom"] == reply.custom() and payload[PARAGRAPHS_KEY] == reply.structure()
    assert text["buttons"] and PARAGRAPHS_KEY not in text
    rest = CollectingOutputChannel()  # the REST channel's: web clients get the contract only
    asyncio.run(rest.send_response("patient", reply.message()))
    assert rest.messages and all(PARAGRAPHS_KEY not in m for m in rest.messages)
    assert PARAGRAPHS_KEY not in contract_message(reply.message()), "nor do socket.io clients"


def test_a_message_without_paragraphs_is_sent_as_its_chat_text(knowledge: Knowledge, texts: SmsTexts) -> None:
    """A message no action of ours sent (or from another knowledge version): its words, as GSM-7."""
    plain = {"text": "Hi “there”!\n\nAsk me.", "custom": {"answer_id": "greet", "kind": "service"}}
    assert sms(knowledge, texts, plain) == 'Hi "there"!\nAsk me.'
    unknown = {**plain, PARAGRAPHS_KEY: [{"role": "answer", "id": "no_such_topic"}]}
    assert sms(knowledge, texts, unknown) == 'Hi "there"!\nAsk me.'
    malformed = {**plain, PARAGRAPHS_KEY: [{"role": "verse", "id": "greet"}]}
    assert sms(knowledge, texts, malformed) == 'Hi "there"!\nAsk me.'

"""The knowledge file is the only source of medical words: these tests keep it honest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from omt.core import replies
from omt.core.contract import KNOWLEDGE_IDS, parent_id
from omt.core.grounding import gap_problems, grounding_problems, qualified_words
from omt.core.knowledge import KNOWLEDGE_DIR, Knowledge, KnowledgeError, fold, load
from omt.ops.nlp_build import make_pipeline

# Conditions patients ask about that the article does NOT name: no answer may name them.
NOT_IN_ARTICLE = [
    "asthma", "sciatica", "fibromyalgia", "neck pain", "scoliosis", "constipation", "depression",
    "anxiety", "colic", "ear infection", "carpal tunnel", "tmj", "adhd", "concussion", "insomnia",
]  # fmt: skip


@pytest.fixture(scope="module")
def nlp(knowledge: Knowledge) -> Language:
    return make_pipeline(knowledge)


def _texts(knowledge: Knowledge) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.answer_id, t, e.quotes) for e in knowledge.all_entries() for t in (e.answer, e.sms)]


def test_every_contract_knowledge_id_has_an_entry(knowledge: Knowledge) -> None:
    assert set(knowledge.entries) == set(KNOWLEDGE_IDS)


def test_every_quote_is_verbatim_in_the_article(knowledge: Knowledge) -> None:
    article = fold(knowledge.source.article_text)
    for entry in knowledge.entries.values():
        for quote in entry.quotes:
            assert fold(quote) in article, (entry.answer_id, quote)


def test_answers_say_nothing_their_quotes_do_not(knowledge: Knowledge, nlp: Language) -> None:
    """Words, and the hedges, negations and framing around them, are the quotes' own."""
    for answer_id, text, quotes in _texts(knowledge):
        problems = grounding_problems(nlp, text, quotes, knowledge.allowed_words)
        assert not problems, f"{answer_id}: {problems}\n{text}"


def test_gaps_make_no_claim_of_their_own(knowledge: Knowledge, nlp: Language) -> None:
    article = knowledge.source.article_text
    words = knowledge.gap_words | knowledge.allowed_words
    for entry in knowledge.all_entries():
        if entry.gap:
            assert not gap_problems(nlp, entry.gap, article, knowledge.gap_opening, words), entry.answer_id


# Mutations of real answers: a hedge removed, a negation flipped or added, a quantifier
# or comparative changed, a finding's framing dropped. The grounding check must fail
# on each (spaCy's stop words include every one of these qualifiers).
MUTATIONS = [
    ("migraine", "answer", "OMT may also ease migraines", "OMT also eases migraines"),
    ("what_it_treats", "answer", "DOs often use OMT", "DOs use OMT"),
    ("bone_joint_conditions", "answer", "may need a gentler form", "will need a gentler form"),
    ("who_can_get", "sms", "Your doctor may adjust it", "Your doctor adjusts it"),
    ("other_treatments", "sms", "Many DOs use OMT", "DOs use OMT"),
    ("who_can_get", "answer", "just about any condition", "any condition"),
    ("how_it_feels", "answer", "It should not hurt.", "It should hurt."),
    ("how_it_feels", "answer", "It should not hurt.", "It will never hurt."),
    ("low_back_pain", "answer", "who got OMT needed fewer", "who got OMT did not need fewer"),
    ("low_back_pain", "answer", "needed fewer painkillers", "needed more painkillers"),
    ("do_training", "answer", "Many use it", "All use it"),
    ("what_is_omt", "answer", "This is to correct", "This can correct"),
    ("what_is_omt", "sms", "DOs are trained to use their hands", "DOs use their hands"),
    ("how_it_works", "sms", "A key idea of osteopathic medicine: tightness", "Tightness"),
    ("pregnancy", "sms", "one study concluded OMT was", "OMT is"),
]


@pytest.mark.parametrize(("answer_id", "field_name", "old", "new"), MUTATIONS)
def test_grounding_fails_when_a_hedge_or_negation_changes(
    knowledge: Knowledge, nlp: Language, answer_id: str, field_name: str, old: str, new: str
) -> None:
    entry = knowledge.entry(answer_id)
    text = getattr(entry, field_name)
    assert old in text, "the mutation must apply to the real answer"
    assert not grounding_problems(nlp, text, entry.quotes, knowledge.allowed_words)
    assert grounding_problems(nlp, text.replace(old, new), entry.quotes, knowledge.allowed_words)


def test_qualifiers_attach_to_their_words(nlp: Language) -> None:
    words = {w.lower: w.qualifiers for w in qualified_words(nlp, "Many needed fewer painkillers and days off.")}
    assert words == {"needed": {"many"}, "painkillers": {"few"}, "days": {"few"}}
    words = {w.lower: w.qualifiers for w in qualified_words(nlp, "It shouldn't hurt; you didn't.", ["omt"])}
    assert words == {"hurt": {"should", "not"}}


def test_a_gap_must_say_it_is_a_gap_in_the_articles_words(knowledge: Knowledge, nlp: Language) -> None:
    article = knowledge.source.article_text
    assert gap_problems(nlp, "OMT should not be used in the first trimester.", article, knowledge.gap_opening)
    assert gap_problems(nlp, "The article does not cover asthma.", article, knowledge.gap_opening, ["cover"])


def test_allow_list_stays_small(knowledge: Knowledge) -> None:
    assert len(knowledge.allowed_words) <= 12


def test_numbers_are_the_articles(knowledge: Knowledge) -> None:
    article = fold(knowledge.source.article_text).casefold()
    numbers = re.compile(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|dozens?|hundreds?)\b")
    for answer_id, text, _ in _texts(knowledge):
        for number in numbers.findall(text.casefold()):
            assert re.search(rf"\b{number}\b", article), f"{answer_id}: number {number!r} not in the article"


def test_named_conditions_and_populations_are_the_articles(knowledge: Knowledge, nlp: Language) -> None:
    article = fold(knowledge.source.article_text).casefold()
    for answer_id, text, _ in _texts(knowledge):
        for ent in nlp(fold(text)).ents:
            if ent.label_ in ("condition", "population"):
                assert ent.text.casefold() in article, f"{answer_id}: names {ent.text!r}, the article does not"
        for condition in NOT_IN_ARTICLE:
            assert condition not in text.casefold(), f"{answer_id}: names {condition!r}"


def test_the_empty_conditions_list_stays_empty(knowledge: Knowledge) -> None:
    """ "OMT can also treat other conditions, such as:" lists nothing; we say so, and fill in nothing."""
    entry = knowledge.entries["what_it_treats"]
    assert entry.gap, "what_it_treats says the article names no other conditions"
    for verbatim in (False, True):
        paragraphs = replies.knowledge_reply(knowledge, "what_it_treats", verbatim=verbatim).text.split("\n\n")
        assert paragraphs[1] == entry.gap, "the gap follows the answer, and the article's own words"
    service_texts = " ".join(r.text for r in knowledge.replies.values()).casefold()
    for condition in NOT_IN_ARTICLE:
        assert condition not in service_texts
        assert condition not in entry.gap.casefold()


@pytest.mark.parametrize("answer_id", ["who_can_get", "pregnancy", "what_it_treats", "about_source.references"])
def test_topics_say_what_the_article_does_not_cover(knowledge: Knowledge, answer_id: str) -> None:
    entry = knowledge.entry(answer_id)
    assert entry.gap.startswith(knowledge.gap_opening)
    assert entry.gap in replies.knowledge_reply(knowledge, answer_id).text


def test_references_are_the_articles_reference_list(knowledge: Knowledge) -> None:
    """about_source.references quotes every line of the article's reference list, in order."""
    article = knowledge.source.article_text
    listed = article[article.index(knowledge.source.collection) : article.index("©")]
    lines = [fold(line) for line in listed.splitlines() if line.strip()]
    entry = knowledge.entry("about_source.references")
    assert [fold(q) for q in entry.quotes] == lines
    assert parent_id(entry.answer_id) == "about_source"
    assert knowledge.entries["about_source"].more == entry.answer_id


@pytest.mark.parametrize(
    ("question", "answer_id"),
    [("what are your references", "about_source.references"), ("where is this from", "about_source")],
)
def test_a_question_can_ask_for_the_finer_answer(knowledge: Knowledge, question: str, answer_id: str) -> None:
    reply = replies.knowledge_reply(knowledge, "about_source", question=question)
    assert reply.answer_id == answer_id
    assert reply.custom()["citation"]["quotes"] == list(knowledge.entry(answer_id).quotes)


def test_tell_me_more_about_the_source_gives_the_references(knowledge: Knowledge) -> None:
    reply = replies.knowledge_reply(knowledge, "about_source", verbatim=True)
    assert reply.answer_id == "about_source.references"
    again = replies.knowledge_reply(knowledge, "about_source.references", verbatim=True)
    assert again.answer_id == "about_source.references" and knowledge.has_entry(again.answer_id)


def test_answers_are_short(knowledge: Knowledge) -> None:
    for entry in knowledge.all_entries():
        if entry.answer_id in knowledge.entries:  # a finer list (the references) is as long as the article's
            assert len(entry.answer.split()) <= 60, entry.answer_id
        assert len(entry.sms) <= 200, entry.answer_id
        assert entry.sms.isascii() and entry.gap.isascii(), entry.answer_id


# --- the loader fails loudly -------------------------------------------------------


@pytest.fixture()
def broken_dir(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('It should not hurt."', 'It should never hurt."', "not verbatim"),
        ("  muscle_energy:\n    title: Muscle energy technique\n", "  muscle_energy:\n", "missing field 'title'"),
        ("  fascia:\n", "  bogus_topic:\n", "not a knowledge answer_id"),
        ("    related: [myofascial_release, techniques]", "    related: [nope]", "not a knowledge id"),
        ("gap: The article does not say when", "gap: We do not know when", "gap must open with"),
        ("    more: references\n", "    more: nothing\n", "not one of its finer answers"),
        ("      about_source.references:\n", "      about_source_references:\n", "is not named about_source.<sub>"),
        ('"Hensel, K. American Journal', '"Hensel, K. The American Journal', "not verbatim"),
    ],
)
def test_loader_rejects_bad_files(broken_dir: Path, old: str, new: str, message: str) -> None:
    _edit(broken_dir / "omt.yml", old, new)
    with pytest.raises(KnowledgeError, match=message):
        load(broken_dir)


def test_loader_reports_a_missing_entry(broken_dir: Path) -> None:
    text = (broken_dir / "omt.yml").read_text(encoding="utf-8")
    start = text.index("  cranial:\n")
    end = text.index("  fascia:\n")
    (broken_dir / "omt.yml").write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(KnowledgeError, match="cranial: the contract's knowledge id has no entry"):
        load(broken_dir)


def test_quotes_compare_after_folding(broken_dir: Path) -> None:
    """Curly quotes and non-breaking spaces in a quote still match the article."""
    _edit(broken_dir / "omt.yml", "Melinda Ratini, DO, MS on", "Melinda Ratini,\u00a0DO,\u00a0MS  on")
    assert load(broken_dir).entries["about_source"].quotes


def test_fold() -> None:
    assert fold("“OMT,”\u00a0 it’s\n ok") == '"OMT," it\'s ok'


def test_synonyms_map_to_topics(knowledge: Knowledge) -> None:
    assert knowledge.topic_for("Babies") == ("population", "who_can_get")
    assert knowledge.topic_for("myofascial release") == ("technique", "myofascial_release")
    assert knowledge.topic_for("lower back pain") == ("condition", "low_back_pain")
    assert knowledge.topic_for("asthma") is None


def test_built_pipeline_finds_entities(nlp: Language) -> None:
    doc = nlp("can my baby get muscle energy for migraines while pregnant")
    assert [(e.label_, e.ent_id_) for e in doc.ents] == [
        ("population", "who_can_get"),
        ("technique", "muscle_energy"),
        ("condition", "migraine"),
        ("population", "pregnancy"),
    ]
    assert spacy.__version__.startswith("3.4")

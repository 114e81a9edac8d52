"""The knowledge file is the only source of medical words: these tests keep it honest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from omt.contract import KNOWLEDGE_IDS
from omt.knowledge import KNOWLEDGE_DIR, Knowledge, KnowledgeError, fold, load
from omt.nlp_build import make_pipeline

# Conditions patients ask about that the article does NOT name: no answer may name them.
NOT_IN_ARTICLE = [
    "asthma", "sciatica", "fibromyalgia", "neck pain", "scoliosis", "constipation", "depression",
    "anxiety", "colic", "ear infection", "carpal tunnel", "tmj", "adhd", "concussion", "insomnia",
]  # fmt: skip


@pytest.fixture(scope="module")
def nlp(knowledge: Knowledge) -> Language:
    return make_pipeline(knowledge)


def _texts(knowledge: Knowledge) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.answer_id, t, e.quotes) for e in knowledge.entries.values() for t in (e.answer, e.sms)]


def _content_words(nlp: Language, text: str) -> set[str]:
    """Nouns, verbs, adjectives and numbers, near enough without a tagger: non-stop words."""
    return {
        tok.lemma_.casefold()
        for tok in nlp(fold(text).casefold())
        if (tok.is_alpha or tok.like_num) and not tok.is_stop and len(tok.text) > 1
    }


def _quote_words(nlp: Language, quotes: tuple[str, ...]) -> set[str]:
    words: set[str] = set()
    for tok in nlp(fold(" ".join(quotes)).casefold()):
        words |= {tok.lemma_.casefold(), tok.lower_}
    return words


def test_every_contract_knowledge_id_has_an_entry(knowledge: Knowledge) -> None:
    assert set(knowledge.entries) == set(KNOWLEDGE_IDS)


def test_every_quote_is_verbatim_in_the_article(knowledge: Knowledge) -> None:
    article = fold(knowledge.source.article_text)
    for entry in knowledge.entries.values():
        for quote in entry.quotes:
            assert fold(quote) in article, (entry.answer_id, quote)


def test_answers_say_nothing_their_quotes_do_not(knowledge: Knowledge, nlp: Language) -> None:
    for answer_id, text, quotes in _texts(knowledge):
        extra = _content_words(nlp, text) - _quote_words(nlp, quotes) - knowledge.allowed_words
        assert not extra, f"{answer_id}: words not in its quotes: {sorted(extra)}"


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
    """ "OMT can also treat other conditions, such as:" lists nothing; neither do we."""
    entry = knowledge.entries["what_it_treats"]
    assert "does not name them" in entry.answer
    service_texts = " ".join(r.text for r in knowledge.replies.values()).casefold()
    for condition in NOT_IN_ARTICLE:
        assert condition not in service_texts


def test_answers_are_short(knowledge: Knowledge) -> None:
    for entry in knowledge.entries.values():
        assert len(entry.answer.split()) <= 60, entry.answer_id
        assert len(entry.sms) <= 200, entry.answer_id
        assert entry.sms.isascii(), entry.answer_id


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

"""The spelling normalizer fixes one-edit misspellings and leaves real words alone."""

from __future__ import annotations

from omt.rasa.nlu_spelling import EnglishWords, Speller, deletes

COUNTS = {"does": 30, "hurt": 20, "chest": 5, "pain": 40, "baby": 12, "thank": 9, "safe": 8, "release": 6}


def test_deletes() -> None:
    assert deletes("pain") == {"ain", "pin", "pan", "pai"}


def test_one_edit_misspellings_are_corrected() -> None:
    speller = Speller(COUNTS)
    assert speller.fix("dooes it hrut") == "does it hurt"
    assert speller.fix("I haave chset paain") == "I haave chest pain"
    assert speller.fix("thnak you, is it sfae") == "thank you, is it safe"


def test_short_known_and_far_words_are_kept() -> None:
    speller = Speller(COUNTS)
    assert speller.fix("omt hrt ok") == "omt hrt ok"  # under four letters
    assert speller.fix("pain") == "pain"
    assert speller.fix("xylophone") == "xylophone"


def test_real_english_words_are_never_corrected() -> None:
    speller = Speller({"able": 3}, EnglishWords())
    assert speller.fix("turning blue") == "turning blue"
    assert "blue" in EnglishWords() and "chset" not in EnglishWords()

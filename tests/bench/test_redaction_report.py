"""The names report: what it counts, and Presidio run offline over our spaCy pipeline.

Figures (recall, false redactions, µs/message) come from `python -m omt.bench.redaction_report`;
these tests check only that it counts right and that Presidio never waits on the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omt.bench.redaction_report import (
    SPACY_MODEL,
    NamePhrasing,
    cue_words,
    measure,
    ours,
    presidio,
    presidio_context_recognizer,
)


def test_measure_counts_recall_names_and_false_redactions() -> None:
    phrasings = [
        NamePhrasing("I'm Jane Doe", ("Jane", "Doe")),
        NamePhrasing("Jane Doe asks", ("Jane", "Doe")),  # no cue: not found
    ]
    figures = measure("ours", ours(), phrasings, ["I'm Pregnant", "call me back", "Jane here"], runs=1)
    assert (figures.caught, figures.phrasings, figures.names_caught, figures.names) == (1, 2, 2, 4)
    assert (figures.false, figures.ordinary, figures.false_examples) == (1, 3, ("Jane here",))
    assert figures.misses == ("Jane Doe asks",) and figures.micros > 0


def test_a_name_is_kept_only_as_a_whole_word() -> None:
    phrasing = NamePhrasing("x", ("Tom",))
    assert phrasing.kept("Tomorrow, [name]") == [] and phrasing.kept("ask Tom.") == ["Tom"]


def test_presidio_context_words_come_from_the_rule_file() -> None:
    words = cue_words()
    assert {"name", "son", "thanks", "regards", "thank you"} <= set(words)


@pytest.mark.skipif(not (SPACY_MODEL / "meta.json").exists(), reason="build/spacy_omt not built (make build-nlp)")
def test_presidio_runs_offline_over_our_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("Presidio tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    builtin = presidio(predefined=True)
    assert builtin("my name is Jane Doe, mail jane@example.org") == "my name is Jane Doe, mail jane@example.org"
    import tldextract.tldextract as tld

    assert tld.TLD_EXTRACTOR.suffix_list_urls == ()
    context = presidio([presidio_context_recognizer()])
    assert context("can my son Tom get OMT") == "can my son [name] get OMT"


def test_the_report_prints_its_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omt.bench import redaction_report

    methods = [("ours: cue rules", ours()), ("Presidio: predefined recognizers", lambda text: text)]
    monkeypatch.setattr(redaction_report, "methods", lambda: methods)  # Presidio itself: the test above
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("I'm Pregnant\ncall me back\n")
    phrasings = tmp_path / "names.yml"
    phrasings.write_text('- {text: "I\'m Jane Doe", names: [Jane, Doe]}\n')
    assert redaction_report.main(["--phrasings", str(phrasings), "--ordinary", str(ordinary), "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours: cue rules" in out and "Presidio: predefined recognizers" in out and "µs/msg" in out

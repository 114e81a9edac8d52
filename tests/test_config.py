"""config.yml's NLU choices that rest on how Rasa's DIET reads its input.

The pipeline has no featurizer of token features alone (LexicalSyntacticFeaturizer), because
DIET with config.yml's settings (no transformer layers, no entity recognition) ranks intents
from the sentence features only. If those settings change, this test says the token
features matter again.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TinyDiet, config_pipeline


def test_config_diet_ranks_intents_without_reading_token_features(
    tiny_diet: TinyDiet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rasa.nlu.classifiers.diet_classifier import DIETClassifier

    texts = [*tiny_diet.texts, "is a session painful and how much", "hello cost"]
    plain = [tiny_diet.process(t) for t in texts]
    rng = np.random.default_rng(0)
    process = DIETClassifier.process

    def scrambled(self: DIETClassifier, messages: list) -> list:
        for message in messages:
            for features in message.features:
                if features.type == "sequence":  # every token's features, replaced by noise
                    features.features = features.features.copy()
                    features.features.data = rng.random(features.features.data.shape) * 5
        return process(self, messages)

    monkeypatch.setattr(DIETClassifier, "process", scrambled)
    assert [tiny_diet.process(t) for t in texts] == plain
    assert all(ranking for ranking in plain)


def test_no_featurizer_of_token_features_only() -> None:
    names = [c["name"] for c in config_pipeline()]
    assert "DIETClassifier" in names and "LexicalSyntacticFeaturizer" not in names

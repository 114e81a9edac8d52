"""TextLimiter: the language model reads at most the first `max_chars` of a message.

A patient may send up to 10,000 characters, but featurizing that many tokens costs
seconds to minutes (10,000 emoji took 72 s of one Rasa process, answering nobody else).
No question needs more than its first few hundred characters to be classified, so this
component, first in the pipeline, shortens the text the NLU sees. The stored message and
the red-flag screener (which reads the tracker's raw text) still get every character.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData


def limit(text: object, max_chars: int) -> object:
    """The first `max_chars` characters of a string; anything else unchanged."""
    return text[:max_chars] if isinstance(text, str) and len(text) > max_chars else text


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class TextLimiter(GraphComponent):
    """Shortens each message's text before tokenization (see the module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"max_chars": 500}

    def __init__(self, config: Dict[str, Any]) -> None:
        self.max_chars = int(config["max_chars"])

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextLimiter:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            shortened = limit(text, self.max_chars)
            if shortened is not text:
                message.set(TEXT, shortened)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training examples are short already; they pass unchanged."""
        return training_data

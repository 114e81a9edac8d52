"""EmergencyPolicy: the red-flag screener wins over every other prediction.

A policy (not an NLU component) because Rasa's RegexMessageHandler rewrites the parse
of typed `/intent{...}` messages after the NLU pipeline; a policy sees the raw text of
the latest message on every channel. Its predictions are marked end-to-end, which
Rasa's ensemble ranks above every intent-based prediction, and its priority is the
highest in config.yml, so no rule, memoized story or classifier miss can skip it.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from omt.core.safety import screen
from omt.rasa.patches import no_predictions, policy_prediction, policy_resource

EMERGENCY_ACTION = "action_emergency"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class EmergencyPolicy(Policy):
    """Predicts `action_emergency` whenever the screener fires on the latest message."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"priority": 7}

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn: the lexicon is data, read at prediction time."""
        return policy_resource(self)

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> EmergencyPolicy:
        return cls(config, model_storage, resource, execution_context)

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = no_predictions(self, domain)
        action = self._next_action(tracker)
        if action is None:
            return policy_prediction(self, probabilities)
        probabilities[domain.index_for_action(action)] = 1.0
        return policy_prediction(self, probabilities, is_end_to_end_prediction=True)

    @staticmethod
    def _next_action(tracker: DialogueStateTracker) -> str | None:
        """action_emergency right after a flagged message; then listen, and nothing else."""
        latest = tracker.latest_action_name
        if latest == ACTION_LISTEN_NAME and screen(tracker.latest_message.text or "") is not None:
            return EMERGENCY_ACTION
        if latest == EMERGENCY_ACTION:
            return ACTION_LISTEN_NAME
        return None

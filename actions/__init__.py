"""Rasa custom actions (run by `python -m omt.rasa.actions_run`, Rasa SDK's `rasa run actions`)."""

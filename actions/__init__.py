"""Rasa custom actions (run with `rasa run actions`)."""

"""Tests of omt/rasa/."""

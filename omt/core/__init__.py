"""The pure core: knowledge, the answer contract, replies, routing, safety, redaction, provenance.

Imports nothing from Rasa nor from the other layers (tests/core/test_layers.py checks it),
so every rule about what a patient is told is tested as plain functions.
"""

"""The pure core: knowledge, the answer contract, replies, routing, safety, redaction, provenance.

Imports nothing from Rasa nor from the other layers (tests/test_layers.py checks it),
so every rule about what a patient is told is tested as plain functions.
"""

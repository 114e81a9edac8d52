"""Every touch of Rasa: what config.yml and endpoints.yml load, the fault guard and the patches.

Rasa's private names are touched in omt/rasa/patches.py only. Imports the core, never the
channels, ops or bench layers.
"""

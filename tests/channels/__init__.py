"""Tests of omt/channels/."""

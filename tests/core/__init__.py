"""Tests of omt/core/."""

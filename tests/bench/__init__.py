"""Tests of omt/bench/."""

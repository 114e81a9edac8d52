"""Tests of omt/ops/."""

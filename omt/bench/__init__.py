"""Measuring the assistant: benchmarks, load, evaluation, NLU comparisons and reports (never in a turn)."""

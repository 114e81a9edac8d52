"""Shared fixtures: the loaded knowledge, and one running stack for the `stack` tests.

The stack (action server + Rasa, free loopback ports, its own SQLite tracker) starts
once per test session and only when a test asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from omt.core.knowledge import Knowledge, get_knowledge
from omt.ops.stack import Stack, running_stack

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "omt.tar.gz"


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return get_knowledge()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` first (make test does)")
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session")
def rest_url(stack: Stack) -> str:
    return stack.rest_url

"""pytest fixtures shared by the integration tests."""
import os
import sys

import pytest

# both "tests.pylib" (from the repository root) and "pylib" (from tests/) work
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.pylib.postern import Postern  # noqa: E402


@pytest.fixture
def postern_factory():
    """Make Postern instances (tests.pylib.postern.Postern); all are stopped
    and removed after the test."""
    made = []

    def make(**kw):
        inst = Postern(**kw)
        made.append(inst)
        return inst
    yield make
    for inst in made:
        inst.cleanup()


@pytest.fixture
def postern(postern_factory):
    """A started Postern instance with the default test configuration."""
    return postern_factory().start()

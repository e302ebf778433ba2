"""pytest fixtures shared by tests/integration and tests/interop (each
conftest.py imports them from here)."""
import pytest

from .postern import Postern


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

"""pytest set-up for these tests: the import paths and the shared fixtures."""
import os
import sys

# both "tests.pylib" (from the repository root) and "pylib" (from tests/) work
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.pylib.fixtures import postern, postern_factory  # noqa: E402,F401

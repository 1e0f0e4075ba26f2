"""Shared pytest configuration: hypothesis profiles.

The README's test command (scripts/run.py test, which CI runs) and any run with the CI
environment variable set use a deterministic, bounded profile, so a red build is
reproducible and the suite's run time is fixed; a bare `pytest` uses the "dev" profile
(random examples, a few more of them). Select one explicitly with HYPOTHESIS_PROFILE.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, max_examples=10, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def jax64():
    """jax with float64 on for one test (skipped where jax is not installed), the global
    setting restored afterwards so no other test sees it changed."""
    jax = pytest.importorskip("jax")
    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # older jax has it only here
        from jax.experimental import enable_x64

    with enable_x64(True):
        yield jax


def load_script(name: str):
    """scripts/<name>.py imported as a module (for the tests of the benchmark scripts); it
    stays in sys.modules under `name` until the caller removes it."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

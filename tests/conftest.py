"""Shared test fixtures: where the third-party samples live, and our own test data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT / "tests" / "data"
EXAMPLES = PROJECT / "examples"

# The real packets of ../shared/samples are third-party data: read in place, never copied here.
# A newcomer's clone has no ../shared, so tests that need them skip with this reason.
SAMPLES = Path(os.environ.get("LGSP_SAMPLES_DIR", PROJECT.parent / "shared" / "samples"))
EDXML_SAMPLES = [
    "edoc_new.edxml",
    "edoc_update.edxml",
    "edoc_replacement.edxml",
    "edoc_revocation.edxml",
    "status_inbox_01.edxml",
    "status_rejection_02.edxml",
    "status_acceptance_03.edxml",
    "status_processing_05.edxml",
    "status_finish_06.edxml",
    "status_cancellation_13.edxml",
]


def sample(name: str) -> bytes:
    """The bytes of a shared sample packet; skips the test when the samples are absent."""
    path = SAMPLES / "edxml" / name
    if not path.is_file():
        pytest.skip(f"shared samples not found at {SAMPLES} (set LGSP_SAMPLES_DIR to run these)")
    return path.read_bytes()


def data(name: str) -> bytes:
    """The bytes of one of our own test files under tests/data."""
    return (DATA / name).read_bytes()


# Property tests: random locally (to keep finding new cases), reproducible in CI (a landing must
# not depend on luck); no deadline, since CI machines are shared.
from hypothesis import settings  # noqa: E402

settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

"""Shared test fixtures: where the third-party samples live, and our own test data."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import settings

from lgsp_adapter.audit.store import AuditStore
from tests.audit_stores import BACKENDS, Attacker, open_store

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
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# A thread left running (an unclosed store connection, say) keeps the interpreter from exiting:
# CI would hang until its time runs out. Each test is checked for threads it leaves behind, and
# a session that still has any exits at once with a failure instead of hanging.


def _stray_threads(before: set[int]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.ident not in before and not t.daemon and t is not threading.main_thread()
    ]


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate() if t.ident is not None}
    yield
    stray = _stray_threads(before)
    for thread in stray:
        thread.join(timeout=2)
    still = [t.name for t in stray if t.is_alive()]
    assert not still, f"the test left threads running: {still}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stray = _stray_threads(set())
    if stray:
        print(f"\nthreads still running at the end: {[t.name for t in stray]}")  # noqa: T201
        os._exit(1)


# PostgreSQL: one fresh database per test run, dropped at the end; tests take a schema each.
POSTGRES = os.environ.get("LGSP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The DSN of a database made for this run (``LGSP_TEST_POSTGRES`` names the server)."""
    import asyncio
    import uuid

    import asyncpg

    name = f"lgsp_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    base, _, _ = POSTGRES.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest_asyncio.fixture(params=BACKENDS)
async def log(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str
) -> AsyncIterator[tuple[AuditStore, Attacker]]:
    """A fresh audit log on each backend, and the attacker who can write its tables."""
    async with open_store(request.param, tmp_path, postgres_database) as opened:
        yield opened

"""The store's disk full mid-stream (issue 21): SQLite on a small tmpfs. Every submission the
store cannot keep is told so (503 ``store.full``, Retry-After), none accepted is lost, and once
an operator frees space (the mount grown) intake resumes and each accepted packet is delivered
once. Needs root to mount; skipped elsewhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.test_exchange_embedded import TOKEN
from tests.test_exchange_rabbitmq import COMMUNE, letter_to
from tests.test_idempotency import exchange


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(  # our own arguments
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # our own arguments


async def submit(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str | None]:
    async with session.post(
        f"{url}/v1/packets",
        data=letter_to(COMMUNE),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
    ) as answer:
        body = await answer.json()
        said = body["packet_id"] if answer.status == 202 else body["error"]["code"]
        return answer.status, said, answer.headers.get("Retry-After")


@pytest.mark.asyncio
async def test_a_full_disk_refuses_precisely_and_loses_nothing(small_disk: Path) -> None:
    # No rate limit in the way: the stream must reach the disk's end.
    fast = {"requests_per_second": 10_000, "burst": 10_000}
    async with (
        exchange(small_disk, None, **fast) as (url, commune),
        aiohttp.ClientSession() as session,
    ):
        answers = [await submit(session, url) for _ in range(300)]
        refused = [a for a in answers if a[0] != 202]
        assert refused, "the disk never filled"
        assert {(status, code, after) for status, code, after in refused} == {
            (503, "store.full", "60")
        }
        grown = await asyncio.create_subprocess_exec(  # an operator frees space
            "mount", "-o", "remount,size=64m", str(small_disk)
        )
        assert await grown.wait() == 0
        later = [await submit(session, url) for _ in range(20)]
        assert {status for status, _, _ in later} == {202}
        accepted = [code for status, code, _ in answers + later if status == 202]
        for _ in range(300):
            if set(accepted) <= set(commune.delivered()):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    delivered = Counter(commune.delivered())
    assert set(delivered) == set(accepted)  # none lost, none the senders were not told of
    assert max(delivered.values()) == 1

"""Each fault injected mid-stream on a stream of 1,000 packets between two daemon processes on
RabbitMQ, counting at the receiving agency's server what was lost and what came twice
(docs/reliability.md has the table)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from lgsp_adapter.daemon.config import BusSettings
from tests.agency_server import AgencyServer
from tests.faults import exchange, send, send_repeating, settle, stream_with
from tests.test_daemon_process import log_of
from tests.test_exchange_rabbitmq import rabbitmqctl

PACKETS = 1000


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_all_connections_dropped_three_times(tmp_path: Path) -> None:
    async def drop(_: int) -> None:
        await rabbitmqctl("close_all_connections", "-p", "/", "lgsp-adapter fault test")

    async with exchange(tmp_path) as pair:
        accepted, ended = await stream_with(pair, PACKETS, [0.25, 0.5, 0.75], drop)
        outcome = await settle("all connections dropped 3 times", pair, accepted, ended)
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_answers_lost_after_the_commit_and_submissions_repeated(tmp_path: Path) -> None:
    """Issue 21: a system that lost the 202 sends again; nothing is kept or posted twice."""
    async with exchange(tmp_path) as pair:
        started = time.monotonic()
        accepted = await send_repeating(pair, PACKETS)
        outcome = await settle("answers lost, submissions repeated", pair, accepted, started)
        posted = pair.commune.delivered()
    assert len(set(accepted)) == PACKETS
    # No packet the sender never heard of either: a repeat kept twice would be one.
    assert len(posted) == PACKETS, f"{len(posted) - PACKETS} more posts than letters"
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_broker_stopped_for_30_s(tmp_path: Path) -> None:
    async def stop_broker(_: int) -> None:
        await rabbitmqctl("stop_app")
        try:
            # Meanwhile the sending daemon keeps accepting: store-and-forward.
            pair_sends.append(asyncio.create_task(send(pair, 200)))
            await asyncio.sleep(30)
        finally:
            await rabbitmqctl("start_app")

    pair_sends: list[asyncio.Task[list[str]]] = []
    async with exchange(tmp_path) as pair:
        accepted, ended = await stream_with(pair, PACKETS - 200, [0.4], stop_broker)
        accepted += await pair_sends[0]
        outcome = await settle("broker stopped for 30 s", pair, accepted, ended)
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_receiving_daemon_killed_and_restarted(tmp_path: Path) -> None:
    dead_at = 0.0

    async def kill(_: int) -> None:
        nonlocal dead_at
        await pair.kill_receiver()
        # Once it is reaped: a request it sent just before the signal may still be read
        # after the signal, but none after it is gone.
        dead_at = time.monotonic()
        await pair.start_receiver()

    async with exchange(tmp_path, AgencyServer(delay_s=0.005)) as pair:
        accepted, ended = await stream_with(pair, PACKETS, [0.5], kill)
        outcome = await settle("receiving daemon SIGKILLed and restarted", pair, accepted, ended)
    assert (outcome.sent, outcome.lost) == (PACKETS, 0)
    # A duplicate is possible only for a delivery in hand when the daemon was killed: the
    # agency's 2xx had come, its record had not. The X-LGSP-Packet-Id header lets the agency
    # drop it. Each is posted once before the kill and once after, and there are at most as
    # many as a consumer holds (the prefetch). Reported, not hidden.
    twice = pair.commune.taken_more_than_once()
    assert len(twice) <= BusSettings().prefetch
    for packet, at in twice.items():
        assert len(at) == 2, (packet, at)
        assert at[0] <= dead_at < at[1], (packet, at, dead_at)


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_sending_daemon_killed_and_restarted(tmp_path: Path) -> None:
    async def kill(_: int) -> None:
        await pair.kill_sender()
        await pair.start_sender()

    async with exchange(tmp_path) as pair:
        accepted, ended = await stream_with(pair, PACKETS, [0.5], kill)
        outcome = await settle("sending daemon SIGKILLed and restarted", pair, accepted, ended)
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
async def test_recipient_system_down_for_two_minutes(tmp_path: Path) -> None:
    commune = AgencyServer(then=503)
    async with exchange(tmp_path, commune) as pair:
        began = time.monotonic()
        accepted = await send(pair, PACKETS)
        await asyncio.sleep(max(0.0, 120 - (time.monotonic() - began)))
        commune.then = 200
        outcome = await settle(
            "recipient system down for 2 minutes", pair, accepted, time.monotonic()
        )
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)


# The broker's two resource alarms: raised by a limit no machine meets, then the default again.
ALARMS = {
    "disk": (("set_disk_free_limit", "100000GB"), ("set_disk_free_limit", "50MB")),
    "memory": (
        ("set_vm_memory_high_watermark", "0.0000001"),
        ("set_vm_memory_high_watermark", "0.4"),
    ),
}


@pytest.mark.asyncio
@pytest.mark.timeout(600)  # a stream of 1,000 packets through a fault
@pytest.mark.parametrize("kind", sorted(ALARMS))
async def test_a_resource_alarm_blocks_publishing_then_clears(tmp_path: Path, kind: str) -> None:
    raise_alarm, clear_alarm = ALARMS[kind]

    async def alarm(_: int) -> None:
        await rabbitmqctl(*raise_alarm)
        try:
            assert pair.sender is not None
            cpu_before, failures_before = cpu_s(pair.sender.pid), publish_failures()
            pair_sends.append(asyncio.create_task(send(pair, 200)))
            await asyncio.sleep(10)
            # The daemon waits for the broker: it neither spins on the CPU nor retries in a
            # loop (a spin would cost ~10 s of CPU and thousands of failures).
            blocked.append(cpu_s(pair.sender.pid) - cpu_before)
            blocked.append(publish_failures() - failures_before)
        finally:
            await rabbitmqctl(*clear_alarm)

    def publish_failures() -> int:
        log = log_of(pair.sender_config).read_text(encoding="utf-8", errors="replace")
        return log.count("publishing failed")

    pair_sends: list[asyncio.Task[list[str]]] = []
    blocked: list[float] = []
    async with exchange(tmp_path) as pair:
        accepted, ended = await stream_with(pair, PACKETS - 200, [0.4], alarm)
        accepted += await pair_sends[0]
        outcome = await settle(f"broker {kind} alarm for 10 s", pair, accepted, ended)
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)
    cpu, failures = blocked
    print(f"during the alarm: {cpu:.2f} s of CPU in 10 s, {failures:.0f} failed publishes")  # noqa: T201
    assert cpu < 5, cpu  # it took 200 submissions meanwhile; a spin would be ~10
    assert failures <= 10, failures


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

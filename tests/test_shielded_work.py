"""Work a dropped connection cannot cut short, and whose late failure is not left unread."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from lgsp_adapter.bus.contract import Verdict
from lgsp_adapter.bus.rabbitmq_consumers import ShieldedWork


@pytest.mark.asyncio
async def test_work_whose_consumer_is_cancelled_ends_and_its_failure_is_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a black-box probe: with the broker dropping connections mid-delivery, the
    receipt's publish failed in work nobody awaited any more: "Task exception was never
    retrieved … ChannelInvalidStateError"."""
    caplog.set_level(logging.INFO)
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    finished = asyncio.Event()

    async def delivery() -> Verdict:
        await asyncio.sleep(0.05)  # posted to the agency system meanwhile
        finished.set()
        raise ConnectionError("the receipt's channel closed with the connection")

    working = ShieldedWork()
    consumer = asyncio.create_task(working.run(delivery()))
    await asyncio.sleep(0.01)
    consumer.cancel()  # what a dropped connection does to the consumer's callback
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await working.wait()
    assert finished.is_set()  # the work went on to its end
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert unhandled == []
    assert "work finished after its connection dropped, then failed" in caplog.text


@pytest.mark.asyncio
async def test_an_awaited_verdict_comes_back() -> None:
    async def delivery() -> Verdict:
        return Verdict.ACK

    assert await ShieldedWork().run(delivery()) is Verdict.ACK

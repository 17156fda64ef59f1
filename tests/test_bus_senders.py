"""Who may speak on the bus for an agency this daemon does not serve: found by a black-box probe,
a packet from a sender neither served, known nor bound to an account was believed from any
broker account. Real RabbitMQ; the messages are published by a plain client, as anyone with an
account that may write the exchange could."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import (
    COMMUNE,
    base_settings,
    daemon,
    letter_to,
    publish_raw,
    remove_topology,
)

STRANGER = "000.00.00.G01"  # a ministry's code: on this bus only if a rule names it


def letter_from(sender: str) -> bytes:
    """The example letter to the commune, its sender (in From and the trace) replaced."""
    return letter_to(COMMUNE).replace(b"000.00.00.H56", sender.encode())


def config(tmp_path: Path, exchange: str, inbox: str, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            **base_settings(tmp_path, "b", exchange),
            "agencies": [{"code": COMMUNE, "name": "UBND xa", "endpoint": {"url": inbox}}],
            **extra,
        }
    )


async def publish(exchange: str, body: bytes) -> None:
    headers = {
        "x-lgsp-sender": STRANGER,
        "x-lgsp-recipient": COMMUNE,
        "x-lgsp-recipients": COMMUNE,
        "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
    }
    message = aio_pika.Message(
        body,
        message_id=str(uuid.uuid4()),
        type="edoc",
        content_type="application/xml",
        user_id="guest",  # the broker refuses any but the connection's own account
        headers=headers,  # type: ignore[arg-type]
    )
    await publish_raw(exchange, f"edoc.{COMMUNE}", message)


async def outcome(store: Path, server: AgencyServer) -> tuple[str, str]:
    """The first verdict on the message: delivered, or rejected and why."""
    for _ in range(200):
        with sqlite3.connect(store) as db:
            rejected = db.execute(
                "SELECT outcome, detail FROM audit_entries WHERE event = 'rejected'"
            ).fetchall()
        if rejected:
            return str(rejected[0][0]), str(rejected[0][1])
        if server.received:
            return "delivered", ""
        await asyncio.sleep(0.05)
    raise AssertionError("neither delivered nor rejected in 10 s")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("rules", "expect", "said"),
    [
        ({}, "bus.forged", "which this daemon neither serves nor knows"),
        # A range bound to the account that publishes: believed.
        ({"bus_senders": [{"codes": ["*.*.*.G01"], "bus_user": "guest"}]}, "delivered", ""),
        # Bound to another account: the publisher is not the one the rule names.
        (
            {"bus_senders": [{"codes": ["*.*.*.G01"], "bus_user": "lgsp-bo-tai-chinh"}]},
            "bus.forged",
            "published by 'guest', not by 'lgsp-bo-tai-chinh'",
        ),
        # Known by name, with no account: believed, as [[known_agencies]] has always said.
        ({"known_agencies": [{"code": STRANGER}]}, "delivered", ""),
    ],
)
async def test_a_sender_is_believed_only_when_a_rule_names_it(
    rules: dict[str, Any], expect: str, said: str, tmp_path: Path
) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    inbox = AgencyServer()
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(agency_server(inbox))
            settings = config(tmp_path, exchange, inbox.url, **rules)
            await stack.enter_async_context(daemon(settings))
            await publish(exchange, letter_from(STRANGER))
            got, detail = await outcome(Path(settings.store.path), inbox)
    finally:
        await remove_topology(exchange, [COMMUNE])
    assert got == expect, detail
    assert said in detail
    if expect != "delivered":
        assert inbox.received == []


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ({"codes": ["*.*.*.H56"], "bus_user": "other"}, "holds what is not another daemon's"),
        ({"codes": ["*.*.*.G01"], "bus_user": "guest", "extra": 1}, "Extra inputs"),
        ({"codes": ["G01"], "bus_user": "x"}, "is not a code pattern"),
    ],
)
def test_a_rule_that_cannot_hold_is_refused_at_start(
    rule: dict[str, Any], said: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=said):
        config(tmp_path, "lgsp.test.x", "http://127.0.0.1:9/", bus_senders=[rule])

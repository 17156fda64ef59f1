"""The demo's last step: document software that speaks the national axis' protocol joins
unchanged. An integrator registers its commune (a pull inbox, as the axis works) and its system
(a secret is made); the office's next letter waits for it, and the software fetches it as it
fetches from the national axis: received list, ``getEdoc``, ``updateStatus done``. It is the
adapter's own axis client here, signing as the vendors' SDK signs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from lgsp_adapter.cli import demo_packets as packets
from lgsp_adapter.exchange.axis_client import AxisClient
from lgsp_adapter.packets.axis_wire import MessageType, TransportStatus

SYSTEM_ID = "qlvb.quang-yen"

Send = Callable[[str, bytes, str], Awaitable[str]]


async def axis_software_joins(
    url: str,
    integrator: str,
    session: aiohttp.ClientSession,
    say: Callable[[str], None],
    send: Send,
) -> tuple[bool, str]:
    """Register the commune and its axis system, send it a letter, fetch and acknowledge it
    over the axis' protocol. Whether the letter came out byte for byte, and its packet id."""
    code = packets.AXIS_COMMUNE
    say(f"\n7. {packets.NAMES[code]} ({code}) keeps its axis software: registered, it fetches")
    headers = {"Authorization": f"Bearer {integrator}"}
    record = {"code": code, "name": packets.NAMES[code], "endpoint": {"mode": "pull"}}
    system = {"system_id": SYSTEM_ID, "agencies": [code], "label": "QLVB of the commune"}
    async with session.post(f"{url}/v1/endpoints", json=record, headers=headers) as response:
        if response.status != 201:
            say(f"  registration refused: {await response.text()}")
            return False, ""
    async with session.post(f"{url}/v1/axis-systems", json=system, headers=headers) as response:
        registered: dict[str, Any] = await response.json()
    if response.status != 201:
        say(f"  axis system refused: {registered}")
        return False, ""
    say(f"  POST /v1/axis-systems -> 201: {SYSTEM_ID}, its secret in this answer, once")
    letter = packets.document((code,), number="1241")
    packet_id = await send(packets.PROVINCE, letter, "application/xml")
    software = AxisClient(
        f"{url}/axis", system_id=SYSTEM_ID, secret=registered["secret"], session=session
    )
    listed = await _listed(software, packet_id)
    say(f"  getReceivedEdocList -> {len(listed)} waiting, the office's letter among them")
    fetched = await software.get_edoc(packet_id)
    say(f"  getEdoc {packet_id} -> {len(fetched):,} bytes, as the office sent them")
    await software.update_status(packet_id, TransportStatus.DONE)
    say("  updateStatus done -> OK")
    return fetched == letter, packet_id


async def _listed(software: AxisClient, packet_id: str, timeout_s: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        listed = await software.received(MessageType.EDOC)
        if any(item.get("docId") == packet_id for item in listed) or time.monotonic() > deadline:
            return listed
        await asyncio.sleep(0.1)

"""The axis poller against an axis on loopback: what it takes in is kept once however often it
is fetched, ``done`` follows the commit, a packet the intake refuses is answered ``fail``, and
the axis' agency list reaches ours."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.exchange.axis_poller import AxisPoller, Upstream
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.packets.axis_wire import answer
from lgsp_adapter.store import Store
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_axis_client import SECRET, SYSTEM, LoopbackAxis, axis
from tests.test_axis_connector import GOVERNMENT_OFFICE, PROVINCE, downstream_document

__all__ = ["axis"]


def settings(tmp_path: Path, url: str) -> Settings:
    return Settings.model_validate(
        {
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [
                {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"mode": "pull"}},
                {
                    "code": GOVERNMENT_OFFICE,
                    "name": "Văn phòng Chính phủ",
                    "endpoint": {
                        "mode": "axis",
                        "url": url,
                        "auth": {"kind": "axis", "system_id": SYSTEM, "secret": SECRET},
                    },
                },
            ],
        }
    )


@asynccontextmanager
async def polling(tmp_path: Path, url: str) -> AsyncIterator[tuple[Store, AxisPoller, Upstream]]:
    """A store, and a poller of the one upstream the settings name, over real parts."""
    config = settings(tmp_path, url)
    async with await SqliteStore.open(config.store.path) as store, aiohttp.ClientSession() as s:
        directory = config.directory()
        intake = Intake(store=store, directory=directory, limits=config.limits)
        poller = AxisPoller(store=store, intake=intake, directory=directory, session=s)
        [upstream] = poller.upstreams()
        assert upstream.codes == (GOVERNMENT_OFFICE,)
        yield store, poller, upstream


@pytest.mark.asyncio
async def test_a_packet_fetched_again_is_kept_once_and_done_follows_the_commit(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    letter = downstream_document(7)
    state.documents["axis-doc-1"] = letter
    async with polling(tmp_path, url) as (store, poller, upstream):
        # The axis' answer to updateStatus is lost: the packet is kept, the axis not told.
        state.answers["updateStatus"] = b"<html>gateway timeout</html>"
        assert await poller.poll(upstream) == 0  # not taken: kept, and the axis not told
        packet_id = upstream.packet_id("axis-doc-1")
        kept = await store.packet(packet_id)
        assert kept is not None
        assert kept.payload == letter
        assert "axis-doc-1" not in state.statuses
        # The next look fetches it again: found kept, only acknowledged.
        del state.answers["updateStatus"]
        assert await poller.poll(upstream) == 1
        assert state.statuses == {"axis-doc-1": "done"}
        received = [e for e in await store.history(packet_id) if e.event == "received"]
        assert len(received) == 1
        fetches = [seen["operation"] for seen in state.seen].count("getEdoc")
        assert fetches == 1  # kept already: not even fetched the second time


@pytest.mark.asyncio
async def test_a_packet_the_intake_refuses_is_answered_fail(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    # The axis hands us a letter claiming to come from the province itself: not one the axis
    # may speak for.
    forged = downstream_document(8).replace(GOVERNMENT_OFFICE.encode(), PROVINCE.encode())
    state.documents["axis-doc-2"] = forged
    async with polling(tmp_path, url) as (store, poller, upstream):
        assert await poller.poll(upstream) == 0
        assert state.statuses == {"axis-doc-2": "fail"}
        assert await store.facts(upstream.packet_id("axis-doc-2")) is None


@pytest.mark.asyncio
async def test_the_axis_agency_list_is_merged_into_ours(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    units: list[dict[str, Any]] = [
        {"id": "17", "code": "000.00.00.G22", "name": "Văn phòng Chính phủ", "pid": ""},
        {"id": "18", "code": "000.01.00.G22", "name": "Vụ Tổng hợp", "pid": "17"},
        {"id": "19", "code": "28.22.H17", "name": "no standard code", "pid": "17"},
        {"id": "20", "code": "000.02.00.G22", "name": "Vụ cũ", "pid": "17", "deleted": True},
    ]
    state.answers["getSynchronizeUnit"] = answer(data=units)
    async with polling(tmp_path, url) as (store, poller, upstream):
        assert await poller.sync_agencies(upstream) == 4
        found = await store.agency_list.find(under="000.00.00.G22")
        assert [(a.code, a.name) for a in found] == [("000.01.00.G22", "Vụ Tổng hợp")]
        gone = await store.agency_list.find(search="Vụ cũ", include_deleted=True)
        assert [a.deleted for a in gone] == [True]


def test_packet_ids_differ_by_axis_and_system() -> None:
    one = Upstream("http://a/axis", "s", "x" * 16, ("000.00.00.G22",))
    other = Upstream("http://b/axis", "s", "x" * 16, ("000.00.00.G22",))
    assert one.packet_id("1") == one.packet_id("1")
    assert one.packet_id("1") != other.packet_id("1")
    assert isinstance(one.packet_id("1"), uuid.UUID)

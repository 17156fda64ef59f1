"""The axis poller against an axis on loopback: what it takes in is kept once however often it
is fetched, ``done`` follows the commit, a packet the intake refuses is answered ``fail`` but
one refused for how the registry here stands waits for it to be mended, co-recipients on the
axis are left to it, and the axis' agency list reaches ours without touching those served
here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from lgsp_adapter.cli.demo_packets import COMMUNES, DEPARTMENT, document
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.exchange.axis_poller import AxisPoller, Upstream, upstreams
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.axis_wire import answer
from lgsp_adapter.registry.agencies import Directory
from lgsp_adapter.registry.endpoint_auth import AxisAuth
from lgsp_adapter.store import Store
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_axis_client import SECRET, SYSTEM, LoopbackAxis, axis
from tests.test_axis_connector import GOVERNMENT_OFFICE, PROVINCE, downstream_document

OTHER_PROVINCE = "000.00.00.H40"  # on the axis, not here

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
async def polling(
    tmp_path: Path, url: str, **options: Any
) -> AsyncIterator[tuple[Store, AxisPoller, Upstream]]:
    """A store, and a poller of the one upstream the settings name, over real parts."""
    config = settings(tmp_path, url)
    async with await SqliteStore.open(config.store.path) as store, aiohttp.ClientSession() as s:
        directory = config.directory()
        intake = Intake(store=store, directory=directory, limits=config.limits)
        poller = AxisPoller(store=store, intake=intake, directory=directory, session=s, **options)
        poller.directory = directory  # type: ignore[attr-defined]  # for the tests to change
        [upstream] = poller.upstreams()
        assert upstream.codes == (GOVERNMENT_OFFICE,)
        yield store, poller, upstream


def letter(number: int, to: tuple[str, ...], sender: str = GOVERNMENT_OFFICE) -> bytes:
    """A letter from ``sender`` (by default the Government Office, across the axis)."""
    placeholders = [DEPARTMENT, *COMMUNES][: len(to)]  # codes the demo's letters know
    text = document(tuple(placeholders), str(number)).replace(PROVINCE.encode(), sender.encode())
    for placeholder, code in zip(placeholders, to, strict=True):
        text = text.replace(placeholder.encode(), code.encode())
    return text


def change(directory: Directory, code: str, **fields: Any) -> None:
    """The registry changes one served agency (as an integrator's edit does)."""
    served = [directory.served(c) for c in directory.served_codes]
    directory.update(
        [a.model_copy(update=fields) if str(a.code) == code else a for a in served if a],
        [],
    )


def fetches(state: LoopbackAxis) -> int:
    return [seen["operation"] for seen in state.seen].count("getEdoc")


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


def test_packet_ids_differ_by_axis_and_system() -> None:
    one = Upstream("http://a/axis", "s", frozenset({"x" * 16}), ("000.00.00.G22",))
    other = Upstream("http://b/axis", "s", frozenset({"x" * 16}), ("000.00.00.G22",))
    assert one.packet_id("1") == one.packet_id("1")
    assert one.packet_id("1") != other.packet_id("1")
    assert isinstance(one.packet_id("1"), uuid.UUID)


@pytest.mark.asyncio
async def test_recipients_on_the_axis_are_left_to_it(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    # To the province here and to another province on the axis, which the axis serves itself.
    state.documents["axis-doc-3"] = letter(9, (PROVINCE, OTHER_PROVINCE))
    async with polling(tmp_path, url) as (store, poller, upstream):
        assert await poller.poll(upstream) == 1
        assert state.statuses == {"axis-doc-3": "done"}
        kept = await store.facts(upstream.packet_id("axis-doc-3"))
        assert kept is not None
        assert kept.recipients == [PROVINCE]
        [received] = [e for e in await store.history(kept.id) if e.event == "received"]
        assert OTHER_PROVINCE in str(received.detail)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("why", "document_of", "mend"),
    [
        (
            "the sender disabled here",
            lambda: letter(10, (PROVINCE,)),
            lambda d: change(d, GOVERNMENT_OFFICE, enabled=True),
        ),
        (
            "the recipient disabled here",
            lambda: letter(11, (PROVINCE,)),
            lambda d: change(d, PROVINCE, enabled=True),
        ),
        ("no recipient served here", lambda: letter(12, (OTHER_PROVINCE,)), None),
        ("a sender not registered here", lambda: letter(13, (PROVINCE,), OTHER_PROVINCE), None),
    ],
)
async def test_a_packet_refused_for_the_registry_here_waits_for_it_to_be_mended(
    axis: tuple[LoopbackAxis, str],
    tmp_path: Path,
    why: str,
    document_of: Any,
    mend: Any,
) -> None:
    state, url = axis
    state.documents["axis-doc-4"] = document_of()
    async with polling(tmp_path, url, hold_first_wait_s=0.5) as (store, poller, upstream):
        directory = poller.directory  # type: ignore[attr-defined]
        if why == "the sender disabled here":
            change(directory, GOVERNMENT_OFFICE, enabled=False)
        if why == "the recipient disabled here":
            change(directory, PROVINCE, enabled=False)
        assert await poller.poll(upstream) == 0
        assert state.statuses == {}  # not failed: the sender's system is told nothing yet
        packet_id = upstream.packet_id("axis-doc-4")
        assert await store.facts(packet_id) is None
        assert await poller.poll(upstream) == 0
        assert fetches(state) == 1  # held: not fetched and refused again at once
        refusals = [e for e in await store.audit.entries(0, 100) if e.event == "rejected"]
        assert len(refusals) == 1  # the refusal, audited once
        if mend is None:
            return
        mend(directory)
        await asyncio.sleep(0.6)
        assert await poller.poll(upstream) == 1
        assert state.statuses == {"axis-doc-4": "done"}
        assert await store.facts(packet_id) is not None


def test_an_axis_whose_agencies_give_two_secrets_is_not_polled(tmp_path: Path) -> None:
    config = settings(tmp_path, "http://127.0.0.1:9/axis")
    [office] = [a for a in config.agencies if str(a.code) == GOVERNMENT_OFFICE]
    auth = office.endpoint.auth
    assert isinstance(auth, AxisAuth)
    rotated = auth.model_copy(update={"secret": SecretStr("the-new-secret-of-2027")})
    other = office.model_copy(
        update={
            "code": AgencyCode.parse(OTHER_PROVINCE),
            "endpoint": office.endpoint.model_copy(update={"auth": rotated}),
        }
    )
    [upstream] = upstreams([office, other])
    assert upstream.codes == (GOVERNMENT_OFFICE, OTHER_PROVINCE)
    assert not upstream.agreed
    [upstream] = upstreams([office, other.model_copy(update={"endpoint": office.endpoint})])
    assert upstream.agreed


@pytest.mark.asyncio
async def test_the_axis_agency_list_reaches_ours_but_for_those_served_here(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    units: list[dict[str, Any]] = [
        {"id": "1", "code": PROVINCE, "name": "renamed by the axis", "pid": "", "deleted": True},
        {"id": "17", "code": "000.00.00.G22", "name": "Văn phòng Chính phủ", "pid": ""},
        {"id": "18", "code": "000.01.00.G22", "name": "Vụ một", "pid": "17"},
        {"id": "19", "code": "000.01.00.G22", "name": "Vụ Tổng hợp", "pid": "17"},
        {"id": "20", "code": "28.22.H17", "name": "no standard code", "pid": "17"},
        {"id": "21", "code": "000.02.00.G22", "name": "Vụ cũ", "pid": "17", "deleted": True},
    ]
    state.answers["getSynchronizeUnit"] = answer(data=units)
    async with polling(tmp_path, url) as (store, poller, upstream):
        assert await poller.sync_agencies(upstream) == 6
        gone = await store.agency_list.find(search="Vụ cũ", include_deleted=True)
        assert [(a.code, a.parent, a.deleted) for a in gone] == [
            ("000.02.00.G22", "000.00.00.G22", True)
        ]
        # The province served here is left as the registry lists it, not renamed nor deleted.
        assert await store.agency_list.find(search="renamed", include_deleted=True) == []
        found = await store.agency_list.find(under="000.00.00.G22")
        assert [(a.code, a.name) for a in found] == [("000.01.00.G22", "Vụ Tổng hợp")]
        # An axis whose list is broken is not asked again at every round.
        state.answers["getSynchronizeUnit"] = b"<html>maintenance</html>"
        poller.interval_s = 0.05
        stopping = asyncio.Event()
        running = asyncio.create_task(poller.run(stopping))
        await asyncio.sleep(0.6)
        stopping.set()
        await running
        operations = [seen["operation"] for seen in state.seen]
        assert operations.count("getReceivedEdocList") > 4
        assert operations.count("getSynchronizeUnit") == 2  # the first above, one failure

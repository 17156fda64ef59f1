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
from lgsp_adapter.exchange.axis_poller import AxisPoller, Upstream
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.axis_wire import answer
from lgsp_adapter.registry.agencies import ServedAgency
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.endpoint_auth import AxisAuth
from lgsp_adapter.store import Store
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_axis_client import SECRET, SYSTEM, LoopbackAxis, axis
from tests.test_axis_connector import GOVERNMENT_OFFICE, PROVINCE, downstream_document

OTHER_PROVINCE = "000.00.00.H40"  # on the axis, not here
MINISTRY = "000.00.00.G10"  # reached here through the same axis

__all__ = ["axis"]


def through(url: str) -> dict[str, Any]:
    """An endpoint reached through the axis at ``url``, as our system there."""
    auth = {"kind": "axis", "system_id": SYSTEM, "secret": SECRET}
    return {"mode": "axis", "url": url, "auth": auth}


def settings(tmp_path: Path, url: str, **more: Any) -> Settings:
    return Settings.model_validate(
        {
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [
                {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"mode": "pull"}},
                {
                    "code": GOVERNMENT_OFFICE,
                    "name": "Văn phòng Chính phủ",
                    "endpoint": through(url),
                },
            ],
            **more,
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


def add(directory: Directory, agency: ServedAgency) -> None:
    """The registry serves one agency more."""
    served = [directory.served(c) for c in directory.served_codes]
    directory.update([*(a for a in served if a), agency], [])


def also_through(office: ServedAgency, code: str, system_id: str, secret: str) -> ServedAgency:
    """Another agency reached through the office's axis, as ``system_id`` with ``secret``."""
    auth = office.endpoint.auth
    assert isinstance(auth, AxisAuth)
    endpoint = office.endpoint.model_copy(
        update={
            "auth": auth.model_copy(update={"system_id": system_id, "secret": SecretStr(secret)})
        }
    )
    return office.model_copy(update={"code": AgencyCode.parse(code), "endpoint": endpoint})


async def run_for(poller: AxisPoller, seconds: float) -> None:
    poller.interval_s = 0.05
    stopping = asyncio.Event()
    running = asyncio.create_task(poller.run(stopping))
    await asyncio.sleep(seconds)
    stopping.set()
    await running


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
    # To the province here, to another province on the axis, and to a ministry reached here
    # through the same axis as another system: the axis serves the last two itself.
    state.documents["axis-doc-3"] = letter(9, (PROVINCE, OTHER_PROVINCE, MINISTRY))
    async with polling(tmp_path, url) as (store, poller, upstream):
        office = poller.directory.served(AgencyCode.parse(GOVERNMENT_OFFICE))  # type: ignore[attr-defined]
        assert office is not None
        add(poller.directory, also_through(office, MINISTRY, "lgsp.h56-ministry", "m" * 20))  # type: ignore[attr-defined]
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


@pytest.mark.asyncio
async def test_an_axis_whose_enabled_agencies_give_two_secrets_is_not_polled(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    async with polling(tmp_path, url) as (_, poller, _upstream):
        directory: Directory = poller.directory  # type: ignore[attr-defined]
        office = directory.served(AgencyCode.parse(GOVERNMENT_OFFICE))
        assert office is not None
        auth = office.endpoint.auth
        assert isinstance(auth, AxisAuth)
        # An integrator gives the system a new secret, one agency at a time.
        add(directory, also_through(office, MINISTRY, auth.system_id, "the-new-secret-of-2027"))
        [upstream] = poller.upstreams()
        assert (upstream.codes, upstream.agreed) == ((MINISTRY, GOVERNMENT_OFFICE), False)
        await run_for(poller, 0.3)
        assert [seen["operation"] for seen in state.seen] == []  # not polled with either
        # The one with the other secret disabled: its stale secret no longer stops polling.
        change(directory, MINISTRY, enabled=False)
        await run_for(poller, 0.3)
        assert "getReceivedEdocList" in [seen["operation"] for seen in state.seen]


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
        await run_for(poller, 0.6)
        operations = [seen["operation"] for seen in state.seen]
        assert operations.count("getReceivedEdocList") > 4
        assert operations.count("getSynchronizeUnit") == 2  # the first above, one failure


@pytest.mark.asyncio
async def test_a_held_packet_is_audited_once_and_answered_fail_when_held_too_long(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, url = axis
    state.documents["axis-doc-5"] = letter(14, (OTHER_PROVINCE,))  # for no agency here
    waits = {"hold_first_wait_s": 0.05, "hold_give_up_s": 1.0}
    async with polling(tmp_path, url, **waits) as (store, poller, upstream):

        async def refusals() -> list[str]:
            entries = await store.audit.entries(0, 100)
            return [str(e.detail) for e in entries if e.event == "rejected"]

        for _ in range(3):
            assert await poller.poll(upstream) == 0
            await asyncio.sleep(0.15)
        assert fetches(state) >= 2  # tried again, and again
        assert state.statuses == {}
        assert len(await refusals()) == 1  # but audited once
        await asyncio.sleep(1.0)
        assert await poller.poll(upstream) == 0
        assert state.statuses == {"axis-doc-5": "fail"}  # its sender hears, at last
        last = (await refusals())[-1]
        assert "then answered fail" in last


@pytest.mark.asyncio
async def test_a_packet_from_a_code_of_a_route_through_the_axis_is_taken_in(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    # The ministry's codes are reached through the axis by one route, not agency by agency:
    # a letter from any of its units is the axis speaking for a code it may speak for.
    state, url = axis
    unit = "000.03.00.G10"
    state.documents["axis-doc-6"] = letter(15, (PROVINCE,), unit)
    ministry = {"name": "ministry", "codes": ["*.*.*.G10"], "endpoint": through(url)}
    config = settings(tmp_path, url, routes=[ministry])
    async with await SqliteStore.open(config.store.path) as store, aiohttp.ClientSession() as s:
        directory = config.directory()
        intake = Intake(store=store, directory=directory, limits=config.limits)
        poller = AxisPoller(store=store, intake=intake, directory=directory, session=s)
        [upstream] = poller.upstreams()
        assert (upstream.codes, upstream.ranges) == ((GOVERNMENT_OFFICE,), ("*.*.*.G10",))
        assert await poller.poll(upstream) == 1
        assert state.statuses == {"axis-doc-6": "done"}
        kept = await store.facts(upstream.packet_id("axis-doc-6"))
        assert kept is not None
        assert (kept.sender, kept.recipients) == (unit, [PROVINCE])

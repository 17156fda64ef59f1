"""Sends repeated and acknowledgements split at the axis facade: the same file sent twice at
once is one packet, a file sent again after it failed everywhere is a new one, and an
acknowledgement for several agencies changes all of them or none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.http import axis_documents
from tests.axis_sdk import SdkClient
from tests.test_axis_facade import (
    COMMUNE_TOKEN,
    DISTRICT_SECRET,
    DISTRICT_SYSTEM,
    DOCUMENT,
    PROVINCE_SECRET,
    PROVINCE_SYSTEM,
    count_becomes,
    facade,
    journey,
    ok,
)
from tests.test_exchange_embedded import COMMUNES, PROVINCE

SEND = {"from": PROVINCE, "to": COMMUNES, "servicetype": "eDoc", "messagetype": "edoc"}
_DEPARTMENT_TO = DOCUMENT[DOCUMENT.index(b"<edXML:To>") : DOCUMENT.index(b"</edXML:To>") + 11]


def to_the_communes(number: int) -> bytes:
    """The sample, addressed to the two communes only, as document ``number``."""
    document = DOCUMENT.replace(_DEPARTMENT_TO, b"", 1)
    return document.replace(b"1234", str(number).encode(), 2)


async def ack_on_v1(url: str, doc_id: str, status: str) -> int:
    """The second commune's /v1 system acknowledges its copy."""
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{url}/v1/inbox/{doc_id}/ack",
            json={"status": status},
            headers={"Authorization": f"Bearer {COMMUNE_TOKEN}"},
        )
        return answer.status


@pytest.mark.asyncio
async def test_the_same_file_sent_twice_at_once_is_one_packet(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        document = to_the_communes(4001)
        answers = await asyncio.gather(*(province.send_edoc(SEND, document) for _ in range(4)))
        doc_ids = {ok(sent)["DocId"] for sent in answers}
        assert len(doc_ids) == 1
        events = await journey(url, doc_ids.pop())
        assert [event for event, _ in events].count("received") == 1


@pytest.mark.asyncio
async def test_a_file_sent_again_after_it_failed_everywhere_is_sent_anew(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        document = to_the_communes(4002)
        first = ok(await province.send_edoc(SEND, document))["DocId"]
        await count_becomes(district, "countReceiveEdoc", 1)
        ok(await district.update_status(first, "fail"))
        # Refused by every recipient: the same file again is a deliberate resend.
        second = ok(await province.send_edoc(SEND, document))["DocId"]
        assert second != first
        await count_becomes(district, "countReceiveEdoc", 1)
        assert [i["docId"] for i in ok(await district.received())["data"]] == [second]
        # The resend's own repetition (its answer lost) is found as such.
        assert ok(await province.send_edoc(SEND, document))["DocId"] == second
        # While one recipient still may take it, the same file is a repetition.
        third = to_the_communes(4003)
        doc_id = ok(await province.send_edoc(SEND, third))["DocId"]
        await count_becomes(district, "countReceiveEdoc", 2)
        assert await ack_on_v1(url, doc_id, "fail") == 200  # one commune of two refused it
        assert ok(await province.send_edoc(SEND, third))["DocId"] == doc_id


@pytest.mark.asyncio
async def test_an_acknowledgement_for_several_agencies_changes_all_or_none(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        doc_id = ok(await province.send_edoc(SEND, to_the_communes(4004)))["DocId"]
        await count_becomes(district, "countReceiveEdoc", 1)
        # The second commune's other system refused its copy; the district's says done for
        # both, and the first commune's copy comes first.
        assert await ack_on_v1(url, doc_id, "fail") == 200
        done = (await district.update_status(doc_id, "done")).json()
        assert (done["status"], done["ErrorCode"]) == ("FAIL", "inbox.already_acknowledged")
        assert COMMUNES[1] in done["ErrorDesc"]
        # Nothing changed for the first commune: its copy still waits.
        assert [i["docId"] for i in ok(await district.received())["data"]] == [doc_id]
        assert ("delivered", COMMUNES[0]) not in await journey(url, doc_id)
        # The same word for both is taken.
        ok(await district.update_status(doc_id, "fail"))
        await count_becomes(district, "countReceiveEdoc", 0)
        events = await journey(url, doc_id)
        assert ("refused", COMMUNES[0]) in events
        assert ("refused", COMMUNES[1]) in events


@pytest.mark.asyncio
async def test_a_file_sent_again_too_often_is_refused_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each send refused everywhere, each resend a new packet, up to the cap: then a clear
    # refusal, never an old DocId answered as if the send had gone.
    monkeypatch.setattr(axis_documents, "MAX_RESENDS", 2)
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        document = to_the_communes(4005)
        for waiting in (1, 1):
            doc_id = ok(await province.send_edoc(SEND, document))["DocId"]
            await count_becomes(district, "countReceiveEdoc", waiting)
            ok(await district.update_status(doc_id, "fail"))
        refused = (await province.send_edoc(SEND, document)).json()
        assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "axis.bad_request")
        assert "2 times" in refused["ErrorDesc"]


@pytest.mark.asyncio
async def test_a_send_under_an_idempotency_key_is_known_by_its_key(tmp_path: Path) -> None:
    """Issue 21: the facade's send takes the same key as /v1/packets. The key, not the file,
    decides: its repeat is the first send, and the same key with another file is refused."""
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        province.headers.put("Idempotency-Key", "qlvb-gui-4004")
        first = ok(await province.send_edoc(SEND, to_the_communes(4004)))["DocId"]
        province.headers.put("Idempotency-Key", "qlvb-gui-4004")
        assert ok(await province.send_edoc(SEND, to_the_communes(4004)))["DocId"] == first
        events = await journey(url, first)
        assert [event for event, _ in events].count("received") == 1
        province.headers.put("Idempotency-Key", "qlvb-gui-4004")
        refused = await province.send_edoc(SEND, to_the_communes(4005))
        assert "packet.idempotency_conflict" in str(refused), refused

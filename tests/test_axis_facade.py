"""The axis facade against a real daemon, called as the vendors' Java SDK calls the national axis
(``tests/axis_sdk.py``): every operation, the document's whole life in the audit log, and the
same packet whichever way it came in."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.axis_sdk import SdkClient
from tests.conftest import EDXML_SAMPLES, EXAMPLES, sample
from tests.test_exchange_embedded import AUDITOR_TOKEN, COMMUNES, DEPARTMENT, PROVINCE
from tests.test_exchange_rabbitmq import daemon

DOCUMENT = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()  # province → dept, 2 communes
STATUS = (EXAMPLES / "status-03-accepted.edxml").read_bytes()  # commune 1 → province
INTEGRATOR = "integrator-of-the-province-0123456789"
DEPARTMENT_TOKEN = "department-system-token-0123456789"
COMMUNE_TOKEN = "first-commune-system-token-0123456789"  # a /v1 system beside the axis' one
PROVINCE_SYSTEM, PROVINCE_SECRET = "qlvb.tinh-h56", "the-province-qlvb-secret-2024"
DISTRICT_SYSTEM, DISTRICT_SECRET = "qlvb.huyen-h56", "the-district-qlvb-secret-2024"


def settings(tmp_path: Path, department_url: str, **axis: Any) -> Settings:
    pull = {"mode": "pull"}
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
            "daemon": {"drain_s": 5},
            "axis": axis,
            "agencies": [
                {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": pull},
                {"code": DEPARTMENT, "name": "Sở", "endpoint": {"url": department_url}},
                {"code": COMMUNES[0], "name": "Xã 1", "endpoint": pull},
                {"code": COMMUNES[1], "name": "Xã 2", "endpoint": pull},
            ],
            "clients": [
                {"name": "department", "token": DEPARTMENT_TOKEN, "agencies": [DEPARTMENT]},
                {"name": "commune-2", "token": COMMUNE_TOKEN, "agencies": [COMMUNES[1]]},
                {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
                {"name": "auditor", "token": AUDITOR_TOKEN, "role": "auditor"},
            ],
        }
    )


@asynccontextmanager
async def facade(tmp_path: Path, **axis: Any) -> AsyncIterator[tuple[str, AgencyServer]]:
    """A daemon whose province and communes' systems speak only the axis' protocol, registered
    by an integrator over the API; the department's system takes pushes."""
    async with AsyncExitStack() as stack:
        department = await stack.enter_async_context(agency_server(AgencyServer()))
        url = await stack.enter_async_context(daemon(settings(tmp_path, department.url, **axis)))
        async with aiohttp.ClientSession() as session:
            for system, secret, agencies in (
                (PROVINCE_SYSTEM, PROVINCE_SECRET, [PROVINCE]),
                (DISTRICT_SYSTEM, DISTRICT_SECRET, COMMUNES),
            ):
                body = {"system_id": system, "agencies": agencies, "secret": secret}
                answer = await session.post(
                    f"{url}/v1/axis-systems",
                    json=body,
                    headers={"Authorization": f"Bearer {INTEGRATOR}"},
                )
                assert answer.status == 201, await answer.text()
                assert "secret" not in await answer.json()  # it was given, not made
        yield url, department


def ok(sent: Any) -> dict[str, Any]:
    document: dict[str, Any] = sent.json()
    assert sent.status == 200, sent.answer
    assert document["status"] == "OK", document
    assert document["ErrorCode"] == "0"
    assert sent.answer.isascii()
    assert b"null" not in sent.answer
    return document


async def count_becomes(sdk: SdkClient, operation: str, wanted: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        count = ok(await sdk.call(operation, {"servicetype": "eDoc"}))["count"]
        if count == wanted:
            return
        assert time.monotonic() < deadline, f"{operation} stayed {count}, not {wanted}"
        await asyncio.sleep(0.05)


async def journey(url: str, packet_id: str) -> list[tuple[str, str | None]]:
    async with aiohttp.ClientSession() as session:
        answer = await session.get(
            f"{url}/v1/audit/packets/{packet_id}",
            headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        )
        assert answer.status == 200, await answer.text()
        entries = (await answer.json())["entries"]
    return [(e["event"], e.get("recipient")) for e in entries]


@pytest.mark.asyncio
async def test_a_document_and_its_status_go_round_as_on_the_national_axis(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, department), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        to = [DEPARTMENT, *COMMUNES]
        headers = {"from": PROVINCE, "to": to, "servicetype": "eDoc", "messagetype": "edoc"}
        sent = ok(await province.send_edoc(headers, DOCUMENT))
        doc_id = sent["DocId"]
        # Sent again (its answer lost, say): the same send, not a second packet.
        again = ok(await province.send_edoc(headers, DOCUMENT))
        assert again["DocId"] == doc_id
        # The department's system, on /v1's push, gets the same packet, byte for byte.
        deadline = time.monotonic() + 10
        while doc_id not in department.delivered():
            assert time.monotonic() < deadline, "the department never got it"
            await asyncio.sleep(0.05)
        assert department.received[-1].body == DOCUMENT
        # The district's system speaks for both communes: the document is listed once.
        await count_becomes(district, "countReceiveEdoc", 1)
        listed = ok(await district.received())["data"]
        assert [item["docId"] for item in listed] == [doc_id]
        item = listed[0]
        assert item["from"] == PROVINCE
        assert set(item["to"].split(",")) == set(COMMUNES)
        assert (item["serviceType"], item["messageType"], item["status"]) == (
            "eDoc",
            "edoc",
            "initial",
        )
        fetched = ok(await district.get_edoc(doc_id))
        assert base64.b64decode(fetched["data"]) == DOCUMENT
        downloaded = await district.download(doc_id)
        assert (downloaded.status, downloaded.answer) == (200, DOCUMENT)
        ok(await district.update_status(doc_id, "processing"))
        await count_becomes(district, "countReceiveEdoc", 1)  # still waiting
        ok(await district.update_status(doc_id, "done"))
        ok(await district.update_status(doc_id, "done"))  # again, after a lost answer
        again = (await district.update_status(doc_id, "fail")).json()
        assert (again["status"], again["ErrorCode"]) == ("FAIL", "inbox.already_acknowledged")
        assert ok(await district.received())["data"] == []
        # The sender's list says how each delivery went.
        await _sent_settles(province, doc_id)
        # The commune's status packet comes back to the province's received list.
        status = ok(
            await district.send_edoc(
                {"from": COMMUNES[0], "to": PROVINCE, "messagetype": "status"}, STATUS
            )
        )
        await count_becomes(province, "countReceiveStatus", 1)
        await count_becomes(province, "countReceiveEdoc", 0)
        statuses = ok(await province.received("status"))["data"]
        assert [(s["docId"], s["messageType"]) for s in statuses] == [(status["DocId"], "status")]
        assert base64.b64decode(ok(await province.get_edoc(status["DocId"]))["data"]) == STATUS
        ok(await province.update_status(status["DocId"], "done"))
        # Its whole life is in the audit log, as a /v1 packet's is.
        events = await journey(url, doc_id)
        assert events[0] == ("received", ",".join(to))
        for commune in COMMUNES:
            assert ("held", commune) in events
            assert ("delivered", commune) in events
        assert ("delivered", DEPARTMENT) in events


async def _sent_settles(sdk: SdkClient, doc_id: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        items = ok(await sdk.call("getSentEdocList", {"servicetype": "eDoc"}, body=b""))["data"]
        mine = {i["toCode"]: i["receiveStatus"] for i in items if i["senderDocId"] == doc_id}
        if mine == {DEPARTMENT: "done", COMMUNES[0]: "done", COMMUNES[1]: "done"}:
            keys = set(items[0])
            assert keys == {
                "serviceType",
                "messageType",
                "senderDocId",
                "receiverDocId",
                "fromCode",
                "toCode",
                "title",
                "notation",
                "sentTime",
                "receivedTime",
                "sendStatus",
                "sendStatusDesc",
                "receiveStatus",
                "receiveStatusDesc",
            }
            return
        assert time.monotonic() < deadline, f"the sent list stayed {mine}"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_the_agency_list_and_its_changes_as_the_axis_answers_them(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        listed = ok(await province.call("getAgenciesList", body=b""))["data"]
        assert {a["code"] for a in listed} >= {PROVINCE, DEPARTMENT, *COMMUNES}
        assert set(listed[0]) == {"id", "code", "name", "mail", "pid"}
        commune = next(a for a in listed if a["code"] == COMMUNES[0])
        assert commune["pid"] == PROVINCE
        units = ok(await province.call("getSynchronizeUnit", body=b"{}"))["data"]  # as the SDK
        assert set(units[0]) == {
            "id",
            "code",
            "name",
            "mail",
            "pid",
            "version",
            "deleted",
            "modifyDate",
            "centerCode",
            "isAgency",
        }
        assert all(isinstance(u["version"], int) and u["deleted"] is False for u in units)
        top = max(u["version"] for u in units)
        changes = f"getSynchronizeUnit?version={top}"
        assert ok(await province.call(changes, body=b"{}"))["data"] == []
        # The province's system sets its own details; the change is the next version.
        details = b'{"id": 1, "pcode": "", "code": "000.00.00.H56", "name": "UBND t\\u1ec9nh",'
        details += b' "mail": "vanthu@h56.gov.vn", "mobile": "0263", "fax": ""}'
        ok(await province.call("registerAgency", body=details))
        after = ok(await province.call(changes, body=b"{}"))["data"]
        assert [(u["code"], u["mail"]) for u in after] == [(PROVINCE, "vanthu@h56.gov.vn")]
        assert after[0]["version"] > top
        # Not for an agency it does not speak for; and deleting is the registry's.
        other = details.replace(b"000.00.00.H56", DEPARTMENT.encode())
        refused = (await province.call("registerAgency", body=other)).json()
        assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "auth.forbidden")
        gone = (await province.call("deleteAgency", {"AgencyCode": PROVINCE})).json()
        assert (gone["status"], gone["ErrorCode"]) == ("FAIL", "axis.not_supported")


@pytest.mark.asyncio
async def test_the_real_samples_pass_through_the_facade_unchanged(tmp_path: Path) -> None:
    packets = {name: sample(name) for name in EDXML_SAMPLES}  # skips without ../shared
    codes = ["000.00.00.A80", "000.00.00.G22", "000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    config = Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [{"code": c, "name": c, "endpoint": {"mode": "pull"}} for c in codes],
            "clients": [{"name": "integrator", "token": INTEGRATOR, "role": "integrator"}],
        }
    )
    async with daemon(config) as url, aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{url}/v1/axis-systems",
            json={"system_id": "qlvb.mau", "agencies": codes},
            headers={"Authorization": f"Bearer {INTEGRATOR}"},
        )
        secret = (await answer.json())["secret"]  # made for it, shown this once
        sdk = SdkClient(f"{url}/axis", "qlvb.mau", secret, session)
        for name, data in packets.items():
            kind = "status" if name.startswith("status") else "edoc"
            sent = (await sdk.send_edoc({"servicetype": "eDoc", "messagetype": kind}, data)).json()
            if name == "edoc_new.edxml":  # addressed to 28.22.H17, which is no agency code
                assert (sent["status"], sent["ErrorCode"]) == ("FAIL", "packet.unknown_recipient")
                assert "28.22.H17" in sent["ErrorDesc"]
                continue
            assert sent["status"] == "OK", (name, sent)
            deadline = time.monotonic() + 10
            while sent["DocId"] not in {i["docId"] for i in ok(await sdk.received(kind))["data"]}:
                assert time.monotonic() < deadline, f"{name} never waited to be fetched"
                await asyncio.sleep(0.05)
            fetched = ok(await sdk.get_edoc(sent["DocId"]))
            assert base64.b64decode(fetched["data"]) == data, name
            ok(await sdk.update_status(sent["DocId"], "done"))


@pytest.mark.asyncio
async def test_integrators_change_and_remove_systems_live(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        integrator = {"Authorization": f"Bearer {INTEGRATOR}"}
        listing = await session.get(
            f"{url}/v1/axis-systems", headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"}
        )
        systems = (await listing.json())["systems"]
        assert [s["system_id"] for s in systems] == [DISTRICT_SYSTEM, PROVINCE_SYSTEM]
        assert PROVINCE_SECRET not in await listing.text()
        forbidden = await session.get(
            f"{url}/v1/axis-systems", headers={"Authorization": f"Bearer {DEPARTMENT_TOKEN}"}
        )
        assert forbidden.status == 403
        # The district's system gives up the second commune: at once, for its next request.
        changed = await session.put(
            f"{url}/v1/axis-systems/{DISTRICT_SYSTEM}",
            json={"agencies": [COMMUNES[0]]},
            headers=integrator,
        )
        assert changed.status == 200, await changed.text()
        assert (await changed.json())["agencies"] == [COMMUNES[0]]
        renamed = await session.put(
            f"{url}/v1/axis-systems/{DISTRICT_SYSTEM}",
            json={"system_id": "other", "agencies": [COMMUNES[0]]},
            headers=integrator,
        )
        assert renamed.status == 400
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        status = STATUS.replace(COMMUNES[0].encode(), COMMUNES[1].encode())
        spoof = (await district.send_edoc({"messagetype": "status"}, status)).json()
        assert spoof["ErrorCode"] == "packet.forged_sender"
        gone = await session.delete(f"{url}/v1/axis-systems/{DISTRICT_SYSTEM}", headers=integrator)
        assert gone.status == 204
        after = (await district.call("countReceiveEdoc", {})).json()
        assert (after["status"], after["ErrorCode"]) == ("FAIL", "axis.unknown_system")

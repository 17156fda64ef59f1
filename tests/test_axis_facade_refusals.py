"""Bad input at the axis facade: each request gets the axis' FAIL with a precise ErrorDesc, is
audited as refused, and changes nothing else (no packet kept, nothing waiting anywhere)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.exchange.axis_client import VIETNAM
from tests.axis_sdk import JavaHashMap, SdkClient, sdk_timestamp, zero_dropped_sha256
from tests.test_axis_facade import (
    DISTRICT_SECRET,
    DISTRICT_SYSTEM,
    DOCUMENT,
    PROVINCE_SECRET,
    PROVINCE_SYSTEM,
    facade,
)
from tests.test_exchange_embedded import AUDITOR_TOKEN, COMMUNES, DEPARTMENT, PROVINCE

SEND = {"from": PROVINCE, "to": [DEPARTMENT, *COMMUNES], "servicetype": "eDoc"}


def refused(sent: Any, code: str, *words: str) -> None:
    assert sent.status == 200, sent.answer
    document = sent.json()
    assert (document["status"], document["ErrorCode"]) == ("FAIL", code), document
    for word in words:
        assert word in document["ErrorDesc"], document
    assert sent.answer.isascii()


async def rejected(url: str, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    answer = await session.get(
        f"{url}/v1/audit/entries",
        params={"event": "rejected"},
        headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
    )
    assert answer.status == 200, await answer.text()
    entries: list[dict[str, Any]] = (await answer.json())["entries"]
    return entries


async def nothing_moved(url: str, session: aiohttp.ClientSession) -> None:
    province = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
    district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
    sent = (await province.call("getSentEdocList", {"servicetype": "eDoc"}, body=b"")).json()
    assert sent["data"] == []
    assert (await district.received()).json()["data"] == []


@pytest.mark.asyncio
async def test_bad_signatures_and_senders_are_refused_and_audited(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        sdk = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        wrong = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, "not-the-province-secret", session)
        stranger = SdkClient(f"{url}/axis", "qlvb.khac", PROVINCE_SECRET, session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        refused(await wrong.send_edoc(SEND, DOCUMENT), "axis.signature_invalid", "HMAC")
        refused(await stranger.send_edoc(SEND, DOCUMENT), "axis.unknown_system", "qlvb.khac")
        # Unsigned: the SDK's headers without its three signature headers.
        sdk.headers.put("hash-file", zero_dropped_sha256(DOCUMENT))
        unsigned = [(k, v) for k, v in sdk.wire_headers() if "sign-header" not in k]
        unsigned = [(k, v) for k, v in unsigned if k != "XroadVnpt-hash-header"]
        refused(
            await sdk.raw("POST", "sendEdoc", unsigned, DOCUMENT),
            "axis.signature_invalid",
            "unsigned",
        )
        # Signed over other headers than those sent: one value changed after signing.
        sdk.headers.put("from", PROVINCE)
        tampered = [(k, DEPARTMENT if k == "XroadVnpt-from" else v) for k, v in sdk.wire_headers()]
        refused(
            await sdk.raw("POST", "sendEdoc", tampered, DOCUMENT + b"\r\n"),
            "axis.signature_invalid",
            "XroadVnpt-from",
        )
        # A file other than the one hash-file names.
        other = DOCUMENT.replace(b"1234", b"9999")
        sdk.headers.put("hash-file", hashlib.sha256(DOCUMENT).hexdigest())
        sdk.headers.put("Content-Type", "application/octet-stream")
        refused(
            await sdk.raw("POST", "sendEdoc", sdk.wire_headers(), other),
            "axis.file_hash_mismatch",
        )
        # A from the system may not speak for, in the header or in the packet itself.
        spoofed = {**SEND, "from": DEPARTMENT}
        refused(await sdk.send_edoc(spoofed, DOCUMENT), "packet.forged_sender", DEPARTMENT)
        refused(await district.send_edoc(SEND, DOCUMENT), "packet.forged_sender", PROVINCE)
        # Documents that are not there.
        missing = "3f1d2c4b-0000-4000-8000-000000000000"
        refused(await district.get_edoc(missing), "packet.not_found")
        refused(await district.get_edoc("not-a-doc-id"), "packet.not_found")
        refused(await district.update_status(missing, "done"), "packet.not_found")
        download = await district.download(missing)
        assert (download.status, download.answer) == (404, b"")  # never saved as a document
        refused(await district.update_status(missing, "finished"), "axis.bad_request", "status")
        gone = await sdk.call("getEverything", body=b"")
        assert gone.status == 404
        assert gone.json()["ErrorCode"] == "axis.bad_request"
        await nothing_moved(url, session)
        entries = await rejected(url, session)
        outcomes = [e["outcome"] for e in entries]
        assert outcomes.count("axis.signature_invalid") == 3
        assert outcomes.count("axis.unknown_system") == 1
        assert outcomes.count("axis.file_hash_mismatch") == 1
        assert outcomes.count("packet.forged_sender") == 2
        assert outcomes.count("packet.not_found") == 4
        assert all(
            "axis " in (e.get("detail") or "") or e["outcome"] == "packet.forged_sender"
            for e in entries
        )


@pytest.mark.asyncio
async def test_uploads_too_large_or_malformed_are_refused(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        sdk = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        huge = b"<" + b"x" * 50_000_000
        sdk.headers.put("hash-file", hashlib.sha256(huge).hexdigest())
        sdk.headers.put("Content-Type", "multipart/form-data; boundary=b0undary")
        for name, value in SEND.items():
            sdk.headers.put(name, str(value))
        framing = b'--b0undary\r\nContent-Disposition: form-data; name="file_doc"\r\n\r\n'
        body = framing + huge + b"\r\n--b0undary--\r\n"
        too_large = await sdk.raw("POST", "sendEdoc", sdk.wire_headers(), body)
        refused(too_large, "packet.too_large", "40000000")
        # A multipart body that is not one: garbage after the boundary it declares.
        sdk.headers.put("hash-file", hashlib.sha256(DOCUMENT).hexdigest())
        garbage = b"--b0undary\r\nno headers, no end" + DOCUMENT
        refused(await sdk.raw("POST", "sendEdoc", sdk.wire_headers(), garbage), "axis.bad_request")
        # Multipart without the file_doc part.
        other_part = b'--b0undary\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n'
        other_part += b"--b0undary--\r\n"
        refused(
            await sdk.raw("POST", "sendEdoc", sdk.wire_headers(), other_part),
            "axis.bad_request",
            "file_doc",
        )
        # A real multipart upload (other clients than the SDK) goes through.
        good = framing + DOCUMENT + b"\r\n--b0undary--\r\n"
        sent = (await sdk.raw("POST", "sendEdoc", sdk.wire_headers(), good)).json()
        assert sent["status"] == "OK", sent
        outcomes = [e["outcome"] for e in await rejected(url, session)]
        assert outcomes == ["packet.too_large", "axis.bad_request", "axis.bad_request"]


@pytest.mark.asyncio
async def test_a_replayed_request_is_refused_when_a_window_is_set(tmp_path: Path) -> None:
    async with (
        facade(tmp_path, timestamp_window_s=300) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        now = datetime.now(VIETNAM).replace(tzinfo=None)  # a client's clock in Vietnam
        old = now - timedelta(hours=1)
        stale = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session, made_at=old)
        refused(await stale.send_edoc(SEND, DOCUMENT), "axis.timestamp_invalid", "300 s")
        fresh = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session, made_at=now)
        assert (await fresh.call("countReceiveEdoc", {})).json()["status"] == "OK"
        await nothing_moved(url, session)


@pytest.mark.asyncio
async def test_refusals_of_unsigned_requests_are_audited_as_a_trickle(tmp_path: Path) -> None:
    # Anyone can send requests no registered system signed; each refused, but not each kept in
    # the audit log for ever. A registered system's refusals are all audited.
    async with (
        facade(tmp_path, timestamp_window_s=300) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        wrong = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, "not-the-province-secret", session)
        district = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session)
        for _ in range(130):
            refused(await wrong.call("getReceivedEdocList", body=b""), "axis.signature_invalid")
        missing = "3f1d2c4b-0000-4000-8000-000000000000"
        for _ in range(5):
            refused(await district.get_edoc(missing), "packet.not_found")
        # A request of the district's with a stale timestamp, replayed by anyone who caught
        # it: refused as unsigned ones are (the trickle is spent), and not charged to the
        # district's pace, which its own fresh request then finds whole.
        old = datetime.now(VIETNAM).replace(tzinfo=None) - timedelta(hours=1)
        stale = SdkClient(f"{url}/axis", DISTRICT_SYSTEM, DISTRICT_SECRET, session, made_at=old)
        for _ in range(300):  # more than the district's burst (200)
            refused(await stale.call("countReceiveEdoc", {}), "axis.timestamp_invalid")
        assert (await district.call("countReceiveEdoc", {})).json()["status"] == "OK"
        answer = await session.get(
            f"{url}/v1/audit/entries",
            params={"event": "rejected", "limit": "500"},
            headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        )
        outcomes = [e["outcome"] for e in (await answer.json())["entries"]]
        assert 100 <= outcomes.count("axis.signature_invalid") <= 102  # the burst, and a refill
        assert outcomes.count("packet.not_found") == 5
        assert outcomes.count("axis.timestamp_invalid") == 0


@pytest.mark.asyncio
async def test_the_signed_names_are_read_whatever_their_case(tmp_path: Path) -> None:
    # A client signing SystemId and TimeStamp (the signature check reads names in any case):
    # answered as any, not with a server error.
    async with facade(tmp_path, timestamp_window_s=300) as (url, _), aiohttp.ClientSession() as s:
        sdk = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, s)
        sdk.headers = JavaHashMap()
        sdk.headers.put("TimeStamp", sdk_timestamp(datetime.now(VIETNAM).replace(tzinfo=None)))
        sdk.headers.put("SystemId", PROVINCE_SYSTEM)
        answer = await sdk.call("countReceiveEdoc", {"servicetype": "eDoc"})
        assert (answer.status, answer.json()["status"]) == (200, "OK"), answer.answer

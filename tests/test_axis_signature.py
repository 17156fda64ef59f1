"""The national axis' request signature, as agency software builds it and as we verify it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.axis_signature import (
    SIGNATURE,
    SIGNED_JSON,
    SIGNED_NAMES,
    check_file_hash,
    file_hashes,
    format_timestamp,
    parse_timestamp,
    signed_headers,
    verified_headers,
)

SECRET = "demo-secret"
SECRETS = {"000.00.00.H41": SECRET}  # the systems registered, by id
# The header map of a getReceivedEdocList, in the order the vendors' Java SDK iterates it (a
# HashMap's: neither sorted nor as inserted).
RECEIVED_LIST = {
    "systemid": "000.00.00.H41",
    "servicetype": "eDoc",
    "messagetype": "edoc",
    "timestamp": "05032024T143015+0042",
    "Content-Type": "application/json",
}
# Worked out apart from our code: HMAC-SHA256 of the signed JSON below under SECRET.
RECEIVED_LIST_JSON = (
    '{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-servicetype":"eDoc",'
    '"XroadVnpt-messagetype":"edoc","XroadVnpt-timestamp":"05032024T143015+0042",'
    '"XroadVnpt-Content-Type":"application/json"}'
)
RECEIVED_LIST_HMAC = "d75afd6093c0bcc5c74a7b0b9d0d3313b78fdcc99f797f65f13aee5c26eac52d"


def java_client_headers(
    logical: dict[str, str], secret: str = SECRET, names: list[str] | None = None
) -> dict[str, str]:
    """The headers as the Java SDK sends them, built here by hand, not by ``signed_headers``."""
    import hmac

    # Gson's JsonObject.toString(): compact, non-ASCII written as it is, in the map's order.
    document = json.dumps(
        {f"XroadVnpt-{k}": v for k, v in logical.items()}, separators=(",", ":"), ensure_ascii=False
    )
    headers = {f"XroadVnpt-{k}": v for k, v in logical.items()}
    if "Content-Type" in logical:
        headers["Content-Type"] = logical["Content-Type"]
    headers["XroadVnpt-sign-header-key"] = ";".join(names or logical)
    headers["XroadVnpt-sign-header"] = document
    headers["XroadVnpt-hash-header"] = hmac.new(
        secret.encode(), document.encode(), hashlib.sha256
    ).hexdigest()
    headers["XroadVnpt-version"] = "3.0.201608"  # sent, never signed
    headers["User-Agent"] = "JAVASDKAgent/1.0.0 XRoad/VPCP"
    return headers


def test_we_sign_as_the_java_client_does() -> None:
    ours = signed_headers(RECEIVED_LIST, SECRET)
    assert ours[SIGNED_JSON] == RECEIVED_LIST_JSON
    assert ours[SIGNATURE] == RECEIVED_LIST_HMAC
    assert ours[SIGNED_NAMES] == "systemid;servicetype;messagetype;timestamp;Content-Type"
    assert ours["Content-Type"] == ours["XroadVnpt-Content-Type"] == "application/json"
    theirs = java_client_headers(RECEIVED_LIST)
    assert {k: theirs[k] for k in ours} == ours


def test_a_java_clients_request_verifies_to_its_logical_headers() -> None:
    assert verified_headers(java_client_headers(RECEIVED_LIST), SECRETS.get) == RECEIVED_LIST


def test_verification_goes_by_the_json_as_received_whatever_its_order() -> None:
    """The JSON in one order, the key list and the headers in another: the HMAC is over the
    text as received, never over a JSON rebuilt from the headers."""
    reordered = dict(sorted(RECEIVED_LIST.items()))
    headers = java_client_headers(reordered, names=list(RECEIVED_LIST))
    assert headers[SIGNED_JSON] != RECEIVED_LIST_JSON
    assert headers[SIGNED_NAMES] == ";".join(RECEIVED_LIST)
    assert verified_headers(headers, SECRETS.get) == reordered


def test_header_names_are_matched_whatever_their_case() -> None:
    headers = {k.lower(): v for k, v in java_client_headers(RECEIVED_LIST).items()}
    assert verified_headers(headers, SECRETS.get) == RECEIVED_LIST


def test_leftover_and_local_headers_a_client_signs_are_accepted() -> None:
    logical = {**RECEIVED_LIST, "filePath": "/data/edoc", "docid": "5b82", "status": "done"}
    assert verified_headers(java_client_headers(logical), SECRETS.get) == logical


def _changed(**changes: str | None) -> dict[str, str]:
    headers = java_client_headers(RECEIVED_LIST)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    return headers


FLIPPED = ("0" if RECEIVED_LIST_HMAC[0] != "0" else "1") + RECEIVED_LIST_HMAC[1:]


@pytest.mark.parametrize(
    ("headers", "secret", "problem"),
    [
        (_changed(XroadVnpt_hash_header=None), SECRET, "unsigned"),
        (_changed(XroadVnpt_sign_header=None), SECRET, "unsigned"),
        (_changed(XroadVnpt_sign_header_key=None), SECRET, "unsigned"),
        (_changed(XroadVnpt_hash_header=FLIPPED), SECRET, "is not the HMAC"),
        (java_client_headers(RECEIVED_LIST), "another-secret", "is not the HMAC"),
        (_changed(XroadVnpt_messagetype="status"), SECRET, "messagetype differs"),
        (_changed(XroadVnpt_systemid=None), SECRET, "systemid is signed but not sent"),
        (
            _changed(XroadVnpt_sign_header_key="systemid;servicetype;messagetype;timestamp"),
            SECRET,
            "does not list the names",
        ),
    ],
)
def test_a_request_whose_signature_does_not_hold_is_refused_saying_why(
    headers: dict[str, str], secret: str, problem: str
) -> None:
    with pytest.raises(PermanentError, match=problem) as caught:
        verified_headers(headers, {"000.00.00.H41": secret}.get)
    assert caught.value.code is ErrorCode.AXIS_SIGNATURE_INVALID


def test_a_logical_header_sent_twice_must_carry_its_signed_value_each_time() -> None:
    """aiohttp hands a multidict: a second value must not hide behind the signed first one."""
    from multidict import CIMultiDict

    headers = CIMultiDict(java_client_headers(RECEIVED_LIST))
    headers.add("XroadVnpt-messagetype", "status")
    with pytest.raises(PermanentError, match="messagetype differs") as caught:
        verified_headers(headers, SECRETS.get)
    assert caught.value.code is ErrorCode.AXIS_SIGNATURE_INVALID


def test_the_sdks_leftover_docid_beside_docid_is_accepted_when_both_agree() -> None:
    """The SDK's header map is case-sensitive and never cleared: docId and docid both travel,
    both signed."""
    agreeing = {**RECEIVED_LIST, "docId": "5b82", "docid": "5b82"}
    assert verified_headers(java_client_headers(agreeing), SECRETS.get) == agreeing
    differing = {**RECEIVED_LIST, "docId": "5b82", "docid": "6c93"}
    with pytest.raises(PermanentError, match="twice, with different values"):
        verified_headers(java_client_headers(differing), SECRETS.get)


def test_an_unsigned_header_repeated_on_the_way_is_ignored() -> None:
    from multidict import CIMultiDict

    headers = CIMultiDict(java_client_headers(RECEIVED_LIST))
    headers.add("XroadVnpt-version", "3.0.201608")  # a proxy's doing
    assert verified_headers(headers, SECRETS.get) == RECEIVED_LIST


def test_the_secret_is_the_one_of_the_system_the_request_signs_as() -> None:
    """The unsigned header cannot choose the secret: only the signed systemid does."""
    headers = java_client_headers(RECEIVED_LIST)
    headers["XroadVnpt-systemid"] = "000.00.99.H41"  # sent, but not what is signed
    with pytest.raises(PermanentError, match="systemid differs"):
        verified_headers(headers, {"000.00.00.H41": SECRET, "000.00.99.H41": "other"}.get)
    unknown = java_client_headers({**RECEIVED_LIST, "systemid": "000.00.77.H41"})
    with pytest.raises(PermanentError, match=r"no system '000\.00\.77\.H41'") as caught:
        verified_headers(unknown, SECRETS.get)
    assert caught.value.code is ErrorCode.AXIS_UNKNOWN_SYSTEM


@pytest.mark.parametrize("left_out", ["systemid", "timestamp"])
def test_a_request_that_signs_no_system_or_no_time_is_refused(left_out: str) -> None:
    logical = {k: v for k, v in RECEIVED_LIST.items() if k != left_out}
    with pytest.raises(PermanentError, match="must both be signed"):
        verified_headers(java_client_headers(logical), lambda _: SECRET)
    with pytest.raises(PermanentError, match="must both be signed"):  # nothing signed at all
        verified_headers(java_client_headers({}), lambda _: SECRET)


def test_a_signed_timestamp_not_in_the_axis_form_is_refused() -> None:
    headers = java_client_headers({**RECEIVED_LIST, "timestamp": "2024-03-05T14:30:15"})
    with pytest.raises(PermanentError) as caught:
        verified_headers(headers, SECRETS.get)
    assert caught.value.code is ErrorCode.AXIS_TIMESTAMP_INVALID


def test_a_hash_header_of_any_text_is_refused_not_a_crash() -> None:
    headers = _changed(XroadVnpt_hash_header="é" * 64)
    with pytest.raises(PermanentError, match="is not the HMAC"):
        verified_headers(headers, SECRETS.get)


def _signed_document(document: str) -> dict[str, str]:
    """Headers whose signed JSON is ``document``, correctly HMACed: the fault is in its form."""
    import hmac

    return {
        "XroadVnpt-sign-header-key": "systemid",
        "XroadVnpt-sign-header": document,
        "XroadVnpt-hash-header": hmac.new(
            SECRET.encode(), document.encode(), hashlib.sha256
        ).hexdigest(),
        "XroadVnpt-systemid": "000.00.00.H41",
    }


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "is not JSON"),
        ('["XroadVnpt-systemid"]', "is not a JSON object"),
        ('{"systemid":"000.00.00.H41"}', "not a logical header"),
        ('{"XroadVnpt-systemid":1}', "a int, not text"),
        ('{"XroadVnpt-systemid":"a","XroadVnpt-systemid":"b"}', "twice"),
        ('{"XroadVnpt-hash-header":"x"}', "not a logical header"),
        ("[" * 100_000, "longer than"),
    ],
)
def test_a_signed_json_of_the_wrong_form_is_refused(document: str, problem: str) -> None:
    with pytest.raises(PermanentError, match=problem) as caught:
        verified_headers(_signed_document(document), SECRETS.get)
    assert caught.value.code is ErrorCode.AXIS_SIGNATURE_INVALID


def test_the_file_hash_is_accepted_in_both_forms_clients_write() -> None:
    data = b"3"  # SHA-256 4e07408562bedb8b60ce05c1…: its second byte is 0x07
    full, dropped = file_hashes(data)
    assert full == hashlib.sha256(data).hexdigest()
    assert dropped == "4e7408562bedb8b60ce5c1decfe3ad16b72230967de01f64b7e4729b49fce"
    for claimed in (full, full.upper(), dropped, f" {dropped}\n"):
        check_file_hash(data, claimed)


@pytest.mark.parametrize("claimed", ["", "00", hashlib.sha256(b"4").hexdigest()])
def test_a_file_hash_of_another_file_is_refused(claimed: str) -> None:
    with pytest.raises(PermanentError) as caught:
        check_file_hash(b"3", claimed)
    assert caught.value.code is ErrorCode.AXIS_FILE_HASH_MISMATCH


def test_the_timestamp_is_the_axis_form_with_milliseconds_after_the_plus() -> None:
    at = parse_timestamp("05032024T143015+0042")
    assert at == datetime(2024, 3, 5, 14, 30, 15, 42_000)  # as sent, no zone
    assert format_timestamp(at) == "05032024T143015+0042"


@pytest.mark.parametrize(
    "text",
    ["", "2024-03-05T14:30:15", "05032024T143015", "05032024T143015+42", "32132024T143015+0000"],
)
def test_a_timestamp_not_in_the_axis_form_is_refused(text: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_timestamp(text)
    assert caught.value.code is ErrorCode.AXIS_TIMESTAMP_INVALID


@pytest.mark.asyncio
async def test_a_signed_request_verifies_after_a_real_http_hop() -> None:
    """Header values with Vietnamese text survive aiohttp's encoding both ways, byte for byte."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(verified_headers(request.headers, SECRETS.get))
        return web.json_response({"status": "OK", "ErrorCode": "0", "ErrorDesc": ""})

    app = web.Application()
    app.router.add_post("/getReceivedEdocList", handler)
    logical = {**RECEIVED_LIST, "from": "000.00.00.H41", "title": "Công văn số 12"}
    async with (
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/getReceivedEdocList"),
            data=b"",
            headers=signed_headers(logical, SECRET),
        ) as response,
    ):
        assert response.status == 200
    assert seen == [logical]

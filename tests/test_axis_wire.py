"""The national axis' requests and answers: the quirks of real clients, settled once."""

from __future__ import annotations

import hashlib
import json

import pytest

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.axis_signature import file_hashes
from lgsp_adapter.packets.axis_wire import (
    MessageType,
    TransportStatus,
    answer,
    failure,
    header,
    message_type,
    recipients,
    required,
    transport_status,
    uploaded_file,
)

EDXML = b'<?xml version="1.0" encoding="UTF-8"?><edXML:edXMLEnvelope/>'


def test_names_clients_spell_two_ways_are_one_header() -> None:
    assert header({"docid": "5b82"}, "docId") == "5b82"
    assert header({"docId": "5b82"}, "docid") == "5b82"
    assert header({"from": "x"}, "docId") is None


def test_a_missing_required_header_is_named() -> None:
    with pytest.raises(PermanentError, match="the docId header is required") as caught:
        required({"docid": "  "}, "docId")
    assert caught.value.code is ErrorCode.AXIS_BAD_REQUEST


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("done", TransportStatus.DONE),
        ("DONE", TransportStatus.DONE),
        (" fail ", TransportStatus.FAIL),
        ("processing", TransportStatus.PROCESSING),
    ],
)
def test_update_status_reads_every_case_clients_send(text: str, status: TransportStatus) -> None:
    assert transport_status(text) is status


@pytest.mark.parametrize("text", ["", "INITIAL", "ok", "done;fail"])
def test_another_status_is_refused_naming_the_allowed_ones(text: str) -> None:
    with pytest.raises(PermanentError, match="done, fail, processing") as caught:
        transport_status(text)
    assert caught.value.code is ErrorCode.AXIS_BAD_REQUEST


def test_message_type_is_edoc_unless_said_otherwise() -> None:
    assert message_type(None) is MessageType.EDOC
    assert message_type("Status") is MessageType.STATUS
    with pytest.raises(PermanentError, match="not edoc or status"):
        message_type("fax")


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("000.00.00.H41", ["000.00.00.H41"]),
        ('"000.00.00.H41"', ["000.00.00.H41"]),  # the SDK keeps a string's JSON quotes
        ('["000.00.00.H41","000.00.01.H41"]', ["000.00.00.H41", "000.00.01.H41"]),
        ("000.00.00.H41, 000.00.01.H41", ["000.00.00.H41", "000.00.01.H41"]),
        ("", []),
        (None, []),
        ('["unclosed', ['["unclosed']),  # not JSON: taken as written, refused later as a code
    ],
)
def test_the_to_header_is_read_in_every_form_clients_send(
    text: str | None, codes: list[str]
) -> None:
    assert recipients(text) == codes


def test_a_raw_upload_is_the_file_its_hash_names_without_the_sdks_framing() -> None:
    _, dropped = file_hashes(EDXML)
    assert uploaded_file(EDXML + b"\r\n", dropped) == EDXML
    assert uploaded_file(EDXML + b"\r\n", hashlib.sha256(EDXML).hexdigest().upper()) == EDXML


def test_a_file_that_ends_in_crlf_itself_is_kept_whole_when_its_hash_says_so() -> None:
    whole = EDXML + b"\r\n"
    assert uploaded_file(whole, hashlib.sha256(whole).hexdigest()) == whole


def test_an_upload_whose_hash_matches_neither_reading_is_refused() -> None:
    with pytest.raises(PermanentError) as caught:
        uploaded_file(EDXML + b"\r\n", hashlib.sha256(b"another file").hexdigest())
    assert caught.value.code is ErrorCode.AXIS_FILE_HASH_MISMATCH


def test_an_answer_has_the_three_keys_first_and_no_null_and_only_ascii() -> None:
    body = answer(DocId="5b82", data=[{"title": "Công văn", "notation": None}])
    assert body.isascii()
    document = json.loads(body)
    assert list(document)[:3] == ["status", "ErrorCode", "ErrorDesc"]
    assert document == {
        "status": "OK",
        "ErrorCode": "0",
        "ErrorDesc": "",
        "DocId": "5b82",
        "data": [{"title": "Công văn", "notation": ""}],
    }


def test_a_failure_carries_our_stable_code_and_the_fields_a_client_needs() -> None:
    error = PermanentError(ErrorCode.AXIS_FILE_HASH_MISMATCH, "hash-file là sai")
    document = json.loads(failure(error, DocId=None))
    assert document == {
        "status": "FAIL",
        "ErrorCode": "axis.file_hash_mismatch",
        "ErrorDesc": "hash-file là sai",
        "DocId": "",
    }

"""The national axis' requests and answers as agency software writes and reads them.

Both sides of the protocol (our facade for agency software, our connector to the axis) read the
same logical headers and write the same JSON answers, so their quirks are settled once here:
the names clients spell two ways, the ``to`` that may arrive JSON-quoted, the raw upload framed
with a trailing CRLF, and answers a strict client can read (every key present, never ``null``,
ASCII only). See ``docs/design/national-axis-wire.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError
from lgsp_adapter.packets.axis_signature import check_file_hash, file_hash_matches

SUCCESS_CODE = "0"  # the ErrorCode of a success (its status is "OK")


class TransportStatus(StrEnum):
    """What a receiver tells the axis it did with a document (``updateStatus``): the
    transport's acknowledgement, not the document's business status."""

    DONE = "done"
    FAIL = "fail"
    PROCESSING = "processing"


class MessageType(StrEnum):
    """The two kinds of packet the axis carries."""

    EDOC = "edoc"
    STATUS = "status"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A logical header by name, whatever its case (clients write ``docId`` and ``docid``)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def required(headers: Mapping[str, str], name: str) -> str:
    """A logical header the operation cannot do without; ``axis.bad_request`` when absent."""
    value = header(headers, name)
    if value is None or not value.strip():
        raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"the {name} header is required")
    return value.strip()


def transport_status(text: str) -> TransportStatus:
    """An ``updateStatus`` status, in any case (provincial gateways write ``DONE``)."""
    try:
        return TransportStatus(text.strip().lower())
    except ValueError as exc:
        allowed = ", ".join(status.value for status in TransportStatus)
        raise PermanentError(
            ErrorCode.AXIS_BAD_REQUEST, f"status {text!r} is not one of {allowed}"
        ) from exc


def message_type(text: str | None) -> MessageType:
    """A ``messagetype``, ``edoc`` when the client leaves it out."""
    if text is None or not text.strip():
        return MessageType.EDOC
    try:
        return MessageType(text.strip().lower())
    except ValueError as exc:
        raise PermanentError(
            ErrorCode.AXIS_BAD_REQUEST, f"messagetype {text!r} is not edoc or status"
        ) from exc


def recipients(text: str | None) -> list[str]:
    """The ``to`` header's agency codes: plain (comma-separated), or as the vendors' SDK sends it,
    a JSON string with its quotes or a JSON array. Only a hint: a packet's own recipients
    decide its routing."""
    if text is None or not text.strip():
        return []
    text = text.strip()
    if text[0] in '["':
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, str):
            text = parsed
        elif isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return [item.strip() for item in parsed if item.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def uploaded_file(body: bytes, claimed_hash: str) -> bytes:
    """The file of a raw ``sendEdoc`` upload. The vendors' SDK frames it with a CRLF that is not
    part of it; ``hash-file`` says which bytes are the file, and is required: the body is not
    signed, so without it any file would pass under headers signed for another.
    ``axis.file_hash_mismatch`` when neither reading has that hash."""
    if body.endswith(b"\r\n") and file_hash_matches(body[:-2], claimed_hash):
        return body[:-2]
    check_file_hash(body, claimed_hash)
    return body


def answer(**fields: Any) -> bytes:
    """A success as clients read it: ``status``, ``ErrorCode`` and ``ErrorDesc`` first, then
    ``fields``; ``None`` written as an empty text (a strict client cannot read ``null``) and
    every character outside ASCII escaped (one client reads the answer as US-ASCII)."""
    return _encode({"status": "OK", "ErrorCode": SUCCESS_CODE, "ErrorDesc": "", **fields})


def failure(error: LgspError, **fields: Any) -> bytes:
    """A refusal as clients read it: ``FAIL``, our stable code as ``ErrorCode``, the message as
    ``ErrorDesc``; ``fields`` too (a send's answer must carry ``DocId`` even then)."""
    return _encode(
        {"status": "FAIL", "ErrorCode": str(error.code), "ErrorDesc": error.message, **fields}
    )


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(_without_nulls(document), ensure_ascii=True).encode("ascii")


def _without_nulls(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value

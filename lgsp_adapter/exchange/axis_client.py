"""Calling the national axis as agency software does: signed headers, the vendors' framing.

The axis (and every provincial platform that copies it) is known to accept what the vendors'
SDK sends, so this client sends the same: each call a POST with its parameters in signed
``XroadVnpt-`` headers, ``sendEdoc`` as the raw file with a trailing CRLF and ``hash-file`` in the
SDK's zero-dropping hex, the timestamp in Vietnam's local time. Answers are read as the axis
writes them; a ``FAIL`` is a refusal for good (``delivery.refused``), a timeout, a refused
connection, a 5xx, 408, 429 or a 2xx that is not the axis' JSON is a passing fault
(``delivery.unavailable``) for the retry schedule; any other answer that is not the axis' JSON
(a wrong URL, a gateway's refusal) is a refusal too: no retry mends it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from lgsp_adapter.errors import ErrorCode, PermanentError, TransientError
from lgsp_adapter.packets.axis_signature import file_hashes, format_timestamp, signed_headers
from lgsp_adapter.packets.axis_wire import MessageType, TransportStatus

VIETNAM = timezone(timedelta(hours=7), "ICT")  # no daylight saving time
_ANSWER_BYTES = 64_000_000  # getEdoc answers a whole packet, in base64


def vietnam_now() -> datetime:
    """The clock the axis' clients write their timestamps in."""
    return datetime.now(VIETNAM)


class AxisClient:
    """One system's calls to one axis URL."""

    def __init__(
        self,
        url: str,
        *,
        system_id: str,
        secret: str,
        session: aiohttp.ClientSession,
        timeout_s: float = 30.0,
        clock: Callable[[], datetime] = vietnam_now,
    ) -> None:
        self._url = url.rstrip("/")
        self._system_id = system_id
        self._secret = secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock

    async def send_edoc(
        self, edxml: bytes, *, sender: str, recipients: list[str], message_type: MessageType
    ) -> str:
        """Send a packet; the axis' ``DocId`` for it."""
        params = {
            "from": sender,
            # As Gson writes the SDK's JsonElement: one code quoted, several as an array.
            "to": json.dumps(
                recipients[0] if len(recipients) == 1 else recipients, separators=(",", ":")
            ),
            "servicetype": "eDoc",
            "messagetype": str(message_type),
            "hash-file": file_hashes(edxml).zero_dropped,
        }
        answer = await self._call(
            "sendEdoc", params, body=edxml + b"\r\n", content_type="application/octet-stream"
        )
        doc_id = answer.get("DocId")
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id.strip():
            # It took the packet and did not say under which id: sending again would send it
            # twice, so a person must look.
            raise PermanentError(
                ErrorCode.DELIVERY_REFUSED,
                "the axis' sendEdoc answered OK without a DocId: the packet may be there; "
                "check with the axis before replaying",
            )
        return doc_id.strip()

    async def received(self, message_type: MessageType) -> list[dict[str, Any]]:
        """What waits for this system (``getReceivedEdocList``), as the axis lists it."""
        params = {"servicetype": "eDoc", "messagetype": str(message_type)}
        data = (await self._call("getReceivedEdocList", params)).get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise _unavailable("getReceivedEdocList", "its data is not a list of documents")
        return data

    async def synchronize_units(self) -> list[dict[str, Any]]:
        """The axis' agency list with versions and deletions (``getSynchronizeUnit``)."""
        data = (await self._call("getSynchronizeUnit", {}, body=b"{}")).get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise _unavailable("getSynchronizeUnit", "its data is not a list of agencies")
        return data

    async def get_edoc(self, doc_id: str) -> bytes:
        """A waiting packet, byte for byte (``getEdoc``)."""
        data = (await self._call("getEdoc", {"docId": doc_id}, body=b"{}")).get("data")
        if not isinstance(data, str) or not data.strip():
            raise _unavailable("getEdoc", "the answer has no data")
        try:  # line breaks allowed, as the SDK's decoder allows them
            return base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _unavailable("getEdoc", "its data is not base64") from exc

    async def update_status(self, doc_id: str, status: TransportStatus) -> None:
        """Tell the axis what became of a packet fetched (``updateStatus``)."""
        await self._call("updateStatus", {"docId": doc_id, "status": str(status)}, body=b"{}")

    async def _call(
        self,
        operation: str,
        params: dict[str, str],
        *,
        body: bytes = b"",
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = signed_headers(
            {
                "systemid": self._system_id,
                "timestamp": format_timestamp(self._clock()),
                "Content-Type": content_type,
                **params,
            },
            self._secret,
        )
        try:
            async with self._session.post(
                f"{self._url}/{operation}",
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                text = await _whole_answer(response, operation)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _unavailable(operation, f"no answer: {type(exc).__name__}") from exc
        if status >= 500 or status in (408, 429):
            raise _unavailable(operation, f"HTTP {status}")
        answer = _json_object(text)
        if answer is None and status >= 400:
            # A wrong URL, a gateway refusing our credentials, a packet too large: no retry
            # mends those, the configuration or the packet must change.
            raise PermanentError(
                ErrorCode.DELIVERY_REFUSED, f"the axis' {operation}: HTTP {status}, not the axis"
            )
        if answer is None:
            raise _unavailable(operation, f"HTTP {status} with an answer that is not JSON")
        if str(answer.get("status", "")).upper() != "OK":
            raise PermanentError(
                ErrorCode.DELIVERY_REFUSED,
                f"the axis refused {operation}: {answer.get('ErrorCode')} "
                f"{answer.get('ErrorDesc') or ''}".rstrip(),
                details={"operation": operation, "axis_error": answer.get("ErrorCode")},
            )
        return answer


async def _whole_answer(response: aiohttp.ClientResponse, operation: str) -> bytes:
    """The whole answer, up to ``_ANSWER_BYTES``: one read returns only what has arrived."""
    if (response.content_length or 0) > _ANSWER_BYTES:
        raise _too_large(operation)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > _ANSWER_BYTES:
            raise _too_large(operation)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(operation: str) -> PermanentError:
    return PermanentError(
        ErrorCode.DELIVERY_REFUSED,
        f"the axis' {operation} answered more than {_ANSWER_BYTES // 1_000_000} MB",
    )


def _json_object(text: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _unavailable(operation: str, why: str) -> TransientError:
    return TransientError(ErrorCode.DELIVERY_UNAVAILABLE, f"the axis' {operation}: {why}")

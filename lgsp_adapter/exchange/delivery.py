"""Pushing a packet to an agency system over HTTP.

The body is the packet byte for byte as submitted (a signed document must stay verifiable);
headers name the packet, sender, recipient, kind and document. A 2xx is a delivery. A timeout, a
refused connection, 408, 429 or a 5xx is a passing fault: retried a few times at once (a blip),
then reported as ``delivery.unavailable`` for the durable retry schedule. Any other answer is a
refusal for good (``delivery.refused``). Redirects are not followed: an endpoint that moved is a
registry matter, not something to chase with a government document.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from lgsp_adapter.errors import ErrorCode, PermanentError, TransientError
from lgsp_adapter.exchange.axis_client import AxisClient
from lgsp_adapter.packets.axis_wire import MessageType
from lgsp_adapter.registry.agencies import DeliveryMode, Endpoint
from lgsp_adapter.registry.endpoint_auth import AxisAuth
from lgsp_adapter.registry.endpoint_transport import present, redacted
from lgsp_adapter.store import StoredPacket

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 429})
_ANSWER_BYTES = 64 * 1024  # what we read of an agency system's answer; the status is what counts


@dataclass(frozen=True, slots=True)
class Outbound:
    """What is posted: the packet as submitted, or its translation for the agency's system."""

    payload: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """The agency system took the packet."""

    status: int
    elapsed_s: float
    attempts: int
    reference: str | None = None  # the receiving side's id for it (an axis' DocId)


def headers_for(packet: StoredPacket, recipient: str) -> dict[str, str]:
    """What the agency system learns besides the body. Header values are ASCII, so the
    document id (Vietnamese notation) is percent-encoded UTF-8."""
    headers = {
        "Content-Type": packet.content_type,
        "X-LGSP-Packet-Id": str(packet.id),
        "X-LGSP-Sender": packet.sender,
        "X-LGSP-Recipient": recipient,
        "X-LGSP-Kind": packet.kind,
        "X-LGSP-Payload-SHA256": packet.sha256,
    }
    if packet.document_id:
        headers["X-LGSP-Document-Id"] = quote(packet.document_id, safe=",/:-._")
    return headers


class Deliverer:
    """Pushes packets to agency endpoints through one shared HTTP session."""

    def __init__(
        self, *, session: aiohttp.ClientSession, quick_retries: int, quick_retry_delay_s: float
    ) -> None:
        self._session = session
        self._quick_retries = quick_retries
        self._quick_retry_delay_s = quick_retry_delay_s

    async def push(
        self,
        packet: StoredPacket,
        recipient: str,
        endpoint: Endpoint,
        outbound: Outbound | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Delivered:
        """Deliver, retrying blips; raises ``TransientError`` or ``PermanentError`` otherwise.
        ``outbound``: the body to send instead of the packet's (its translation); ``headers``:
        more to tell a pushed-to system (what its signatures were found to be)."""
        started = time.monotonic()
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self._quick_retries),
            wait=wait_fixed(self._quick_retry_delay_s),
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        body = outbound or Outbound(packet.payload, packet.content_type)
        reference = None
        async for attempt in retrying:
            with attempt:
                attempts += 1
                if endpoint.mode is DeliveryMode.AXIS:
                    status, reference = 200, await self._send_to_axis(packet, recipient, endpoint)
                else:
                    status = await self._post(packet, recipient, endpoint, body, headers or {})
        elapsed_s = time.monotonic() - started
        return Delivered(status, elapsed_s, attempts, reference)

    async def _send_to_axis(self, packet: StoredPacket, recipient: str, endpoint: Endpoint) -> str:
        """``sendEdoc`` to the axis, signed as an agency system signs; its ``DocId``. The axis
        is told one recipient per delivery (each delivery is sent, retried and receipted on its
        own), while the edXML inside still lists them all, unchanged."""
        auth = endpoint.auth
        assert isinstance(auth, AxisAuth)  # noqa: S101  # the endpoint's validation says so
        assert endpoint.url is not None  # noqa: S101  # and so
        client = AxisClient(
            str(endpoint.url),
            system_id=auth.system_id,
            secret=auth.secret.get_secret_value(),
            session=self._session,
            timeout_s=endpoint.timeout_s,
        )
        return await client.send_edoc(
            packet.payload,
            sender=packet.sender,
            recipients=[recipient],
            message_type=MessageType(packet.kind),
        )

    async def _post(
        self,
        packet: StoredPacket,
        recipient: str,
        endpoint: Endpoint,
        body: Outbound,
        extra: Mapping[str, str],
    ) -> int:
        assert endpoint.url is not None  # noqa: S101  # settings refuse a push endpoint without one
        try:
            presented = present(endpoint, packet_id=str(packet.id), body=body.payload)
        except (OSError, ssl.SSLError, ValueError) as exc:  # its TLS files went missing
            raise TransientError(
                ErrorCode.DELIVERY_UNAVAILABLE, f"the endpoint's TLS files cannot be loaded: {exc}"
            ) from exc
        headers = headers_for(packet, recipient) | dict(extra) | presented.headers
        headers["Content-Type"] = body.content_type
        url = str(endpoint.url)
        try:
            async with self._session.post(
                url,
                data=body.payload,
                headers=headers,
                ssl=presented.ssl,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
            ) as response:
                await response.content.read(_ANSWER_BYTES)  # bounded: answers are not trusted
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # The sender reads this (its receipt, its GET): the recipient's system is named,
            # its address and whatever its query holds are for the operator's log alone.
            log.info("%s %s: %s did not answer: %r", packet.id, recipient, redacted(url), exc)
            raise TransientError(
                ErrorCode.DELIVERY_UNAVAILABLE,
                f"{recipient}'s system did not answer: {_failure(exc)}",
            ) from exc
        except ValueError as exc:  # a request aiohttp will not make (a header it refuses)
            log.warning("%s %s: no request to %s: %s", packet.id, recipient, redacted(url), exc)
            raise PermanentError(
                ErrorCode.DELIVERY_REFUSED,
                f"no request to {recipient}'s system can be made (its endpoint's settings)",
            ) from exc
        if 200 <= status < 300:
            return status
        error = TransientError if status in _RETRYABLE_STATUS or status >= 500 else PermanentError
        code = (
            ErrorCode.DELIVERY_UNAVAILABLE
            if error is TransientError
            else ErrorCode.DELIVERY_REFUSED
        )
        raise error(
            code, f"{recipient}'s system answered HTTP {status}", details={"status": status}
        )


def _failure(exc: BaseException) -> str:
    """What went wrong, without the address aiohttp puts in its messages."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
        return f"TLS failed ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    return type(exc).__name__

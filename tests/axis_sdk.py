"""Requests as the vendors' Java SDK for the national axis builds them, for conformance tests.

Modelled on reading the SDK (see docs/design/national-axis-wire.md), written apart from our own
client (``exchange/axis_client``) so that the facade is tested against what real software
sends, not against our reading of it:

- the client's clock in Vietnam (local time, no zone, as the SDK writes it);
- one header map for the client's life, a ``java.util.HashMap``: iterated in bucket order, so
  neither sorted nor as inserted; it starts with ``timestamp`` (fixed when the client is made)
  and ``systemid``, and every call's headers stay in it for the calls after (leftovers signed
  along: a ``getEdoc`` after a ``sendEdoc`` signs its ``hash-file`` and ``to``);
- each entry sent as ``XroadVnpt-<name>`` (``Content-Type`` also plain), then the key list,
  the signed JSON (Gson's compact ``toString``), its HMAC, ``User-Agent``, ``XroadVnpt-version``;
- ``sendEdoc``: ``to`` as its JSON text, ``hash-file`` with each byte's leading zero dropped,
  the raw file and a CRLF as ``application/octet-stream``; ``downloadEdoc`` a GET; the list
  calls an empty body; the rest ``{}``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from lgsp_adapter.exchange.axis_client import VIETNAM

USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
SDK_VERSION = "3.0.201608"


def java_string_hash(text: str) -> int:
    """``String.hashCode()``: over UTF-16 code units, as a signed 32-bit int's bits."""
    value = 0
    units = text.encode("utf-16-be")
    for index in range(0, len(units), 2):
        value = (31 * value + int.from_bytes(units[index : index + 2], "big")) & 0xFFFFFFFF
    return value


class JavaHashMap:
    """A ``HashMap<String, String>``'s iteration order: by bucket (the spread hash masked by
    the table size, which doubles past three quarters full), then by insertion in a bucket."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._capacity = 16

    def put(self, key: str, value: str) -> None:
        self._values[key] = value  # a key put again keeps its place, as in a bucket's list
        while len(self._values) > self._capacity * 3 // 4:
            self._capacity *= 2

    def items(self) -> list[tuple[str, str]]:
        def bucket(key: str) -> int:
            h = java_string_hash(key)
            return (h ^ (h >> 16)) & (self._capacity - 1)

        order = {key: position for position, key in enumerate(self._values)}
        keys = sorted(self._values, key=lambda key: (bucket(key), order[key]))
        return [(key, self._values[key]) for key in keys]


def zero_dropped_sha256(data: bytes) -> str:
    """``Integer.toHexString`` of each digest byte: a byte below 0x10 is one digit."""
    return "".join(format(byte, "x") for byte in hashlib.sha256(data).digest())


def sdk_timestamp(at: datetime) -> str:
    """``SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")``: SSSS is the milliseconds, padded."""
    return f"{at:%d%m%YT%H%M%S}+{at.microsecond // 1000:04d}"


@dataclass
class Sent:
    """One request as it went out, and its answer."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int
    answer: bytes

    def json(self) -> Any:
        return json.loads(self.answer)


@dataclass
class SdkClient:
    """One SDK client object: its URL, system and secret, and its header map."""

    url: str
    system_id: str
    secret: str
    session: aiohttp.ClientSession
    made_at: datetime = field(default_factory=lambda: datetime.now(VIETNAM).replace(tzinfo=None))
    headers: JavaHashMap = field(default_factory=JavaHashMap)
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.headers.put("timestamp", sdk_timestamp(self.made_at))
        self.headers.put("systemid", self.system_id)

    def wire_headers(self) -> list[tuple[str, str]]:
        """The headers the SDK adds to the request, in its order."""
        out: list[tuple[str, str]] = []
        names: list[str] = []
        signed: dict[str, str] = {}
        for name, value in self.headers.items():
            if name == "Content-Type":
                out.append((name, value))
            signed[f"XroadVnpt-{name}"] = value
            out.append((f"XroadVnpt-{name}", value))
            names.append(name)
        document = json.dumps(signed, separators=(",", ":"), ensure_ascii=False)
        digest = hmac.new(self.secret.encode(), document.encode(), hashlib.sha256).hexdigest()
        out += [
            ("XroadVnpt-sign-header-key", ";".join(names)),
            ("XroadVnpt-sign-header", document),
            ("XroadVnpt-hash-header", digest),
            ("User-Agent", USER_AGENT),
            ("XroadVnpt-version", SDK_VERSION),
        ]
        return out

    async def call(
        self,
        operation: str,
        json_headers: dict[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        body: bytes = b"{}",
        method: str = "POST",
    ) -> Sent:
        """One operation: ``json_headers`` put in the map as the SDK puts them (their text;
        ``to`` on a send as its JSON), then the request."""
        self.headers.put("Content-Type", content_type)
        for name, value in (json_headers or {}).items():
            text = json.dumps(value) if operation == "sendEdoc" and name == "to" else str(value)
            self.headers.put(name, text)
        return await self.raw(method, operation, self.wire_headers(), body)

    async def raw(
        self, method: str, operation: str, headers: list[tuple[str, str]], body: bytes
    ) -> Sent:
        """A request with exactly these headers (tests that tamper with one)."""
        async with self.session.request(
            method,
            f"{self.url}/{operation}",
            headers=CIMultiDict(headers),
            data=(io.BytesIO(body) if len(body) > 1_000_000 else body)
            if method == "POST"
            else None,
            skip_auto_headers={"Content-Type"},
        ) as response:
            sent = Sent(method, operation, headers, body, response.status, await response.read())
        self.sent.append(sent)
        return sent

    async def send_edoc(self, json_headers: dict[str, Any], document: bytes) -> Sent:
        """``sendEdoc`` as the SDK sends it: the file raw, then CRLF."""
        self.headers.put("hash-file", zero_dropped_sha256(document))
        return await self.call(
            "sendEdoc",
            json_headers,
            content_type="application/octet-stream",
            body=document + b"\r\n",
        )

    async def received(self, messagetype: str = "edoc") -> Sent:
        return await self.call(
            "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": messagetype}, body=b""
        )

    async def get_edoc(self, doc_id: str) -> Sent:
        return await self.call("getEdoc", {"docId": doc_id, "filePath": "/var/qlvb/inbox"})

    async def update_status(self, doc_id: str, status: str) -> Sent:
        # As the SDK's example builds it (its docId unquoted, which Gson reads leniently).
        return await self.call("updateStatus", {"status": status, "docId": doc_id})

    async def download(self, doc_id: str) -> Sent:
        self.headers.put("Content-Type", "application/json")
        self.headers.put("docId", doc_id)
        return await self.raw("GET", "downloadEdoc", self.wire_headers(), b"")

"""``test`` of an endpoint: does it really answer, how fast, and over what TLS.

The probe is an ``OPTIONS`` request to the push URL, presenting the same credentials and TLS
context a delivery would (``endpoint_transport``): safe by HTTP's rules, so testing never makes
an agency system take a packet. For https, a second handshake with the same context reads the
session's details, so an integrator sees a certificate about to expire before it does. Any
answer proves the system is there; what the answer says is graded (a 401 means our credentials
are wrong, a 404 that the path is).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.registry.agencies import DeliveryMode, ServedAgency
from lgsp_adapter.registry.endpoint_auth import MutualTlsAuth
from lgsp_adapter.registry.endpoint_transport import present

_VERDICTS = {401: "credentials_refused", 403: "credentials_refused", 404: "not_found"}


async def probe(agency: ServedAgency, session: aiohttp.ClientSession) -> dict[str, Any]:
    """The report of one test (JSON-ready): ``ok``, ``verdict``, ``status``, ``latency_ms``,
    ``tls`` and, when it failed, ``error`` with a stable code."""
    endpoint = agency.endpoint
    if endpoint.mode is DeliveryMode.PULL or endpoint.url is None:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            f"{agency.code} is a pull endpoint: its system fetches from /v1/inbox, there is "
            "no URL to test",
        )
    url = str(endpoint.url)
    report: dict[str, Any] = {"code": str(agency.code), "url": url, "method": "OPTIONS"}
    started = time.monotonic()
    try:
        presented = present(endpoint, packet_id="probe", body=b"")
        async with session.options(
            url,
            headers={**presented.headers, "X-LGSP-Kind": "probe"},
            ssl=presented.ssl,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
        ) as response:
            await response.content.read(64 * 1024)
            status = response.status
    except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
        tls_failed = isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError)
        return report | _failed(
            "tls_failed" if tls_failed else "unreachable",
            ErrorCode.ENDPOINT_UNREACHABLE,
            f"{url} did not answer: {_why(exc)}",
            started,
        )
    except ValueError as exc:  # after SSLError, itself a ValueError: what no request can carry
        return report | _failed(
            "misconfigured",
            ErrorCode.REGISTRY_INVALID,
            f"no request to {url} can be made: {exc}",
            started,
        )
    tls = None
    if endpoint.url.scheme == "https":
        tls = await _tls(endpoint.url.host or "", endpoint.url.port or 443, presented.ssl)
        tls["client_certificate"] = isinstance(endpoint.auth, MutualTlsAuth)
    verdict = _VERDICTS.get(status) or (
        "server_error" if status >= 500 else "redirects" if 300 <= status < 400 else "answers"
    )
    report |= {
        "ok": verdict == "answers",
        "verdict": verdict,
        "status": status,
        "latency_ms": _ms(started),
        "tls": tls,
    }
    return report


def _failed(verdict: str, code: ErrorCode, message: str, started: float) -> dict[str, Any]:
    """The report's fields for a test that got no answer."""
    return {
        "ok": False,
        "verdict": verdict,
        "status": None,
        "latency_ms": _ms(started),
        "tls": None,
        "error": {"code": str(code), "message": message},
    }


async def _tls(host: str, port: int, context: ssl.SSLContext | bool) -> dict[str, Any]:
    """The TLS session a delivery gets, from a handshake of its own: aiohttp lets go of a
    connection as soon as a bodiless answer is read, so the HTTP request cannot tell."""
    if not isinstance(context, ssl.SSLContext):
        context = ssl.create_default_context()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout=10
        )
    except (TimeoutError, OSError) as exc:  # it answered HTTP a moment ago
        return {"error": _why(exc)}
    try:
        secured = writer.get_extra_info("ssl_object")
        cipher = secured.cipher()
        peer: dict[str, Any] = dict(secured.getpeercert() or {})
        details: dict[str, Any] = {
            "version": secured.version(),
            "cipher": cipher[0] if cipher else None,
            "subject": _name(peer.get("subject", ())),
            "issuer": _name(peer.get("issuer", ())),
            "subject_alt_names": [value for _, value in peer.get("subjectAltName", ())],
        }
        not_after = peer.get("notAfter")
        if isinstance(not_after, str):
            expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
            details["not_after"] = format_time(expires)
            details["days_left"] = (expires - datetime.now(UTC)).days
        return details
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _name(parts: Any) -> str:
    return ", ".join(f"{key}={value}" for rdn in parts for key, value in rdn)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}".strip()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)

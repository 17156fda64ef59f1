"""How a request to an agency's endpoint presents itself: credentials and TLS.

Shared by the deliverer and the registry's endpoint test, so a test that passes means a
delivery would authenticate the same way. HMAC signing (docs/registry.md): the exchange sends
``X-LGSP-Timestamp`` (Unix seconds) and ``X-LGSP-Signature: v1=<hex>``, the HMAC-SHA256 under
the shared secret of ``timestamp + "\\n" + packet id + "\\n" + SHA-256 of the body (hex)``; the
key id is in ``X-LGSP-Key-Id`` so a system can rotate secrets. The body digest, not the body,
is signed: the endpoint checks the digest against the body it read, then the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
import stat
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp

from lgsp_adapter.registry.agencies import Endpoint
from lgsp_adapter.registry.endpoint_auth import (
    MASK,
    BasicAuth,
    BearerAuth,
    HmacAuth,
    MutualTlsAuth,
)


def redacted(url: str) -> str:
    """``url`` as a log may show it: no user or password, every query value masked (agency
    systems put API keys there, ``?apikey=…``). Never in what goes back to a sender."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = "&".join(
        f"{name}={MASK}" if value else name for name, value in parse_qsl(parts.query, True)
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class Presentation:
    """Headers and options that authenticate one request to an endpoint."""

    headers: dict[str, str]
    ssl: ssl.SSLContext | bool


def hmac_signature(secret: str, timestamp: str, packet_id: str, body_sha256: str) -> str:
    """The ``v1`` signature of a push (what an agency system recomputes to check one)."""
    message = f"{timestamp}\n{packet_id}\n{body_sha256}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def present(endpoint: Endpoint, *, packet_id: str, body: bytes) -> Presentation:
    """Credentials for a request carrying ``body`` (a packet, or empty for a test)."""
    headers: dict[str, str] = {}
    auth = endpoint.auth
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
    elif isinstance(auth, BasicAuth):
        # UTF-8 (RFC 7617's charset): Vietnamese user names and passwords are common.
        headers["Authorization"] = aiohttp.encode_basic_auth(
            auth.username, auth.password.get_secret_value(), encoding="utf-8"
        )
    elif isinstance(auth, HmacAuth):
        timestamp = str(int(time.time()))
        digest = hashlib.sha256(body).hexdigest()
        signature = hmac_signature(auth.secret.get_secret_value(), timestamp, packet_id, digest)
        headers |= {
            "X-LGSP-Timestamp": timestamp,
            "X-LGSP-Key-Id": auth.key_id,
            "X-LGSP-Signature": f"v1={signature}",
        }
    return Presentation(headers, tls_context(endpoint))


def tls_context(endpoint: Endpoint) -> ssl.SSLContext | bool:
    """The TLS context for the endpoint: the default (system CAs) unless it names a private
    CA or presents a client certificate. Contexts are cached by their files' paths and
    modification times, so a renewed certificate is picked up without a restart."""
    auth = endpoint.auth
    certificate = auth if isinstance(auth, MutualTlsAuth) else None
    if endpoint.tls_ca is None and certificate is None:
        return True
    files = [endpoint.tls_ca] if endpoint.tls_ca else []
    if certificate is not None:
        files += [certificate.certificate, certificate.private_key]
    stamps = tuple((str(path), _mtime(path)) for path in files)
    return _context(
        str(endpoint.tls_ca) if endpoint.tls_ca else None,
        str(certificate.certificate) if certificate else None,
        str(certificate.private_key) if certificate else None,
        stamps,
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0  # loading it will say what is wrong


@lru_cache(maxsize=64)
def _context(
    ca: str | None, certificate: str | None, key: str | None, stamps: tuple[tuple[str, float], ...]
) -> ssl.SSLContext:
    # ``stamps`` is part of the cache key only: a file changed on disk makes a new context.
    for path in (ca, certificate, key):
        if path is not None:
            _regular_file(path)
    context = ssl.create_default_context(cafile=ca)
    if certificate is not None and key is not None:
        context.load_cert_chain(certificate, key, password=_no_passphrase)
    return context


def _regular_file(path: str) -> None:
    """Only a regular file: a FIFO or a device (``/dev/stdin``) would block the daemon."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path} is not a regular file")


def _no_passphrase() -> str:
    # OpenSSL would otherwise ask for one on the daemon's terminal, and wait.
    raise ValueError("the private key is encrypted; give it unencrypted, protected by its mode")

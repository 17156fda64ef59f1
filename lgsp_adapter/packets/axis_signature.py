"""The national axis' request signature: the ``XroadVnpt-`` headers, their HMAC, the file hash.

Agency software signs the map of logical headers it sends (see
``docs/design/national-axis-wire.md``): each ``k: v`` travels as ``XroadVnpt-k: v``, and three
headers more carry the names signed, the signed JSON and its HMAC-SHA256 keyed with the system's
secret. Clients build that JSON from an unordered map, so its key order cannot be rebuilt: a
request is verified over the JSON string exactly as received, and only then is the JSON read
and held against the headers that travelled beside it. What a request says counts only where
it is signed; an unsigned ``XroadVnpt-`` header is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import NamedTuple

from lgsp_adapter.errors import ErrorCode, PermanentError

PREFIX = "XroadVnpt-"
SIGNED_NAMES = f"{PREFIX}sign-header-key"
SIGNED_JSON = f"{PREFIX}sign-header"
SIGNATURE = f"{PREFIX}hash-header"
# Sent unsigned by the vendors' SDK; never taken as a logical header.
_UNSIGNED = {
    SIGNED_NAMES.lower(),
    SIGNED_JSON.lower(),
    SIGNATURE.lower(),
    f"{PREFIX}version".lower(),
}
SecretOf = Callable[[str], str | None]  # a system id's secret, None for no such system
_MAX_SIGNED_JSON = 16 * 1024  # far above any real header map; bounds the work of a bad one


def signed_headers(logical: Mapping[str, str], secret: str) -> dict[str, str]:
    """The HTTP headers a client sends for ``logical``, signed with ``secret``, in the map's
    order: each header prefixed (``Content-Type`` also plain, as clients send it), then the
    names signed, the signed JSON and its HMAC."""
    document = json.dumps(
        {f"{PREFIX}{name}": value for name, value in logical.items()},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    headers = {f"{PREFIX}{name}": value for name, value in logical.items()}
    if "Content-Type" in logical:
        headers["Content-Type"] = logical["Content-Type"]
    headers[SIGNED_NAMES] = ";".join(logical)
    headers[SIGNED_JSON] = document
    headers[SIGNATURE] = _hmac(document, secret)
    return headers


def verified_headers(headers: Mapping[str, str], secret_of: SecretOf) -> dict[str, str]:
    """The logical headers of a signed request (names and values as signed), once the signature
    is good under the secret of the system the request signs as and the headers sent agree
    with it; ``axis.signature_invalid`` (or ``axis.unknown_system``, ``axis.timestamp_invalid``)
    naming the first fault otherwise.

    ``headers`` is read case-insensitively and may be a multidict (aiohttp's): a name sent more
    than once must carry its signed value every time (the vendors' SDK sends ``docId`` and
    ``docid`` side by side), so a reader can take any of them."""
    sent = _sent(headers)
    document = _once(sent, SIGNED_JSON)
    signature = _once(sent, SIGNATURE)
    names = _once(sent, SIGNED_NAMES)
    if document is None or signature is None or names is None:
        raise _invalid(f"unsigned: {SIGNED_NAMES}, {SIGNED_JSON} and {SIGNATURE} are all required")
    if len(document) > _MAX_SIGNED_JSON:
        raise _invalid(f"{SIGNED_JSON} is longer than {_MAX_SIGNED_JSON:,} characters")
    # Read before it is trusted, bounded above, only to learn whose secret checks it.
    signed = _signed_map(document)
    system_id = _signed_value(signed, "systemid")
    timestamp = _signed_value(signed, "timestamp")
    if system_id is None or timestamp is None:
        raise _invalid("systemid and timestamp must both be signed")
    secret = secret_of(system_id)
    if secret is None:
        raise PermanentError(
            ErrorCode.AXIS_UNKNOWN_SYSTEM, f"no system {system_id!r} is registered here"
        )
    claimed = signature.strip().lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(_hmac(document, secret).encode("ascii"), claimed):
        raise _invalid(f"{SIGNATURE} is not the HMAC of {SIGNED_JSON} with {system_id}'s secret")
    if {name.strip() for name in names.split(";") if name.strip()} != set(signed):
        raise _invalid(f"{SIGNED_NAMES} does not list the names {SIGNED_JSON} signs")
    for name, value in signed.items():
        values = sent.get(f"{PREFIX}{name}".lower())
        if not values:
            raise _invalid(f"{PREFIX}{name} is signed but not sent")
        if any(other != value for other in values):
            raise _invalid(f"{PREFIX}{name} differs from its signed value")
    parse_timestamp(timestamp)
    return signed


def bearer_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The logical headers of a request a bearer token authenticates (the provincial
    gateways' way): every ``XroadVnpt-`` header but the signature's, unprefixed. A name
    sent twice must carry one value (``axis.bad_request`` otherwise)."""
    logical: dict[str, str] = {}
    for name, values in _sent(headers).items():
        if name.startswith(PREFIX.lower()) and name not in _UNSIGNED:
            if len(set(values)) > 1:
                raise PermanentError(
                    ErrorCode.AXIS_BAD_REQUEST,
                    f"{PREFIX}{name[len(PREFIX) :]} is sent twice with different values",
                )
            logical[name[len(PREFIX) :]] = values[0]
    return logical


def _sent(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Every value sent under each name, by lower-case name."""
    sent: dict[str, list[str]] = {}
    for name, value in headers.items():
        sent.setdefault(name.lower(), []).append(value)
    return sent


def _once(sent: dict[str, list[str]], name: str) -> str | None:
    values = sent.get(name.lower(), [])
    if len(set(values)) > 1:
        raise _invalid(f"{name} is sent twice with different values")
    return values[0] if values else None


def _signed_value(signed: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in signed.items() if key.lower() == name), None)


def _signed_map(document: str) -> dict[str, str]:
    """The signed JSON as logical names and values: an object of strings, each key prefixed."""
    try:
        parsed = json.loads(document, object_pairs_hook=_refuse_conflicts)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{SIGNED_JSON} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise _invalid(f"{SIGNED_JSON} is not a JSON object")
    signed: dict[str, str] = {}
    for key, value in parsed.items():
        if not key.startswith(PREFIX) or key.lower() in _UNSIGNED:
            raise _invalid(f"{SIGNED_JSON} signs {key!r}, which is not a logical header")
        if not isinstance(value, str):
            raise _invalid(f"{SIGNED_JSON} gives {key} a {type(value).__name__}, not text")
        signed[key.removeprefix(PREFIX)] = value
    return signed


def _refuse_conflicts(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # One name signed with two values would let the verifier and a reader each take another.
    first: dict[str, object] = {}
    for key, value in pairs:
        if first.setdefault(key.lower(), value) != value:
            raise _invalid(f"{SIGNED_JSON} signs {key} twice, with different values")
    return dict(pairs)


class FileHashes(NamedTuple):
    """A file's SHA-256 as clients write it in ``hash-file``."""

    full: str  # lower-case hex, 64 characters
    zero_dropped: str  # each byte below 0x10 without its leading zero, as the vendors' SDK writes


def file_hashes(data: bytes) -> FileHashes:
    """``data``'s SHA-256 in both forms ``hash-file`` comes in."""
    digest = hashlib.sha256(data).digest()
    return FileHashes(digest.hex(), "".join(format(byte, "x") for byte in digest))


def file_hash_matches(data: bytes, claimed: str) -> bool:
    """Whether ``claimed`` is ``data``'s SHA-256 in either form, in any case."""
    return claimed.strip().lower() in file_hashes(data)


def check_file_hash(data: bytes, claimed: str) -> None:
    """``axis.file_hash_mismatch`` unless ``claimed`` is ``data``'s SHA-256 in either form."""
    if not file_hash_matches(data, claimed):
        raise PermanentError(
            ErrorCode.AXIS_FILE_HASH_MISMATCH,
            "hash-file is not the SHA-256 of the file sent (in hex, with or without the "
            "leading zero of each byte)",
        )


def format_timestamp(at: datetime) -> str:
    """``at`` as the axis writes it: ``ddMMyyyy'T'HHmmss+SSSS``, ``SSSS`` the milliseconds."""
    return f"{at:%d%m%YT%H%M%S}+{at.microsecond // 1000:04d}"


def parse_timestamp(text: str) -> datetime:
    """A client's ``timestamp``, naive as sent (it is the client's local time, with no zone);
    ``axis.timestamp_invalid`` when it is not in the axis' form."""
    stamp, plus, millis = text.strip().partition("+")
    try:
        if not plus or len(millis) != 4 or not millis.isdigit():
            raise ValueError(text)
        at = datetime.strptime(stamp, "%d%m%YT%H%M%S")  # the client's local time
    except ValueError as exc:
        raise PermanentError(
            ErrorCode.AXIS_TIMESTAMP_INVALID,
            f"timestamp {text!r} is not ddMMyyyy'T'HHmmss+SSSS (SSSS the milliseconds)",
        ) from exc
    return at.replace(microsecond=min(int(millis), 999) * 1000)


def _hmac(document: str, secret: str) -> str:
    # Header text arrives decoded as UTF-8 with surrogate escapes: this gives back its bytes.
    message = document.encode("utf-8", "surrogateescape")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _invalid(message: str) -> PermanentError:
    return PermanentError(ErrorCode.AXIS_SIGNATURE_INVALID, message)

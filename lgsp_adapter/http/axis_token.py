"""The provincial gateways' way in: OAuth2 client credentials in front of the same operations.

Provincial LGSPs put the axis' operations behind an API gateway (WSO2): a system first asks
``POST /axis/token`` for a token (RFC 6749 §4.4: ``grant_type=client_credentials``, its system
id and secret in HTTP Basic or as ``client_id`` and ``client_secret`` form fields), then calls
the operations with ``Authorization: Bearer …``, their parameters the ``XroadVnpt-`` headers as
ever but unsigned: the token is the proof.

Tokens are not kept anywhere. Each is sealed (Fernet) with a key derived from the secret box's,
and names the system, a digest of its secret and, in the seal, its time; it holds an hour. So
every replica with the store's key file honours every replica's tokens, a system removed or
given a new secret has its tokens refused at once, and a restart logs nobody out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.parse
from typing import Any

from aiohttp import BasicAuth, web

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError
from lgsp_adapter.http.app import read_body
from lgsp_adapter.http.axis_refusals import UNSIGNED, audit_refusal
from lgsp_adapter.http.rate_limit import RateLimiter
from lgsp_adapter.registry.axis_systems import AxisCaller, AxisSystems
from lgsp_adapter.registry.secret_box import SecretBox

log = logging.getLogger(__name__)

TOKEN_PATH = "/axis/token"  # noqa: S105  # a path, not a token
TOKEN_TTL_S = 3600
_FORM_BYTES = 8 * 1024
_PURPOSE = "lgsp-adapter axis bearer tokens"
_STAND_IN = "-" * 43  # compared with when no system has the id given


class AxisTokens:
    """Issues bearer tokens to registered systems and tells whose a token is."""

    def __init__(self, box: SecretBox, ttl_s: int = TOKEN_TTL_S) -> None:
        self._box = box.derived(_PURPOSE)
        self.ttl_s = ttl_s

    def issue(self, system_id: str, secret: str) -> str:
        """A token for the system, as long as it keeps this secret."""
        return self._box.seal(json.dumps({"system_id": system_id, "secret": _digest(secret)}))

    def caller(self, token: str, systems: AxisSystems) -> tuple[str, AxisCaller]:
        """The system id and the registered system a token is for; ``axis.token_invalid``
        when it is not one of ours, is over an hour old, or its system is gone or has another
        secret now."""
        try:
            claims = json.loads(self._box.open(token, max_age_s=self.ttl_s))
        except (LgspError, ValueError) as exc:
            raise _invalid("not a token of this exchange, or older than an hour") from exc
        system_id = claims.get("system_id") if isinstance(claims, dict) else None
        caller = systems.caller(system_id) if isinstance(system_id, str) else None
        if caller is None or not hmac.compare_digest(
            str(claims.get("secret")), _digest(caller.secret)
        ):
            raise _invalid("its system is no longer registered, or its secret changed since")
        return str(system_id), caller


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _invalid(why: str) -> PermanentError:
    return PermanentError(ErrorCode.AXIS_TOKEN_INVALID, f"the bearer token is refused: {why}")


class LogIns:
    """The pace of log-ins: ``burst`` at once, then ``per_second``, per registered system id,
    and one pace shared by every id no system has. Their own buckets, not the systems' request
    pace, so that guessing at a system's secret cannot slow its calls; a shared one for the
    unknown ids, so that a 429 does not tell which ids exist and a scan of ids keeps no state
    per id it tried."""

    def __init__(self, per_second: float = 1.0, burst: int = 10) -> None:
        self._buckets = RateLimiter(per_second=per_second, burst=burst)

    def take(self, system_id: str, known: bool) -> None:
        """Spend one log-in of that id's (``auth.rate_limited`` when there is none left)."""
        self._buckets.take(f"axis-token/{system_id}" if known else "axis-token/?")


async def token(
    request: web.Request, systems: AxisSystems, tokens: AxisTokens, log_ins: LogIns
) -> web.Response:
    """``POST /axis/token``: a bearer token for a system that names itself and its secret."""
    body = await read_body(request, _FORM_BYTES)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if _field(form, "grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is granted")
    system_id, given = _credentials(request, form)
    expected = systems.secret_of(system_id) if system_id else None
    try:
        log_ins.take(system_id, known=expected is not None)
    except LgspError as exc:
        return _oauth_error(429, "slow_down", exc.message)
    if not _matches(expected, given):
        if request.app[UNSIGNED].audited():
            refused = PermanentError(ErrorCode.AUTH_INVALID, "no system here with that secret")
            await audit_refusal(request, refused, "token", system_id or "?")
        return _oauth_error(401, "invalid_client", "no system here with that id and secret")
    assert expected is not None  # noqa: S101  # _matches said so
    answer: dict[str, Any] = {
        "access_token": tokens.issue(system_id, expected),
        "token_type": "Bearer",
        "expires_in": tokens.ttl_s,
    }
    return web.json_response(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _matches(expected: str | None, given: tuple[str, ...]) -> bool:
    """Whether any of the forms the secret may have come in is the system's, compared in
    constant time (and against a stand-in for an unknown system, so that timing does not
    tell which system ids exist)."""
    wanted = (expected or _STAND_IN).encode("utf-8")
    found = False
    for candidate in given:
        found |= hmac.compare_digest(wanted, candidate.encode("utf-8", "surrogateescape"))
    return found and expected is not None


def _field(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values and len(values) == 1 else None


def _credentials(request: web.Request, form: dict[str, list[str]]) -> tuple[str, tuple[str, ...]]:
    """The client id and the forms its secret may have: from HTTP Basic (RFC 6749 §2.3.1's
    first way) as sent and form-decoded, since that RFC asks clients to form-encode both parts
    and most (curl, Java, WSO2) do not; or from the form."""
    authorization = request.headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            basic = BasicAuth.decode(authorization, encoding="utf-8")
        except ValueError:
            return "", ()
        # A system id has no character form-encoding changes; a secret may (``+``, ``%``).
        return basic.login, (basic.password, urllib.parse.unquote_plus(basic.password))
    return _field(form, "client_id") or "", (_field(form, "client_secret") or "",)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    body: dict[str, Any] = {"error": error, "error_description": description}
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="axis"'
    return web.json_response(body, status=status, headers=headers)

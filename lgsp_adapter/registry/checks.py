"""The registry's rules, each a plain function: what a registry change must satisfy to be made.

Apart from ``Registry`` so the rules read in one place and can be tested without a store: an
agency code in its exact form, a body the model accepts with an installed translator and TLS
files that load, token labels and tokens of the documented shape, credentials that do not follow
an endpoint to another host unasked, and a revision that is still current.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import ServedAgency
from lgsp_adapter.registry.endpoint_auth import MutualTlsAuth, NoAuth
from lgsp_adapter.registry.endpoint_transport import tls_context
from lgsp_adapter.registry.records import EndpointRecord
from lgsp_adapter.translators import find

TOKEN_LABEL = r"^[A-Za-z0-9._-]{1,64}$"  # noqa: S105  # a pattern, not a secret
TOKEN_SHAPE = r"[A-Za-z0-9._~+/=-]{24,500}"  # noqa: S105  # RFC 6750's b64token, long enough


def validated(body: Mapping[str, Any]) -> ServedAgency:
    """The agency a registry body describes, checked as far as can be without the store."""
    if isinstance(body.get("code"), str):
        agency_code(body["code"])  # its own error: the most common mistake, said precisely
    try:
        agency = ServedAgency.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from exc
    if agency.endpoint.translator is not None:
        find(agency.endpoint.translator)  # translation.unknown_translator
    if isinstance(agency.endpoint.auth, MutualTlsAuth) or agency.endpoint.tls_ca:
        check_tls_files(agency)
    return agency


def check_token_text(label: str, token: str | None) -> None:
    """A token label and a token the integrator chose have the shapes the API documents."""
    if not re.fullmatch(TOKEN_LABEL, label):
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            f"a token label is 1–64 of A-Z a-z 0-9 . _ -, not {label!r}",
        )
    if token is not None and not re.fullmatch(TOKEN_SHAPE, token):
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            "a token is 24 to 500 characters of A-Z a-z 0-9 - . _ ~ + / = (as a bearer "
            "token is written)",
        )


def check_credentials_follow(
    current: EndpointRecord, after: ServedAgency, patch: Mapping[str, Any]
) -> None:
    """Credentials stored for one host are not sent to another unasked: a change that gives
    the endpoint another scheme, host or port — or a URL where it had none (a detour through
    pull must not launder it) — must say its auth again."""
    new = after.endpoint
    endpoint_patch = patch.get("endpoint")
    restated = isinstance(endpoint_patch, Mapping) and "auth" in endpoint_patch
    if new.url is None or isinstance(new.auth, NoAuth) or restated:
        return
    old = current.agency.endpoint.url if current.problem is None else None
    moved = old is None or (old.scheme, old.host, old.port) != (
        new.url.scheme,
        new.url.host,
        new.url.port,
    )
    if moved:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            "the endpoint moves to another host: send its auth again in the same change (the "
            "stored credentials are not sent to a new host unasked)",
            details=[{"field": "endpoint.auth", "problem": "required when the host changes"}],
        )


def invalid(exc: ValidationError) -> PermanentError:
    """A validation failure as ``registry.invalid``, each problem at its field."""
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
    ]
    text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    return PermanentError(ErrorCode.REGISTRY_INVALID, text, details=problems)


def agency_code(text: str) -> str:
    code = AgencyCode.read(text).code
    if code is None or str(code) != text:
        raise PermanentError(
            ErrorCode.AGENCY_CODE_INVALID,
            f"{text!r} is not an agency code (four parts like 000.00.12.H56)",
        )
    return text


def present(code: str, current: EndpointRecord | None, expected: int | None) -> EndpointRecord:
    if current is None:
        raise PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"{code} is not registered here")
    if expected is not None and expected != current.revision:
        raise PermanentError(
            ErrorCode.REGISTRY_CONFLICT,
            f"{code} is at revision {current.revision}, not {expected}: someone changed it "
            "meanwhile; read it again",
            details={"revision": current.revision},
        )
    return current


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge, except that an ``auth`` object replaces the old one whole (mixing two
    kinds of credentials would make neither)."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and key != "auth" and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):
            name = f"{prefix}{key}"
            paths += changed_paths(before.get(key), after.get(key), f"{name}.")
        return paths
    return [] if before == after else [prefix.rstrip(".")]


def check_tls_files(agency: ServedAgency) -> None:
    """Load the endpoint's TLS files as a delivery will: regular PEM files, the key
    unencrypted. Refused without saying more than that, so the check cannot be used to tell
    which files exist on the daemon's machine."""
    try:
        tls_context(agency.endpoint)
    except (OSError, ssl.SSLError, ValueError) as exc:
        why = "an encrypted private key" if "encrypted" in str(exc) else "not readable PEM"
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            f"the endpoint's TLS files cannot be loaded ({why}): tls_ca, certificate and "
            "private_key must be regular PEM files the daemon can read, the key unencrypted",
            details=[{"field": "endpoint.auth", "problem": why}],
        ) from exc

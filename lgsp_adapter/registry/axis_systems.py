"""The agency systems that speak the national axis' protocol to this daemon, live.

An agency's document software (QLVB) is configured with an axis URL, a system id and a secret;
pointed at our facade it keeps them. Each such system is a registry entry: its id, the agencies
it may speak for (served here) and its secret, sealed with the secret box because the axis'
HMAC is checked with the secret itself. Registered, changed and removed live through the
registry's one transactional change with its audit entry, so the facade honours a change at
the next request and every daemon on the store picks it up from the registry's revision.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Client
from lgsp_adapter.registry.checks import invalid
from lgsp_adapter.registry.endpoint_auth import Sendable
from lgsp_adapter.registry.records import AxisEdit, AxisSystemRecord
from lgsp_adapter.registry.secret_box import SecretBox
from lgsp_adapter.registry.service import Registry

log = logging.getLogger(__name__)

SYSTEM_ID = r"^[A-Za-z0-9._-]{1,100}$"
MIN_SECRET = 16  # axis secrets are handed out by the axis' operator; ours are 43 characters
SECRET_SHAPE = rf"[\x20-\x7e]{{{MIN_SECRET},200}}"  # a pattern, not a secret
KEY_CHECK = "lgsp-adapter axis secret box"  # what the store keeps sealed, to check a key file


class AxisSystem(BaseModel):
    """What an integrator registers: the system, its agencies, and optionally its secret (the
    one the agency software already holds); without one, a new secret is made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_id: str = Field(pattern=SYSTEM_ID, description="As the software sends `systemid`.")
    agencies: list[AgencyCode] = Field(min_length=1, max_length=1000)
    label: str = Field("", max_length=200)
    secret: Sendable | None = Field(None, description=f"At least {MIN_SECRET} characters.")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: Any) -> Any:
        if secret is not None and not re.fullmatch(SECRET_SHAPE, secret.get_secret_value()):
            raise ValueError(f"an axis secret is {MIN_SECRET} to 200 printable ASCII characters")
        return secret


@dataclass(frozen=True, slots=True)
class AxisCaller:
    """A registered system as the facade uses it: the client it acts as, and its secret."""

    client: Client
    secret: str = field(repr=False)


class AxisSystems:
    """Registers axis systems and answers, for the facade, who a system id is."""

    def __init__(self, registry: Registry, box: SecretBox) -> None:
        self._registry = registry
        self._box = box
        self._callers: dict[str, AxisCaller] = {}
        registry.on_change(self._reloaded)

    def caller(self, system_id: str) -> AxisCaller | None:
        """The registered system, if any (as of the registry's last change)."""
        return self._callers.get(system_id)

    def secret_of(self, system_id: str) -> str | None:
        """The system's secret: what the signature check looks up by the signed systemid."""
        caller = self._callers.get(system_id)
        return None if caller is None else caller.secret

    async def check_key(self, key_file: str) -> None:
        """Refuse to start (``FatalError``) with a key file other than the one that seals the
        secrets in the store. Replicas sharing a PostgreSQL store each make a key file where
        they find none; each would seal secrets the others cannot open, and a system
        registered through one would be unknown to the rest. The first to start leaves its
        key's seal of a known text in the store; the others must open it."""
        wrong = FatalError(
            ErrorCode.CONFIG_INVALID,
            f"{key_file} is not the key that seals the axis systems' secrets in this store: "
            "copy the key file of the daemon that first used the store ([axis] secret_key "
            "names where it is read)",
        )
        # A store from before the check keeps secrets but no seal of it: the first key to
        # leave one must be the key that opens them.
        records = await self._registry.store.axis_systems()
        if records and not any(self._opens(record.sealed_secret) for record in records):
            raise wrong
        if not self._opens(await self._registry.store.key_check(self._box.seal(KEY_CHECK))):
            raise wrong

    def _opens(self, sealed: str) -> bool:
        try:
            self._box.open(sealed)
        except LgspError:
            return False
        return True

    async def reload(self) -> None:
        """Read every system from the store. One whose secret does not open (the store and
        the key file do not belong together) is left out, with an error logged: its calls
        fail as an unknown system's would, and the rest work."""
        callers = {}
        for record in await self._registry.store.axis_systems():
            try:
                secret = self._box.open(record.sealed_secret)
            except LgspError as exc:
                log.error("axis system %s is not served: %s", record.system_id, exc.message)
                continue
            client = Client(
                name=f"axis/{record.system_id}",
                agencies=[AgencyCode.parse(code) for code in record.agencies],
            )
            callers[record.system_id] = AxisCaller(client, secret)
        self._callers = callers

    async def _reloaded(self, codes: list[str]) -> None:
        await self.reload()

    async def records(self) -> list[AxisSystemRecord]:
        """Every registered system (secrets sealed)."""
        return await self._registry.store.axis_systems()

    async def register(
        self, body: Mapping[str, Any], *, actor: str, replace: bool = False
    ) -> tuple[AxisSystemRecord, str | None]:
        """Register a system (or, with ``replace``, change one: agencies, label, and the
        secret when one is given). Returns the record and the secret made for it, which is
        shown this once; None when the integrator gave the secret."""
        system = _validated(body)
        self._check_served(system.agencies)
        given = system.secret.get_secret_value() if system.secret is not None else None
        made = None if given is not None or replace else secrets.token_urlsafe(32)
        new_secret = given or made
        codes = tuple(str(code) for code in system.agencies)

        def edit(current: AxisSystemRecord | None) -> AxisEdit:
            if current is not None and not replace:
                raise PermanentError(
                    ErrorCode.REGISTRY_DUPLICATE,
                    f"axis system {system.system_id} is registered already; change it",
                )
            if current is None and replace:
                raise _not_found(system.system_id)
            sealed = _kept(current) if new_secret is None else self._box.seal(new_secret)
            outcome = "axis_system_changed" if replace else "axis_system_registered"
            detail = f"system {system.system_id} for {', '.join(codes)}" + (
                "; new secret" if replace and new_secret else ""
            )
            record = AxisSystemRecord(
                system_id=system.system_id,
                agencies=codes,
                sealed_secret=sealed,
                label=system.label,
                created_at=current.created_at if current else datetime.now(UTC),
                updated_at=datetime.now(UTC),  # the store writes its own times
                updated_by=actor,
            )
            return AxisEdit(record, [_entry(outcome, codes, detail, actor)])

        written = await self._registry.store.change_axis_system(system.system_id, edit, actor=actor)
        await self._registry.refresh()
        await self.reload()
        assert written is not None  # noqa: S101  # a registration writes a record
        return written, made

    async def remove(self, system_id: str, *, actor: str) -> None:
        """Remove a system: from its next request, its signature opens nothing."""

        def edit(current: AxisSystemRecord | None) -> AxisEdit:
            if current is None:
                raise _not_found(system_id)
            detail = f"system {system_id} removed"
            return AxisEdit(None, [_entry("axis_system_removed", current.agencies, detail, actor)])

        await self._registry.store.change_axis_system(system_id, edit, actor=actor)
        await self._registry.refresh()
        await self.reload()

    def _check_served(self, agencies: list[AgencyCode]) -> None:
        directory = self._registry.directory
        foreign = [  # served by name: a route's range is reached elsewhere, not spoken for
            str(code)
            for code in agencies
            if directory.served(code) is None or directory.route_for(code) is not None
        ]
        if foreign:
            raise PermanentError(  # the body is right; the registry lacks what it names
                ErrorCode.REGISTRY_NOT_FOUND,
                f"an axis system speaks only for agencies served here, not {', '.join(foreign)}",
                details={"not_served": foreign},
            )
        if len(set(agencies)) != len(agencies):
            raise PermanentError(ErrorCode.REGISTRY_INVALID, "an agency is listed twice")


def _validated(body: Mapping[str, Any]) -> AxisSystem:
    try:
        return AxisSystem.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from exc


def _not_found(system_id: str) -> PermanentError:
    return PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"no axis system {system_id!r}")


def _kept(current: AxisSystemRecord | None) -> str:
    if current is None:  # a new system always has a secret, given or made
        raise PermanentError(ErrorCode.REGISTRY_INVALID, "a new axis system needs a secret")
    return current.sealed_secret


def _entry(outcome: str, codes: tuple[str, ...], detail: str, actor: str) -> AuditEntry:
    return AuditEntry(
        event=AuditEvent.ADMIN,
        outcome=outcome,
        recipient=",".join(codes)[:500],
        detail=detail[:500],
        actor=actor,
    )

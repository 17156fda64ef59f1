"""What the registry keeps, and the one way its stores change it.

A store changes the registry only through ``change``: inside one transaction it reads the
agency's record, asks the caller's ``edit`` what to do with it, and writes the outcome with its
audit entries and a bump of the registry's revision. Checks that depend on what is stored
(the record's revision, whether it exists) are made by ``edit`` on what the transaction read,
so two integrators changing one endpoint at once can never both win on stale reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.registry.agencies import ServedAgency


class Source(StrEnum):
    """Where a record came from: the settings file, or an integrator's change."""

    SETTINGS = "settings"
    REGISTRY = "registry"


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """One agency this daemon serves, as the registry keeps it."""

    agency: ServedAgency
    revision: int  # 1 when made, one more at each change: the ETag of the HTTP interface
    source: Source
    created_at: datetime
    updated_at: datetime
    updated_by: str
    stored: dict[str, Any] = field(default_factory=dict)  # as kept, secrets included
    problem: str | None = None  # why the stored record no longer validates; then not served

    @property
    def code(self) -> str:
        """The agency's code."""
        return str(self.agency.code)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token an agency's system submits with; the token itself is never kept."""

    id: str  # public, short: how an integrator names it to revoke it
    digest: str
    agency: str
    label: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """What ``change`` writes: the record (None removes it), tokens to add and to revoke (by
    id), and the audit entries saying so."""

    agency: ServedAgency | None
    source: Source
    entries: list[AuditEntry]
    issue: list[TokenRecord] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)


# Given the stored record (None: there is none), what to write (None: nothing). May raise.
Editor = Callable[[EndpointRecord | None], Edit | None]


@dataclass(frozen=True, slots=True)
class AxisSystemRecord:
    """An agency system that speaks the national axis' protocol to this daemon: its system id,
    the agencies it may speak for, and its HMAC secret sealed (an HMAC is checked with the
    secret itself, so a digest would not do; see ``secret_box``)."""

    system_id: str
    agencies: tuple[str, ...]
    sealed_secret: str
    label: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AxisEdit:
    """What ``change_axis_system`` writes: the record (None removes it) and its audit entries."""

    system: AxisSystemRecord | None
    entries: list[AuditEntry]


AxisEditor = Callable[[AxisSystemRecord | None], AxisEdit | None]


class RegistryStore(Protocol):
    """The registry's tables, on SQLite or PostgreSQL."""

    async def revision(self) -> int:
        """A number that grows with every change: cheap to poll for changes made elsewhere."""
        ...

    async def endpoints(self) -> list[EndpointRecord]:
        """Every record, by code."""
        ...

    async def endpoint(self, code: str) -> EndpointRecord | None:
        """One record."""
        ...

    async def tokens(self, agency: str | None = None) -> list[TokenRecord]:
        """Tokens, revoked ones too, by agency and age; only ``agency``'s when given."""
        ...

    async def removed(self) -> dict[str, Source]:
        """Codes removed and not registered again, with who removed them."""
        ...

    async def change(self, code: str, edit: Editor, *, actor: str) -> EndpointRecord | None:
        """Apply ``edit`` to ``code``'s record in one transaction; the record as written."""
        ...

    async def axis_systems(self) -> list[AxisSystemRecord]:
        """Every axis system, by system id."""
        ...

    async def change_axis_system(
        self, system_id: str, edit: AxisEditor, *, actor: str
    ) -> AxisSystemRecord | None:
        """Apply ``edit`` to the system's record in one transaction, with a bump of the
        registry's revision (the daemons sharing the store pick the change up); the record as
        written."""
        ...

    async def key_check(self, sealed: str) -> str:
        """The check value the store keeps for the key that seals the axis secrets: ``sealed``
        if it keeps none yet (it keeps it from now on), else the one it keeps. A daemon whose
        key does not open it must not seal secrets its peers cannot open."""
        ...

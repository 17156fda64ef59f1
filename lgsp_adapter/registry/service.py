"""Changing the registry: the checks, the audit entries, and applying each change live.

Every change goes through ``Registry``: it validates (the code's shape, a URL that is http(s),
an installed translator, a client certificate that loads, a token nobody else has), writes
through the store's one transactional ``change`` with the audit entries naming who acted, and
then refreshes the ``Directory`` and tells the listeners (the bus declares and consumes a new
agency's queue), so the next packet already sees it. Changes made by another process on the
same store (the CLI beside a running daemon, a replica) are picked up by ``watch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import (
    Client,
    IssuedToken,
    ServedAgency,
    token_digest,
    with_secrets,
)
from lgsp_adapter.registry.attempt_budget import AttemptBudget, fitting
from lgsp_adapter.registry.checks import (
    agency_code,
    changed_paths,
    check_credentials_follow,
    check_token_text,
    merge_patch,
    present,
    validated,
)
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.records import Edit, EndpointRecord, RegistryStore, Source, TokenRecord

log = logging.getLogger(__name__)

Listener = Callable[[list[str]], Awaitable[None]]


class Registry:
    """The live registry over a ``RegistryStore``, keeping a ``Directory`` up to date."""

    def __init__(
        self,
        store: RegistryStore,
        directory: Directory,
        *,
        served_elsewhere: frozenset[str] = frozenset(),
        budget: AttemptBudget | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self._budget = budget  # what the broker lets one delivery attempt take
        self._elsewhere = served_elsewhere  # known_agencies: another daemon serves them
        self._listeners: list[Listener] = []  # told after the directory changed
        self._early: list[Listener] = []  # and before it too (the bus)
        self.listener_timeout_s = 10.0
        self._revision = -1
        self._refreshing = asyncio.Lock()

    def on_change(self, listener: Listener, *, early: bool = False) -> None:
        """Call ``listener`` with the served codes after every change that reaches us; with
        ``early``, also before the directory changes, with every code served before or after
        (the bus: a new agency's queue must exist before a packet for it is let in)."""
        self._listeners.append(listener)
        if early:
            self._early.append(listener)

    async def refresh(self) -> bool:
        """Load the registry into the directory if it changed, and tell the listeners; whether
        it had.

        Early listeners (the bus) hear first every code served before or after, so a new
        agency's queue exists before the directory lets a packet for it in; then all hear,
        once the directory has changed, the codes served now (a removed agency's consumer
        stops, the agency list and the inboxes follow).
        A listener that fails, or takes longer than ``listener_timeout_s`` (the broker away),
        is told again at the next ``refresh``; the directory changes whatever they do, so a
        revoked token stops working at once. Listeners must be idempotent."""
        async with self._refreshing:
            revision = await self.store.revision()
            if revision == self._revision:
                return False
            records = await self.store.endpoints()
            tokens = await self.store.tokens()
            served = [record.agency for record in records if self._servable(record)]
            now = [str(agency.code) for agency in served]
            before = [str(code) for code in self.directory.served_codes]
            told = await self._tell(self._early, sorted({*before, *now}), revision)
            if not told:
                # The bus could not make room for new agencies: the directory takes every
                # other change (a revocation must not wait for the broker), not them yet.
                served = [agency for agency in served if str(agency.code) in before]
            self.directory.update(served, [_issued(t) for t in tokens if t.revoked_at is None])
            if told:  # else the bus is away: both are told again at the next look
                told = await self._tell(self._listeners, now, revision)
            if told:
                self._revision = revision
            return True

    def _servable(self, record: EndpointRecord) -> bool:
        """Whether a record is served: valid, and not inside a route's range (registered
        before the route was added to the settings: the bus would deliver it twice, so the
        route serves its code, and the record waits)."""
        if record.problem is not None:
            return False
        bridge = self.directory.bridge_for(record.code)
        if bridge is not None:
            log.error(
                "%s is registered by name but lives on bus %s ([[bridges]]); not served here",
                record.code,
                bridge.name,
            )
            return False
        route = self.directory.range_of(record.code)
        if route is not None:
            log.error(
                "%s is registered by name but inside route %s's range; the route serves it "
                "(narrow the route, or remove the record)",
                record.code,
                route.name,
            )
        return route is None

    async def _tell(self, listeners: list[Listener], codes: list[str], revision: int) -> bool:
        ok = True
        for listener in listeners:
            try:
                await asyncio.wait_for(listener(codes), timeout=self.listener_timeout_s)
            except Exception:
                log.exception("applying the registry's revision %d failed; retrying", revision)
                ok = False
        return ok

    async def watch(self, stopping: asyncio.Event, interval_s: float = 2.0) -> None:
        """Pick up changes other processes make, until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                if await self.refresh():
                    log.info("registry changed elsewhere; now serving %s", self.served_text())
            except Exception:
                log.exception("the registry could not be read; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval_s)

    def served_text(self) -> str:
        """The served codes, for a log line."""
        return ", ".join(map(str, self.directory.served_codes)) or "nobody"

    async def create(
        self,
        body: Mapping[str, Any],
        *,
        actor: str,
        token: str | None = None,
        issue_token: bool = True,
        token_label: str = "system",  # noqa: S107  # a label, not a secret
    ) -> tuple[EndpointRecord, str | None]:
        """Register an agency's endpoint; with the token its system submits with (shown this
        once) unless ``issue_token`` is false."""
        agency = fitting(self._budget, validated(body))
        code = str(agency.code)
        if code in self._elsewhere:
            raise PermanentError(
                ErrorCode.REGISTRY_DUPLICATE,
                f"{code} is served by another daemon ([[known_agencies]] in the settings)",
            )
        route = self.directory.route_for(code)
        if route is not None:  # a topic exchange would deliver its packets twice
            raise PermanentError(
                ErrorCode.REGISTRY_DUPLICATE,
                f"{code} is in route {route.name}'s range ([[routes]] in the settings): "
                "narrow the route to serve it by name",
            )
        bridge = self.directory.bridge_for(code)
        if bridge is not None:  # served here, its packets would go both here and across
            raise PermanentError(
                ErrorCode.REGISTRY_DUPLICATE,
                f"{code} is in bridge {bridge.name}'s range: it lives on another bus "
                "([[bridges]] in the settings)",
            )
        plain, issued = self._new_token(code, token_label, token) if issue_token else (None, [])

        def edit(current: EndpointRecord | None) -> Edit:
            if current is not None:
                raise PermanentError(
                    ErrorCode.REGISTRY_DUPLICATE,
                    f"{code} is registered already (revision {current.revision}); change it",
                    details={"code": code, "revision": current.revision},
                )
            detail = f"{agency.endpoint.mode} endpoint for {agency.name}"[:500]
            entries = [_entry("endpoint_created", code, detail, actor)]
            entries += [
                _entry("token_issued", code, f"token {t.id} ({t.label})", actor) for t in issued
            ]
            return Edit(agency, Source.REGISTRY, entries, issue=issued)

        record = await self.store.change(code, edit, actor=actor)
        await self.refresh()
        assert record is not None  # noqa: S101  # a create writes a record
        return record, plain

    async def change(
        self,
        code: str,
        patch: Mapping[str, Any],
        *,
        actor: str,
        expected_revision: int | None = None,
        outcome: str = "endpoint_changed",
    ) -> EndpointRecord:
        """Change fields of a record (a JSON merge patch; ``auth`` is replaced whole)."""
        code = agency_code(code)
        if "code" in patch and patch["code"] != code:
            raise PermanentError(
                ErrorCode.REGISTRY_INVALID, "an agency's code cannot change; remove and register"
            )

        def edit(current: EndpointRecord | None) -> Edit | None:
            current = present(code, current, expected_revision)
            before = copy.deepcopy(current.stored)  # as kept: a record that no longer
            agency = fitting(self._budget, validated(merge_patch(before, patch)))
            check_credentials_follow(current, agency, patch)
            changed = changed_paths(before, with_secrets(agency))
            if not changed:
                return None
            detail = f"changed {', '.join(changed)}; revision {current.revision + 1}"[:500]
            return Edit(agency, Source.REGISTRY, [_entry(outcome, code, detail, actor)])

        record = await self.store.change(code, edit, actor=actor)
        await self.refresh()
        assert record is not None  # noqa: S101  # a change keeps the record
        return record

    async def set_enabled(
        self, code: str, enabled: bool, *, actor: str, expected_revision: int | None = None
    ) -> EndpointRecord:
        """Enable or disable an endpoint."""
        outcome = "endpoint_enabled" if enabled else "endpoint_disabled"
        return await self.change(
            code,
            {"enabled": enabled},
            actor=actor,
            expected_revision=expected_revision,
            outcome=outcome,
        )

    async def remove(self, code: str, *, actor: str, expected_revision: int | None = None) -> None:
        """Stop serving an agency. Its queued packets stay on the bus (and in the store) until
        it is registered again or an operator deals with them; its tokens are revoked."""
        code = agency_code(code)

        def edit(current: EndpointRecord | None) -> Edit:
            current = present(code, current, expected_revision)
            detail = f"was revision {current.revision}; its tokens are revoked"
            # The registry's act: the settings file no longer brings it back at a start.
            return Edit(None, Source.REGISTRY, [_entry("endpoint_removed", code, detail, actor)])

        await self.store.change(code, edit, actor=actor)
        await self.refresh()

    async def issue_token(
        self, code: str, *, actor: str, label: str = "system", token: str | None = None
    ) -> tuple[TokenRecord, str]:
        """A new submitting token for an agency's system; the token is returned this once."""
        code = agency_code(code)
        plain, issued = self._new_token(code, label, token)

        def edit(current: EndpointRecord | None) -> Edit:
            current = present(code, current, None)
            detail = f"token {issued[0].id} ({label})"
            entries = [_entry("token_issued", code, detail, actor)]
            return Edit(current.agency, current.source, entries, issue=issued)

        await self.store.change(code, edit, actor=actor)
        await self.refresh()
        return issued[0], plain

    async def revoke_token(self, code: str, token_id: str, *, actor: str) -> None:
        """Revoke one of an agency's tokens: from the next request, it opens nothing."""
        code = agency_code(code)
        tokens = {t.id: t for t in await self.store.tokens(code)}
        if token_id not in tokens or tokens[token_id].revoked_at is not None:
            raise PermanentError(
                ErrorCode.REGISTRY_NOT_FOUND, f"{code} has no live token {token_id!r}"
            )

        def edit(current: EndpointRecord | None) -> Edit:
            current = present(code, current, None)
            entries = [_entry("token_revoked", code, f"token {token_id}", actor)]
            return Edit(current.agency, current.source, entries, revoke=[token_id])

        await self.store.change(code, edit, actor=actor)
        await self.refresh()

    async def load_settings_agencies(self, agencies: list[ServedAgency]) -> None:
        """Put the settings' agencies into the registry, and take out those the settings put
        there and no longer list. A record an integrator changed or removed since is the
        registry's now: the settings no longer override, remove nor restore it (a warning
        says so)."""
        removed = await self.store.removed()
        for agency in agencies:
            code = str(agency.code)
            if removed.get(code) is Source.REGISTRY:
                log.warning(
                    "%s: in the settings, but an integrator removed it from the registry; it "
                    "stays removed (register it again, or take it out of the settings)",
                    code,
                )
                continue

            def edit(current: EndpointRecord | None, agency: ServedAgency = agency) -> Edit | None:
                if (
                    current is not None
                    and current.problem is None
                    and with_secrets(current.agency) == with_secrets(agency)
                ):
                    return None
                if current is not None and current.source is Source.REGISTRY:
                    log.warning(
                        "%s: the settings differ from the registry, which an integrator "
                        "changed last; the registry's record stays",
                        current.code,
                    )
                    return None
                what = "added" if current is None else "changed"
                entry = _entry("endpoint_from_settings", str(agency.code), what, "daemon")
                return Edit(agency, Source.SETTINGS, [entry])

            await self.store.change(code, edit, actor="daemon")
        listed = {str(agency.code) for agency in agencies}
        for record in await self.store.endpoints():
            if record.source is Source.SETTINGS and record.code not in listed:
                await self.store.change(record.code, _dropped_from_settings, actor="daemon")
        await self.refresh()

    def _new_token(self, code: str, label: str, token: str | None) -> tuple[str, list[TokenRecord]]:
        check_token_text(label, token)
        plain = token or secrets.token_urlsafe(32)
        digest = token_digest(plain)
        if self.directory.configured_token(digest):
            raise PermanentError(
                ErrorCode.REGISTRY_TOKEN_REUSED,
                "that token is already in use (tokens are never shared, nor given out twice)",
            )
        record = TokenRecord(
            id=secrets.token_hex(6),
            digest=digest,
            agency=code,
            label=label,
            created_at=datetime.now(UTC),
            created_by="",  # the store records who, with the change
        )
        return plain, [record]


def _dropped_from_settings(current: EndpointRecord | None) -> Edit | None:
    """An agency the settings put in the registry, and no longer list: the operator removed
    it (one an integrator changed since is the registry's, and stays)."""
    if current is None or current.source is not Source.SETTINGS:
        return None
    entry = _entry("endpoint_removed", current.code, "no longer in the settings", "daemon")
    return Edit(None, current.source, [entry])


def _issued(token: TokenRecord) -> IssuedToken:
    return _issued_token(token.digest, token.agency, token.label)


@functools.lru_cache(maxsize=65_536)
def _issued_token(digest: str, agency: str, label: str) -> IssuedToken:
    # Made once per token, not at every registry change.
    client = Client(name=f"{agency}/{label}", agencies=[AgencyCode.parse(agency)])
    return IssuedToken(digest, client)


def _entry(outcome: str, code: str, detail: str, actor: str) -> AuditEntry:
    return AuditEntry(
        event=AuditEvent.ADMIN, outcome=outcome, recipient=code, detail=detail, actor=actor
    )

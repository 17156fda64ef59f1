"""The parts one daemon is made of, each built from the settings in one place: the store, the
audit log's signer, the registry, the pipeline over its bus, and the HTTP API.

``run`` composes them in order and takes them down in reverse; each builder here says what
its part needs, so a test or another composition (the demo) can build one part alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp import web
from yarl import URL

from lgsp_adapter.audit.rotation import keyring
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.bus.rabbitmq import RabbitBus
from lgsp_adapter.daemon.audit_duties import check_shared_key, record_start
from lgsp_adapter.daemon.bus_opening import opened_bus
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.metrics import Metrics, add_metrics_route
from lgsp_adapter.daemon.witnessing import witness_clients
from lgsp_adapter.errors import FatalError
from lgsp_adapter.exchange.dead_letters import DeadLetters
from lgsp_adapter.exchange.delivery import Deliverer
from lgsp_adapter.exchange.inbox import Inbox, release_stranded
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.exchange.receipts import ReceiptPusher
from lgsp_adapter.exchange.receiving import Receiver
from lgsp_adapter.exchange.relay import OnFinal, Relay
from lgsp_adapter.exchange.settling import Settler
from lgsp_adapter.exchange.signature_gate import SignatureGate
from lgsp_adapter.http.agency_list import add_agency_list_routes
from lgsp_adapter.http.app import make_app
from lgsp_adapter.http.audit import AuditAccess, add_audit_routes
from lgsp_adapter.http.audit_page import add_audit_page
from lgsp_adapter.http.axis_agencies import agency_operations
from lgsp_adapter.http.axis_documents import document_operations
from lgsp_adapter.http.axis_facade import add_axis_routes
from lgsp_adapter.http.axis_systems_admin import add_axis_systems_routes
from lgsp_adapter.http.axis_token import AxisTokens
from lgsp_adapter.http.dead_letters import add_dead_letter_routes
from lgsp_adapter.http.health import Health, add_health_routes
from lgsp_adapter.http.inbox import add_inbox_routes
from lgsp_adapter.http.rate_limit import RateLimiter
from lgsp_adapter.http.registry import add_registry_routes
from lgsp_adapter.registry.agency_list_admin import list_served_agencies
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.secret_box import SecretBox
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store import Store
from lgsp_adapter.store.opening import open_store

log = logging.getLogger(__name__)
# What runs the consumers until the event is set.
Consume = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def identity(settings: Settings) -> str:
    """Who the daemon is on the bus (its account and exchange): what its replicas share, and
    no other daemon may."""
    if settings.bus.url is None:
        return "the embedded bus"
    account = URL(settings.bus.url.get_secret_value()).user or "guest"
    return f"broker account {account} on exchange {settings.bus.exchange}"


async def opened_store(stack: AsyncExitStack, settings: Settings) -> Store:
    """The store, opened as its owner and claimed for this daemon's identity on the bus."""
    store = await open_store(
        settings.store.location(),
        owner=True,
        pool_size=settings.store.pool_size,
        migrate=settings.store.migrate_on_start,
    )
    stack.push_async_callback(store.close)
    await store.claim_for(identity(settings))
    return store


@dataclass(frozen=True, slots=True)
class Signer:
    """The audit log's signing key, and the rule for who signs with it."""

    store: Store
    key: LogKey
    key_path: Path

    @classmethod
    async def start(cls, store: Store, settings: Settings) -> Signer:
        """Load the key (made at the first start), record the start, and sign at once: a
        replica started beside this one with another key finds its checkpoints are not its
        key's, and refuses to run."""
        key_path = settings.audit.key_path(settings.store.path)
        key_created = not key_path.exists()
        key = LogKey.load_or_create(key_path, settings.audit.log_name())
        await check_shared_key(store.audit, key, key_path)
        await record_start(store.audit, settings, key, key_created=key_created)
        signer = cls(store, key, key_path)
        if await signer.may_sign():
            await store.audit.checkpoint(key)
        await check_shared_key(store.audit, key, key_path)
        return signer

    async def may_sign(self) -> bool:
        """One replica signs, and only with the log's key: replicas each given a key of their
        own (made at their first start) must not leave a log no one key verifies."""
        if not await self.store.take_role("checkpoints"):
            return False
        try:
            await check_shared_key(self.store.audit, self.key, self.key_path)
        except FatalError as exc:
            log.error("not signing: %s", exc.message)
            return False
        return True

    async def sign_last(self) -> None:
        """The checkpoint at a stop, so the log ends signed."""
        signed = await self.store.audit.checkpoint(self.key) if await self.may_sign() else None
        if signed is not None:
            log.info("audit log signed at size %d", signed.size)


async def started_registry(store: Store, settings: Settings) -> Registry:
    """The registry with the settings' agencies loaded, and the agency list kept listing
    whoever it serves after each change."""
    directory = settings.directory()
    registry = Registry(
        store.registry,
        directory,
        served_elsewhere=frozenset(str(a.code) for a in settings.known_agencies),
        budget=settings.attempt_budget(),
    )
    await registry.load_settings_agencies(list(settings.agencies))

    async def list_served(codes: list[str]) -> None:
        agencies = [a for code in directory.served_codes if (a := directory.served(code))]
        await list_served_agencies(store.agency_list, agencies, settings.known_agencies)

    await list_served([])
    registry.on_change(list_served)
    return registry


def http_session() -> aiohttp.ClientSession:
    """The session every request to agency systems goes out on. No cookie jar: one agency
    system's cookie must never ride along to another's."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The per-packet parts over one bus, wired to each other."""

    bus: EmbeddedBus | RabbitBus
    relay: Relay
    intake: Intake
    receipts: ReceiptPusher
    metrics: Metrics
    consume: Consume  # the bus's, with its handler
    announce: OnFinal  # tell a sender how a delivery ended outside the consumer
    release: Callable[[list[str]], Awaitable[None]]  # stranded pull deliveries, moved on
    gate: SignatureGate  # checks signatures before delivery, and for the pull inbox


async def composed_pipeline(
    stack: AsyncExitStack,
    settings: Settings,
    store: Store,
    registry: Registry,
    session: aiohttp.ClientSession,
) -> Pipeline:
    """Intake, relay, bus, receiver and settlement, and what follows a delivery's end."""
    directory = registry.directory
    receipts = ReceiptPusher(store=store, directory=directory, session=session)
    metrics = Metrics(store)
    store.observe(metrics.committed)

    async def ended(packet_id: UUID, recipient: str) -> None:  # a delivery sent from here
        await receipts.push(packet_id, recipient)
        await metrics.ended(packet_id, recipient)

    bus = await opened_bus(stack, settings, store, directory, ended)
    metrics.watch_bus(
        lambda: bus.connected, bus.queue_depths if isinstance(bus, RabbitBus) else None
    )
    registry.on_change(bus.serve, early=True)
    relay = Relay(store=store, bus=bus, on_final=ended, bridge_for=directory.bridge_for)
    await store.on_outbox(relay.wake.set)  # filled by another replica
    intake = Intake(
        store=store,
        directory=directory,
        limits=settings.limits,
        on_accept=relay.wake.set,
        outbox_budget_bytes=settings.store.outbox_budget_mb * 1_000_000,
        idempotency_window=timedelta(hours=settings.http.idempotency_window_h),
    )
    gate = SignatureGate(settings.signatures.checker(settings.limits))
    receiver = Receiver(
        store=store,
        directory=directory,
        deliverer=Deliverer(
            session=session,
            quick_retries=settings.delivery.quick_retries,
            quick_retry_delay_s=settings.delivery.quick_retry_delay_s,
        ),
        retry_delays_s=settings.delivery.retry_delays_s,
        intake=intake,
        gate=gate,
    )
    consume, announce = _consumption(bus, settings, store, registry, receiver, ended)

    async def release(codes: list[str]) -> None:  # an agency that stopped pulling
        if await store.take_role("relay"):  # one replica does it, not each
            await release_stranded(store, directory, bus, announce)

    registry.on_change(release)
    return Pipeline(bus, relay, intake, receipts, metrics, consume, announce, release, gate)


def _consumption(
    bus: EmbeddedBus | RabbitBus,
    settings: Settings,
    store: Store,
    registry: Registry,
    receiver: Receiver,
    ended: OnFinal,
) -> tuple[Consume, OnFinal]:
    """How the daemon consumes, and whom it tells that a delivery ended: through a Settler on
    RabbitMQ, where the sender may be another daemon; straight to the receiver on the embedded
    bus."""
    directory = registry.directory
    if isinstance(bus, RabbitBus):
        settler = Settler(
            store=store,
            directory=directory,
            carrier=bus,
            handler=receiver.handle,
            served=[str(code) for code in directory.served_codes],
            limits=settings.limits,
            on_final=ended,
        )
        registry.on_change(settler.serve, early=True)  # as the bus: before packets come in
        return functools.partial(bus.consume, settler), settler.announce_final
    # The embedded bus settles as it hands over: sender and recipient share this store.
    return functools.partial(bus.consume, receiver.handle), ended


async def _axis_parts(settings: Settings, registry: Registry) -> tuple[AxisSystems, AxisTokens]:
    """The axis facade's systems and tokens, sealed with the key file the store's secrets
    open (or the daemon does not start)."""
    key_file = settings.axis.key_path(settings.store.path)
    box = SecretBox.at(key_file)
    axis_systems = AxisSystems(registry, box)
    await axis_systems.check_key(str(key_file))
    await axis_systems.reload()
    return axis_systems, AxisTokens(box)


async def built_app(
    stack: AsyncExitStack,
    settings: Settings,
    store: Store,
    registry: Registry,
    session: aiohttp.ClientSession,
    pipeline: Pipeline,
    signer: Signer,
) -> web.Application:
    """The HTTP API: packets, and every other area mounted beside them."""
    directory = registry.directory
    access = AuditAccess(
        log=store.audit,
        key=signer.key,
        archive_dir=settings.audit.archive_folder(settings.store.path),
        trusted=keyring(signer.key_path, settings.audit.log_name()),
        witnesses=tuple(witness_clients(settings)),
    )
    stack.push_async_callback(access.close)
    bus = pipeline.bus
    health = Health(
        store=store,
        bus_connected=lambda: bus.connected,
        bus_name="embedded" if settings.bus.url is None else "rabbitmq",
        outbox_budget_bytes=settings.store.outbox_budget_mb * 1_000_000,
        **({"missing_consumers": bus.missing_consumers} if isinstance(bus, RabbitBus) else {}),
    )
    dead_letters = DeadLetters(
        store=store,
        directory=directory,
        wake=pipeline.relay.wake.set,
        tell_sender=pipeline.announce,
        tell_own_system=pipeline.receipts.push,
    )
    inbox = Inbox(store=store, directory=directory, announce=pipeline.announce, gate=pipeline.gate)
    axis_systems, axis_tokens = await _axis_parts(settings, registry)
    mount = functools.partial(
        mount_api,
        access=access,
        inbox=inbox,
        axis_systems=axis_systems,
        axis_tokens=axis_tokens,
        axis_window_s=settings.axis.timestamp_window_s,
        axis_max_file_bytes=settings.axis.max_file_mb * 1_000_000,
        store=store,
        registry=registry,
        session=session,
        health=health,
        dead_letters=dead_letters,
        metrics=pipeline.metrics,
    )
    return make_app(
        store=store,
        directory=directory,
        intake=pipeline.intake,
        max_bytes=settings.limits.max_bytes,
        limiter=RateLimiter(settings.http.requests_per_second, settings.http.burst),
        body_timeout_s=settings.http.body_timeout_s,
        mount=mount,
    )


def mount_api(
    app: web.Application,
    *,
    access: AuditAccess,
    inbox: Inbox,
    store: Store,
    registry: Registry,
    session: aiohttp.ClientSession,
    health: Health,
    dead_letters: DeadLetters,
    metrics: Metrics,
    axis_systems: AxisSystems,
    axis_tokens: AxisTokens,
    axis_window_s: float | None = None,
    axis_max_file_bytes: int | None = None,
) -> None:
    """Every part of the API beyond packets: health and metrics, audit log and page, inbox,
    agency list, registry, dead letters, the national axis' protocol."""
    add_health_routes(app, health)
    add_metrics_route(app, metrics)
    add_audit_routes(app, access)
    add_audit_page(app)
    add_inbox_routes(app, inbox)
    add_agency_list_routes(app, store)
    add_registry_routes(app, registry, session)
    add_dead_letter_routes(app, dead_letters)
    add_axis_systems_routes(app, axis_systems)
    operations = {**document_operations(), **agency_operations()}
    add_axis_routes(
        app,
        axis_systems,
        inbox,
        operations,
        axis_tokens,
        timestamp_window_s=axis_window_s,
        max_file_bytes=axis_max_file_bytes,
    )

"""One lgsp-adapter process: the HTTP API, the outbox relay and the bus consumer, over one store.

Start-up opens the store, then the HTTP session, bus and server, in that order; shutdown
reverses it. On a stop request the daemon first stops taking packets (the HTTP server closes),
then lets deliveries in hand finish for ``daemon.drain_s``, then closes everything in order.
Nothing is lost either way: what is not finished is in the store, and is picked up at restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from uuid import UUID

import aiohttp
from aiohttp import web
from yarl import URL

from lgsp_adapter.audit.rotation import keyring
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.bus.rabbitmq import RabbitBus
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.audit_duties import check_shared_key, record_start, sign_periodically
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.metrics import Metrics, add_metrics_route
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.exchange.dead_letters import DeadLetters
from lgsp_adapter.exchange.delivery import Deliverer
from lgsp_adapter.exchange.inbox import Inbox, release_stranded
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.exchange.receipts import ReceiptPusher
from lgsp_adapter.exchange.receiving import Receiver
from lgsp_adapter.exchange.relay import Relay
from lgsp_adapter.http.agency_list import add_agency_list_routes
from lgsp_adapter.http.app import make_app
from lgsp_adapter.http.audit import AuditAccess, add_audit_routes
from lgsp_adapter.http.audit_page import add_audit_page
from lgsp_adapter.http.dead_letters import add_dead_letter_routes
from lgsp_adapter.http.health import Health, add_health_routes
from lgsp_adapter.http.inbox import add_inbox_routes
from lgsp_adapter.http.rate_limit import RateLimiter
from lgsp_adapter.http.registry import add_registry_routes
from lgsp_adapter.registry.agencies import Role
from lgsp_adapter.registry.agency_list_admin import list_served_agencies
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store import Store
from lgsp_adapter.store.opening import open_store

log = logging.getLogger(__name__)


def check_servable(settings: Settings) -> None:
    """Refuse, before anything starts, settings this daemon cannot run."""
    if not settings.agencies and not any(c.role is Role.INTEGRATOR for c in settings.clients):
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            "no [[agencies]] and no integrator client: this daemon serves nobody, and nobody "
            "could register an agency with it",
        )
    settings.http.ssl_context()  # its files, read now: a bad path stops the start, not a client


def _identity(settings: Settings) -> str:
    """Who the daemon is on the bus (its account and exchange): what its replicas share, and
    no other daemon may."""
    if settings.bus.url is None:
        return "the embedded bus"
    account = URL(settings.bus.url.get_secret_value()).user or "guest"
    return f"broker account {account} on exchange {settings.bus.exchange}"


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
) -> None:
    """Every part of the API beyond packets: health and metrics, audit log and page, inbox,
    agency list, registry, dead letters."""
    add_health_routes(app, health)
    add_metrics_route(app, metrics)
    add_audit_routes(app, access)
    add_audit_page(app)
    add_inbox_routes(app, inbox)
    add_agency_list_routes(app, store)
    add_registry_routes(app, registry, session)
    add_dead_letter_routes(app, dead_letters)


async def run_daemon(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run until ``stop`` is set; ``on_ready`` gets the HTTP base URL once serving."""
    check_servable(settings)
    async with AsyncExitStack() as stack:
        store = await open_store(
            settings.store.location(),
            owner=True,
            pool_size=settings.store.pool_size,
            migrate=settings.store.migrate_on_start,
        )
        stack.push_async_callback(store.close)
        await store.claim_for(_identity(settings))
        key_path = settings.audit.key_path(settings.store.path)
        key_created = not key_path.exists()
        key = LogKey.load_or_create(key_path, settings.audit.log_name())
        await check_shared_key(store.audit, key, key_path)
        await record_start(store.audit, settings, key, key_created=key_created)

        async def may_sign() -> bool:
            """One replica signs, and only with the log's key: replicas each given a key of
            their own (made at their first start) must not leave a log no one key verifies."""
            if not await store.take_role("checkpoints"):
                return False
            try:
                await check_shared_key(store.audit, key, key_path)
            except FatalError as exc:
                log.error("not signing: %s", exc.message)
                return False
            return True

        if await may_sign():  # at once: a replica started beside this one with another key
            await store.audit.checkpoint(key)  # finds its checkpoints are not its key's
        await check_shared_key(store.audit, key, key_path)
        directory = settings.directory()
        registry = Registry(
            store.registry,
            directory,
            served_elsewhere=frozenset(str(a.code) for a in settings.known_agencies),
        )
        await registry.load_settings_agencies(list(settings.agencies))

        async def list_served(codes: list[str]) -> None:
            agencies = [a for code in directory.served_codes if (a := directory.served(code))]
            await list_served_agencies(store.agency_list, agencies, settings.known_agencies)

        await list_served([])
        registry.on_change(list_served)
        # No cookie jar: one agency system's cookie must never ride along to another's.
        session = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        served = [str(code) for code in directory.served_codes]
        receipts = ReceiptPusher(store=store, directory=directory, session=session)
        metrics = Metrics(store)
        store.observe(metrics.committed)

        async def ended(packet_id: UUID, recipient: str) -> None:  # a delivery sent from here
            await receipts.push(packet_id, recipient)
            await metrics.ended(packet_id, recipient)

        bus: EmbeddedBus | RabbitBus
        if settings.bus.url is None:
            if not await store.take_role("embedded-bus"):
                raise FatalError(
                    ErrorCode.CONFIG_INVALID,
                    "another daemon runs the embedded bus on this database; replicas sharing "
                    "a store need RabbitMQ (bus.url)",
                )
            bus = EmbeddedBus(
                store=store,
                served=served,
                prefetch=settings.bus.prefetch,
                on_final=ended,
            )
        else:
            bus = await stack.enter_async_context(
                RabbitBus(
                    url=settings.bus.url.get_secret_value(),
                    topology=Topology(settings.bus.exchange),
                    store=store,
                    served=served,
                    prefetch=settings.bus.prefetch,
                    retry_delays_s=settings.delivery.retry_delays_s,
                    connection_name=f"lgsp-adapter {','.join(served)}",
                    directory=directory,
                    limits=settings.limits,
                    on_final=ended,
                    cluster_nodes=settings.bus.cluster_nodes,
                    consumer_watch_s=settings.daemon.consumer_watch_s,
                    declare_topology=settings.bus.declare,
                )
            )
        metrics.watch_bus(
            lambda: bus.connected, bus.queue_depths if isinstance(bus, RabbitBus) else None
        )
        registry.on_change(bus.serve, early=True)

        async def release(codes: list[str]) -> None:  # an agency that stopped pulling
            if await store.take_role("relay"):  # one replica does it, not each
                await release_stranded(store, directory, bus)

        registry.on_change(release)
        relay = Relay(store=store, bus=bus)
        await store.on_outbox(relay.wake.set)  # filled by another replica
        intake = Intake(
            store=store,
            directory=directory,
            limits=settings.limits,
            on_accept=relay.wake.set,
            outbox_budget_bytes=settings.store.outbox_budget_mb * 1_000_000,
        )
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
        )
        access = AuditAccess(
            log=store.audit,
            key=key,
            archive_dir=settings.audit.archive_folder(settings.store.path),
            trusted=keyring(key_path, settings.audit.log_name()),
        )
        stack.push_async_callback(access.close)

        inbox = Inbox(store=store, directory=directory, announce=bus.announce_final)

        app = make_app(
            store=store,
            directory=directory,
            intake=intake,
            max_bytes=settings.limits.max_bytes,
            limiter=RateLimiter(settings.http.requests_per_second, settings.http.burst),
            body_timeout_s=settings.http.body_timeout_s,
            mount=functools.partial(
                mount_api,
                access=access,
                inbox=inbox,
                store=store,
                registry=registry,
                session=session,
                metrics=metrics,
                dead_letters=DeadLetters(
                    store=store,
                    directory=directory,
                    wake=relay.wake.set,
                    tell_sender=bus.announce_final,
                    tell_own_system=receipts.push,
                ),
                health=Health(
                    store=store,
                    bus_connected=lambda: bus.connected,
                    bus_name="embedded" if settings.bus.url is None else "rabbitmq",
                    outbox_budget_bytes=settings.store.outbox_budget_mb * 1_000_000,
                    **(
                        {"missing_consumers": bus.missing_consumers}
                        if isinstance(bus, RabbitBus)
                        else {}
                    ),
                ),
            ),
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        tls = settings.http.ssl_context()
        site = web.TCPSite(runner, settings.http.host, settings.http.port, ssl_context=tls)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"{'https' if tls else 'http'}://{host}:{port}"
        carrier = (
            "embedded bus" if settings.bus.url is None else f"RabbitMQ {settings.bus.exchange}"
        )
        log.info(
            "serving %s on %s (%s, store %s)",
            registry.served_text(),
            url,
            carrier,
            "PostgreSQL" if settings.store.url is not None else settings.store.path,
        )

        await release([])
        stopping = asyncio.Event()
        workers = [
            asyncio.create_task(relay.run(stopping), name="relay"),
            asyncio.create_task(bus.consume(receiver.handle, stopping), name="consumer"),
            asyncio.create_task(
                sign_periodically(
                    store.audit,
                    key,
                    settings.audit.checkpoint_interval_s,
                    stopping,
                    may_sign=may_sign,
                ),
                name="checkpoints",
            ),
            asyncio.create_task(
                registry.watch(stopping, settings.daemon.registry_poll_s), name="registry"
            ),
        ]
        if on_ready is not None:
            on_ready(url)
        await stop.wait()

        log.info("stopping: no new packets; deliveries in hand have %g s", settings.daemon.drain_s)
        await runner.cleanup()
        stopping.set()
        done, pending = await asyncio.wait(workers, timeout=settings.daemon.drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
        signed = await store.audit.checkpoint(key) if await may_sign() else None
        if signed is not None:
            log.info("audit log signed at size %d", signed.size)
        log.info("stopped")

"""One lgsp-adapter process: the HTTP API, the outbox relay, the bus consumer and the poller of
upstream national axes, over one store.

Start-up opens the store, then the log's signer, the registry, the HTTP session, the pipeline
over its bus and the HTTP server, in that order (``parts`` builds each); shutdown reverses it.
On a stop request the daemon first stops taking packets (the HTTP server closes), then lets
deliveries in hand finish for ``daemon.drain_s``, then closes everything in order. Nothing is
lost either way: what is not finished is in the store, and is picked up at restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack

from aiohttp import web

from lgsp_adapter.daemon import parts, witnessing
from lgsp_adapter.daemon.audit_duties import sign_periodically
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.exchange.axis_poller import AxisPoller
from lgsp_adapter.http.bad_requests import quiet_malformed_requests
from lgsp_adapter.registry.agencies import Role
from lgsp_adapter.registry.service import Registry

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


async def run_daemon(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run until ``stop`` is set; ``on_ready`` gets the HTTP base URL once serving."""
    check_servable(settings)
    async with AsyncExitStack() as stack:
        store = await parts.opened_store(stack, settings)
        signer = await parts.Signer.start(store, settings)
        registry = await parts.started_registry(store, settings)
        session = await stack.enter_async_context(parts.http_session())
        pipeline = await parts.composed_pipeline(stack, settings, store, registry, session)
        app = await parts.built_app(stack, settings, store, registry, session, pipeline, signer)
        witnessing.mount_witness(app, settings, store.audit)
        runner, url = await _serve(app, settings)
        _say_serving(settings, registry, url)

        await pipeline.release([])
        stopping = asyncio.Event()
        workers = [
            asyncio.create_task(pipeline.relay.run(stopping), name="relay"),
            asyncio.create_task(pipeline.consume(stopping), name="consumer"),
            asyncio.create_task(
                sign_periodically(
                    store.audit,
                    signer.key,
                    settings.audit.checkpoint_interval_s,
                    stopping,
                    may_sign=signer.may_sign,
                ),
                name="checkpoints",
            ),
            asyncio.create_task(
                registry.watch(stopping, settings.daemon.registry_poll_s), name="registry"
            ),
            asyncio.create_task(
                witnessing.cosign_periodically(
                    store.audit,
                    witnessing.witness_clients(settings),
                    session,
                    settings.audit.checkpoint_interval_s,
                    stopping,
                ),
                name="witnesses",
            ),
            asyncio.create_task(
                AxisPoller(
                    store=store,
                    intake=pipeline.intake,
                    directory=registry.directory,
                    session=session,
                    interval_s=settings.axis.poll_s,
                    sync_interval_s=settings.axis.sync_agencies_s,
                    hold_give_up_s=settings.axis.hold_s,
                ).run(stopping),
                name="axis-poller",
            ),
        ]
        if on_ready is not None:
            on_ready(url)
        await stop.wait()

        log.info("stopping: no new packets; deliveries in hand have %g s", settings.daemon.drain_s)
        await runner.cleanup()
        stopping.set()
        await _drain(workers, settings.daemon.drain_s)
        await signer.sign_last()
        log.info("stopped")


async def _serve(app: web.Application, settings: Settings) -> tuple[web.AppRunner, str]:
    """The HTTP server, listening; returns it and its base URL."""
    quiet_malformed_requests()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = settings.http.ssl_context()
    site = web.TCPSite(runner, settings.http.host, settings.http.port, ssl_context=tls)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"{'https' if tls else 'http'}://{host}:{port}"


def _say_serving(settings: Settings, registry: Registry, url: str) -> None:
    carrier = "embedded bus" if settings.bus.url is None else f"RabbitMQ {settings.bus.exchange}"
    log.info(
        "serving %s on %s (%s, store %s)",
        registry.served_text(),
        url,
        carrier,
        "PostgreSQL" if settings.store.url is not None else settings.store.path,
    )


async def _drain(workers: list[asyncio.Task[None]], drain_s: float) -> None:
    """Give the workers ``drain_s`` to finish what they hold, then cancel the rest."""
    done, pending = await asyncio.wait(workers, timeout=drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error", task.get_name(), exc_info=task.exception())

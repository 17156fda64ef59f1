"""``/healthz`` and ``/readyz``: is the process alive, and can it take packets now.

Ready has three answers. ``ready``: store and bus are there. ``degraded`` (still 200): the bus
is away, and accepted packets wait in the store's outbox to be published when it returns
(store-and-forward) — the daemon keeps its promise, so a load balancer should keep sending.
``unready`` (503): the store cannot be read, the outbox has less than 5 % of its budget left
and submissions are being refused until the bus takes some, or an agency served here has no
consumer attached on RabbitMQ (its queue was deleted, say) until the watchdog attaches one.
No token is needed: probes carry none, and the answer holds counts, not packets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lgsp_adapter.store import Store

log = logging.getLogger(__name__)


async def _none_missing() -> list[str]:
    return []  # the embedded bus has no consumers to lose


@dataclass(frozen=True)
class Health:
    """What readiness looks at."""

    store: Store
    bus_connected: Callable[[], bool]
    bus_name: str
    outbox_budget_bytes: int
    missing_consumers: Callable[[], Awaitable[list[str]]] = _none_missing

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the report."""
        try:
            packets, size = await self.store.outbox_size()
        except Exception as exc:  # the store's file or database is gone
            log.exception("readiness: the store cannot be read")
            return 503, {"status": "unready", "store": f"unreadable: {type(exc).__name__}"}
        connected = self.bus_connected()
        report: dict[str, Any] = {
            "store": "ok",
            "bus": {"kind": self.bus_name, "connected": connected},
            "outbox": {
                "packets": packets,
                "bytes": size,
                "budget_bytes": self.outbox_budget_bytes,
            },
        }
        if size > self.outbox_budget_bytes * 0.95:
            return 503, {"status": "unready", **report, "why": "the outbox is (all but) full"}
        missing = await self.missing_consumers()
        if missing:
            why = f"no consumer attached for {', '.join(missing)}; the watchdog attaches them"
            return 503, {"status": "unready", **report, "why": why}
        if not connected:
            why = "the bus is away; packets wait in the outbox"
            return 200, {"status": "degraded", **report, "why": why}
        return 200, {"status": "ready", **report}


HEALTH: web.AppKey[Health] = web.AppKey("health", Health)


async def alive(request: web.Request) -> web.Response:
    """``GET /healthz``: the process answers."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """``GET /readyz``: see the module's docstring."""
    status, report = await request.app[HEALTH].readiness()
    return web.json_response(report, status=status)


def add_health_routes(app: web.Application, health: Health) -> None:
    """Mount ``/healthz`` and ``/readyz``."""
    app[HEALTH] = health
    app.router.add_get("/healthz", alive)
    app.router.add_get("/readyz", ready)

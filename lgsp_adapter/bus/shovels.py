"""The shovels that carry a bridge's queue to the far bus, declared through RabbitMQ's
management API (``PUT /api/parameters/shovel/<vhost>/<name>``) from the settings.

A shovel is the broker's own at-least-once link: it consumes the bridge's queue on this broker
and publishes to the far bus's arrivals exchange with publisher confirms, acknowledging here
only once the far broker confirmed (``ack-mode on-confirm``), reconnecting by itself when the
link breaks. Keeping the routing key as it is, it lands in the far bus's queue of the
recipient's code; the far broker sets ``user_id`` to the account the shovel publishes with
there (it would refuse the original publisher's), and ``x-shovelled`` records each hop.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp

from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.registry.bridges import Bridge

log = logging.getLogger(__name__)
TIMEOUT = aiohttp.ClientTimeout(total=20)
RECONNECT_DELAY_S = 5


def shovel_name(topology: Topology, bridge: Bridge) -> str:
    """The shovel's name on this broker: the bridge's queue's."""
    return f"{topology.exchange}.bridge.{bridge.name}"


def definition(topology: Topology, bridge: Bridge) -> dict[str, Any]:
    """The dynamic shovel of ``bridge``: its queue here to the far bus's arrivals exchange."""
    return {
        # No host: the broker connects to itself directly, as the account that declared it.
        "src-uri": "amqp://",
        "src-queue": topology.agency_queue(bridge.key),
        "dest-uri": erlang_uri(bridge.url.get_secret_value()),
        "dest-exchange": f"{bridge.exchange}.arrivals",
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": RECONNECT_DELAY_S,
        "dest-add-forward-headers": True,
        "dest-publish-properties": {"user_id": bridge.far_user},
    }


def erlang_uri(url: str) -> str:
    """``url`` as RabbitMQ's Erlang client reads it: there ``amqp://host/`` is the vhost named
    "" and only ``/%2F`` the default one, which AMQP clients in Python take ``/`` to mean."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/%2F")
    return urlunsplit(parts)


@dataclass(frozen=True)
class ShovelState:
    """A shovel as the broker reports it: ``running``, ``starting`` (reconnecting),
    ``terminated`` (with the broker's reason)."""

    name: str
    state: str
    reason: str | None = None


class Management:
    """The broker's management API, for the shovels of this exchange's bridges."""

    def __init__(self, url: str, session: aiohttp.ClientSession, vhost: str = "/") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.username:
            raise FatalError(
                ErrorCode.CONFIG_INVALID,
                "the management url is http[s]://account:password@host:15672/",
            )
        port = f":{parts.port}" if parts.port else ""
        self._base = urlunsplit((parts.scheme, f"{parts.hostname}{port}", "/api", "", ""))
        credentials = (unquote(parts.username), unquote(parts.password or ""))
        self._headers = {"Authorization": aiohttp.encode_basic_auth(*credentials)}
        self._session = session
        self._vhost = quote(vhost, safe="")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self._base}{path}"
        try:
            async with self._session.request(
                method, url, json=body, headers=self._headers, timeout=TIMEOUT
            ) as response:
                if response.status == 404 and method in ("GET", "DELETE"):
                    return None
                if response.status >= 400:
                    text = re.sub(r"//[^/@\s\"]*@", "//***@", (await response.text())[:300])
                    raise FatalError(
                        ErrorCode.BUS_TOPOLOGY_MISSING,
                        f"the broker's management API refused {method} {path} "
                        f"({response.status}): {text}",
                    )
                return await response.json() if response.status == 200 else None
        except aiohttp.ClientError as exc:
            raise FatalError(
                ErrorCode.BUS_TOPOLOGY_MISSING,
                f"cannot reach the broker's management API at {self._base}: {exc}",
            ) from exc

    async def declare(self, topology: Topology, bridges: list[Bridge]) -> list[str]:
        """Every enabled bridge's shovel as the settings say (idempotent), and those of bridges
        removed or disabled since removed; the names declared."""
        wanted = {shovel_name(topology, b): b for b in bridges if b.enabled}
        for name, bridge in sorted(wanted.items()):
            body = {"value": definition(topology, bridge)}
            await self._call("PUT", f"/parameters/shovel/{self._vhost}/{quote(name)}", body)
            log.info("bridge %s: shovel %s to %s", bridge.name, name, bridge.far_address)
        prefix = f"{topology.exchange}.bridge."
        for parameter in await self._call("GET", f"/parameters/shovel/{self._vhost}") or []:
            name = str(parameter.get("name", ""))
            if name.startswith(prefix) and name not in wanted:
                await self._call("DELETE", f"/parameters/shovel/{self._vhost}/{quote(name)}")
                log.info("shovel %s removed: its bridge is gone or disabled", name)
        return sorted(wanted)

    async def states(self, topology: Topology) -> list[ShovelState]:
        """This exchange's shovels as the broker runs them."""
        prefix = f"{topology.exchange}.bridge."
        found = await self._call("GET", f"/shovels/{self._vhost}") or []
        return [
            ShovelState(str(s["name"]), str(s.get("state")), s.get("reason"))
            for s in found
            if str(s.get("name", "")).startswith(prefix)
        ]

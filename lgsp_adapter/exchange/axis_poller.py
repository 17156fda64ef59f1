"""Taking in what a national axis holds for us: the receiving half of the axis connector.

The agencies served here in ``axis`` mode are reached through an axis; this daemon is, to that
axis, an agency system with a system id and a secret. It polls the axis as such a system does
(received list, ``getEdoc``, ``updateStatus``), hands each packet to the intake as a submission
of those agencies, and tells the axis ``done`` once it is durable here, or ``fail`` when the
intake refuses it (audited there, and the axis tells its sender).

Nothing is taken in twice: a packet's id here is derived from the axis and its ``DocId``, so a
packet fetched again (the daemon died before ``updateStatus``, or the answer was lost) is found
already kept and only acknowledged again. Nothing is lost: the axis keeps listing a packet until
it hears ``done``, and we say ``done`` only after the commit. One replica polls at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.errors import LgspError, PermanentError
from lgsp_adapter.exchange.axis_client import AxisClient
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.axis_wire import MessageType, TransportStatus
from lgsp_adapter.registry.agencies import Client, DeliveryMode, Directory, ServedAgency
from lgsp_adapter.registry.agency_list import Agency, ImportReport
from lgsp_adapter.registry.endpoint_auth import AxisAuth
from lgsp_adapter.store import Store

log = logging.getLogger(__name__)

ROLE = "axis-poller"
_IDS = uuid.UUID("8f5d3f3e-6a4f-4c1e-9a51-4c6a0b1d2e7f")  # our namespace for packets from an axis


@dataclass(frozen=True, slots=True)
class Upstream:
    """One axis as this daemon reaches it: its URL, our system there, and the agencies served
    here that it stands for."""

    url: str
    system_id: str
    secret: str = field(repr=False)
    codes: tuple[str, ...] = ()

    @property
    def client(self) -> Client:
        """Who its packets are submitted as: the agencies it stands for, and only those."""
        name = f"axis-upstream/{self.system_id}"
        return Client(name=name, agencies=[AgencyCode.parse(code) for code in self.codes])

    def packet_id(self, doc_id: str) -> uuid.UUID:
        """The id a packet fetched from this axis has here, the same however often fetched."""
        return uuid.uuid5(_IDS, f"{self.url}\n{self.system_id}\n{doc_id}")


def upstreams(agencies: Iterable[ServedAgency]) -> list[Upstream]:
    """The axes the served ``axis``-mode agencies are reached through, one per URL and system."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for agency in agencies:
        auth = agency.endpoint.auth
        if agency.endpoint.mode is DeliveryMode.AXIS and isinstance(auth, AxisAuth):
            key = (str(agency.endpoint.url), auth.system_id, auth.secret.get_secret_value())
            grouped.setdefault(key, []).append(str(agency.code))
    return [Upstream(u, s, secret, tuple(sorted(c))) for (u, s, secret), c in grouped.items()]


class AxisPoller:
    """Polls every upstream axis for packets, and keeps the agency list in step with theirs."""

    def __init__(
        self,
        *,
        store: Store,
        intake: Intake,
        directory: Directory,
        session: aiohttp.ClientSession,
        interval_s: float = 10.0,
        sync_interval_s: float = 3600.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._store = store
        self._intake = intake
        self._directory = directory
        self._session = session
        self.interval_s = interval_s
        self.sync_interval_s = sync_interval_s
        self._timeout_s = timeout_s
        self._synced_at: dict[tuple[str, str], float] = {}

    def upstreams(self) -> list[Upstream]:
        """The upstreams as the registry says now."""
        served = (self._directory.served(code) for code in self._directory.served_codes)
        return upstreams(agency for agency in served if agency is not None and agency.enabled)

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set; an axis away is tried again at the next round."""
        while not stopping.is_set():
            if await self._store.take_role(ROLE):
                for upstream in self.upstreams():
                    try:
                        await self.poll(upstream)
                        await self._sync_if_due(upstream)
                    except LgspError as exc:
                        log.warning("axis %s: %s; polled again later", upstream.url, exc.message)
                    except Exception:
                        log.exception("axis %s: polling failed; polled again later", upstream.url)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.interval_s)

    def _client(self, upstream: Upstream) -> AxisClient:
        return AxisClient(
            upstream.url,
            system_id=upstream.system_id,
            secret=upstream.secret,
            session=self._session,
            timeout_s=self._timeout_s,
        )

    async def poll(self, upstream: Upstream) -> int:
        """One look at what the axis holds for us; how many packets were taken in (or
        acknowledged again)."""
        client = self._client(upstream)
        taken = 0
        seen: set[str] = set()  # an axis that lists a packet under both types: taken once
        for message_type in (MessageType.EDOC, MessageType.STATUS):
            for item in await client.received(message_type):
                doc_id = str(item.get("docId") or "").strip()
                if doc_id and doc_id not in seen:
                    seen.add(doc_id)
                    try:
                        taken += await self._take(client, upstream, doc_id)
                    except LgspError as exc:  # this one, not the ones listed after it
                        log.warning("axis %s: %s not taken: %s", upstream.url, doc_id, exc.message)
        return taken

    async def _take(self, client: AxisClient, upstream: Upstream, doc_id: str) -> bool:
        packet_id = upstream.packet_id(doc_id)
        if await self._store.facts(packet_id) is None:
            data = await client.get_edoc(doc_id)
            try:
                await self._intake.submit(
                    data, content_type=None, client=upstream.client, packet_id=packet_id
                )
            except PermanentError as exc:  # refused, and audited by the intake
                log.warning("axis %s: %s refused: %s", upstream.url, doc_id, exc.message)
                await client.update_status(doc_id, TransportStatus.FAIL)
                return False
        await client.update_status(doc_id, TransportStatus.DONE)
        return True

    async def _sync_if_due(self, upstream: Upstream) -> None:
        key = (upstream.url, upstream.system_id)
        now = asyncio.get_running_loop().time()
        if key in self._synced_at and now - self._synced_at[key] < self.sync_interval_s:
            return
        await self.sync_agencies(upstream)
        self._synced_at[key] = now

    async def sync_agencies(self, upstream: Upstream) -> int:
        """Merge the axis' agency list (``getSynchronizeUnit``) into ours: names, parents and
        deletions for "who can I send to". How many agencies it listed."""
        units = await self._client(upstream).synchronize_units()
        codes = {str(unit.get("id")): str(unit.get("code")) for unit in units}
        agencies = []
        for unit in units:
            code = AgencyCode.read(str(unit.get("code") or "")).code
            if code is None:
                continue  # the axis lists a few codes of no standard shape; not routable
            parent = codes.get(str(unit.get("pid") or ""), str(unit.get("pid") or "")) or None
            agencies.append(
                Agency(
                    code=str(code),
                    name=str(unit.get("name") or code),
                    parent=parent if parent and AgencyCode.read(parent).code else None,
                    mail=str(unit.get("mail") or "") or None,
                    deleted=unit.get("deleted") is True,
                    source="axis",
                )
            )

        def entries(report: ImportReport) -> list[AuditEntry]:
            return [
                AuditEntry(
                    event=AuditEvent.ADMIN,
                    outcome="agencies_synchronised",
                    detail=f"from the axis at {upstream.url}: {report.summary()}"[:500],
                    actor=f"axis-upstream/{upstream.system_id}",
                )
            ]

        await self._store.agency_list.merge(agencies, entries)
        return len(units)

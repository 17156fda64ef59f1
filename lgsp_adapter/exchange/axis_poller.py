"""Taking in what a national axis holds for us: the receiving half of the axis connector.

The agencies served here in ``axis`` mode are reached through an axis; this daemon is, to that
axis, an agency system with a system id and a secret. It polls the axis as such a system does
(received list, ``getEdoc``, ``updateStatus``), hands each packet to the intake as a submission
of those agencies, and tells the axis ``done`` once it is durable here, or ``fail`` when the
intake refuses the packet itself (audited there, and the axis tells its sender).

A packet goes only to its recipients this exchange reaches otherwise than through that axis:
the axis delivers to its other recipients itself. A refusal that comes of the registry here
(its sender or recipient disabled here, or not registered at all) is not the sender's fault:
the packet is left on the axis, tried again at waits doubling up to an hour, and goes through
once the registry is mended.

Nothing is taken in twice: a packet's id here is derived from the axis and its ``DocId``, so a
packet fetched again (the daemon died before ``updateStatus``, or the answer was lost) is found
already kept and only acknowledged again. Nothing is lost: the axis keeps listing a packet until
it hears ``done``, and we say ``done`` only after the commit. One replica polls at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError
from lgsp_adapter.exchange.axis_client import AxisClient
from lgsp_adapter.exchange.axis_holds import GIVE_UP_S, Holds
from lgsp_adapter.exchange.axis_units import merge_units
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.exchange.schedule import FIRST_WAIT_S, Schedule
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.axis_wire import MessageType, TransportStatus
from lgsp_adapter.registry.agencies import Client, DeliveryMode, Endpoint, ServedAgency
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.endpoint_auth import AxisAuth
from lgsp_adapter.registry.routes import Route
from lgsp_adapter.store import Store
from lgsp_adapter.store.records import PacketIdTaken

log = logging.getLogger(__name__)

ROLE = "axis-poller"
# Refusals that come of the registry here, not of the packet (see AxisPoller._our_fault).
_REGISTRY_FAULTS = {
    ErrorCode.AUTH_FORBIDDEN,  # its sender disabled here, or no longer served
    ErrorCode.PACKET_RECIPIENT_DISABLED,
    ErrorCode.PACKET_UNKNOWN_RECIPIENT,  # none of its recipients served here
}
_IDS = uuid.UUID("8f5d3f3e-6a4f-4c1e-9a51-4c6a0b1d2e7f")  # our namespace for packets from an axis


@dataclass(frozen=True, slots=True)
class Upstream:
    """One axis as this daemon reaches it: its URL, our system there, and the agencies served
    here that it stands for (disabled ones too: their packets wait rather than fail)."""

    url: str
    system_id: str
    secrets: frozenset[str] = field(repr=False)
    codes: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()  # the code patterns of routes through it

    @property
    def secret(self) -> str:
        """Our secret there: the one its enabled agencies' entries give (see ``agreed``)."""
        return next(iter(self.secrets))

    @property
    def agreed(self) -> bool:
        """Whether its enabled agencies' entries give one secret. They disagree while an
        integrator changes it one agency at a time: polling waits, since one is wrong."""
        return len(self.secrets) == 1

    def reaches(self, agency: ServedAgency) -> bool:
        """Whether ``agency`` is reached through this same axis (as whichever system): the
        axis delivers a packet's copy for it itself."""
        endpoint = agency.endpoint
        return endpoint.mode is DeliveryMode.AXIS and _same_url(str(endpoint.url), self.url)

    @property
    def client(self) -> Client:
        """Who its packets are submitted as: the agencies it stands for, and only those."""
        name = f"axis-upstream/{self.system_id}"
        agencies = [AgencyCode.parse(code) for code in self.codes]
        return Client(name=name, agencies=agencies, ranges=list(self.ranges))

    def packet_id(self, doc_id: str) -> uuid.UUID:
        """The id a packet fetched from this axis has here, the same however often fetched."""
        return uuid.uuid5(_IDS, f"{self.url}\n{self.system_id}\n{doc_id}")


def upstreams(agencies: Iterable[ServedAgency], routes: Iterable[Route] = ()) -> list[Upstream]:
    """The axes the served ``axis``-mode agencies and routes are reached through, one per URL
    and system id, with the secrets their enabled entries give (a disabled one's may be
    stale): none when all are disabled."""
    grouped: dict[tuple[str, str], tuple[set[str], list[str], list[str]]] = {}
    urls: dict[tuple[str, str], str] = {}

    def member(endpoint: Endpoint, enabled: bool) -> tuple[set[str], list[str], list[str]] | None:
        auth = endpoint.auth
        if endpoint.mode is not DeliveryMode.AXIS or not isinstance(auth, AxisAuth):
            return None
        url = str(endpoint.url)
        key = (_normal(url), auth.system_id)
        urls.setdefault(key, url)  # the URL as first written, for the requests
        group = grouped.setdefault(key, (set(), [], []))
        if enabled:
            group[0].add(auth.secret.get_secret_value())
        return group

    for agency in agencies:
        if (group := member(agency.endpoint, agency.enabled)) is not None:
            group[1].append(str(agency.code))
    for route in routes:
        if (group := member(route.endpoint, route.enabled)) is not None:
            group[2].extend(route.codes)
    return [
        Upstream(urls[key], key[1], frozenset(secrets), tuple(sorted(codes)), tuple(ranges))
        for key, (secrets, codes, ranges) in grouped.items()
    ]


def _normal(url: str) -> str:
    """A URL as compared: an axis written with a trailing slash or in capitals is the same."""
    return url.rstrip("/").lower()


def _same_url(one: str, other: str) -> bool:
    return _normal(one) == _normal(other)


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
        hold_first_wait_s: float = FIRST_WAIT_S,
        hold_give_up_s: float = GIVE_UP_S,
    ) -> None:
        self._store = store
        self._intake = intake
        self._directory = directory
        self._session = session
        self.interval_s = interval_s
        self._timeout_s = timeout_s
        self._syncs = Schedule(sync_interval_s)
        # By upstream, the packets waiting for the registry here to be mended.
        self._holds: dict[tuple[str, str], Holds] = {}
        self._hold_waits = (hold_first_wait_s, hold_give_up_s)
        self._disagreeing: set[tuple[str, str]] = set()  # told of once, not every round

    def upstreams(self) -> list[Upstream]:
        """The upstreams as the registry says now; none for an axis whose agencies here are
        all disabled."""
        served = [self._directory.served(code) for code in self._directory.served_codes]
        found = upstreams((a for a in served if a is not None), self._directory.routes)
        return [upstream for upstream in found if upstream.secrets]

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set; an axis away is tried again at the next round."""
        while not stopping.is_set():
            if await self._store.take_role(ROLE):
                now = self.upstreams()
                for upstream in now:
                    if self._agreed(upstream):
                        await self._round(upstream)
                polled = {(u.url, u.system_id) for u in now}
                self._holds = {key: h for key, h in self._holds.items() if key in polled}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.interval_s)

    async def _round(self, upstream: Upstream) -> None:
        try:
            await self.poll(upstream)
        except LgspError as exc:
            log.warning("axis %s: %s; polled again later", upstream.url, exc.message)
        except Exception:
            log.exception("axis %s: polling failed; polled again later", upstream.url)
        key = f"{upstream.url}\n{upstream.system_id}"
        if self._syncs.due(key):
            try:
                await self.sync_agencies(upstream)
                self._syncs.done(key)
            except Exception as exc:
                wait_s = self._syncs.failed(key)
                log.warning(
                    "axis %s: its agency list not synchronised (%s); tried again in %.0f s",
                    upstream.url,
                    exc,
                    wait_s,
                )

    def _agreed(self, upstream: Upstream) -> bool:
        key = (upstream.url, upstream.system_id)
        if upstream.agreed:
            self._disagreeing.discard(key)
            return True
        if key not in self._disagreeing:
            self._disagreeing.add(key)
            log.error(
                "axis %s: the agencies %s reach it as system %s with different secrets; it is "
                "not polled until their entries agree",
                upstream.url,
                ", ".join((*upstream.codes, *upstream.ranges)),
                upstream.system_id,
            )
        return False

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
        self._held(upstream).keep_only(seen)  # those the axis no longer lists: forgotten
        return taken

    def _held(self, upstream: Upstream) -> Holds:
        key = (upstream.url, upstream.system_id)
        if key not in self._holds:
            first_wait_s, give_up_s = self._hold_waits
            self._holds[key] = Holds(first_wait_s=first_wait_s, give_up_s=give_up_s)
        return self._holds[key]

    async def _take(self, client: AxisClient, upstream: Upstream, doc_id: str) -> bool:
        packet_id = upstream.packet_id(doc_id)
        holds = self._held(upstream)
        if not holds.due(doc_id):
            return False  # held: tried again when its time comes
        if await self._store.facts(packet_id) is None:
            data = await client.get_edoc(doc_id)
            try:
                await self._intake.submit(
                    data,
                    content_type=None,
                    client=upstream.client,
                    packet_id=packet_id,
                    reached=self._reached_here(upstream),
                    audit_refusal=False,  # audited below: once while held, not at every try
                )
            except PacketIdTaken:  # kept by another replica a moment ago: done next round
                return False
            except PermanentError as exc:
                return await self._refused(client, upstream, doc_id, data, exc)
        await client.update_status(doc_id, TransportStatus.DONE)
        holds.release(doc_id)
        return True

    async def _refused(
        self,
        client: AxisClient,
        upstream: Upstream,
        doc_id: str,
        data: bytes,
        error: PermanentError,
    ) -> bool:
        """Hold a packet the registry here refuses, or answer ``fail``: for a fault of the
        packet, or once it has been held too long. Each refusal is audited when it is news,
        not at every try (the axis may keep listing it, or refuse our ``fail`` a while)."""
        holds = self._held(upstream)
        waited_s = holds.given_up(doc_id)
        holding = self._our_fault(error) and waited_s is None
        reason = str(error.code) if waited_s is None else f"{error.code}, given up"
        if waited_s is not None:
            error = PermanentError(
                error.code,
                f"held {waited_s / 3600:.0f} h for the registry here, then answered fail: "
                f"{error.message}",
                details=error.details,
            )
        if holds.news(doc_id, reason):
            sha256 = hashlib.sha256(data).hexdigest()
            await self._intake.refused(error, upstream.client.name, sha256)
        wait_s = holds.hold(doc_id, reason)
        if holding:
            log.warning(
                "axis %s: %s waits, as the registry here stands: %s; tried again in %.0f s",
                upstream.url,
                doc_id,
                error.message,
                wait_s,
            )
            return False
        log.warning("axis %s: %s refused: %s", upstream.url, doc_id, error.message)
        await client.update_status(doc_id, TransportStatus.FAIL)  # raising: held, tried later
        holds.release(doc_id)
        return False

    def _reached_here(self, upstream: Upstream) -> Callable[[str], bool]:
        """Which recipients of a packet from ``upstream`` this exchange delivers: those it
        knows, but not those reached through that same axis (it delivers to them itself)."""

        def reached(text: str) -> bool:
            code = AgencyCode.read(text).code
            if code is None or str(code) != text or not self._directory.is_known(code):
                return False
            served = self._directory.served(code)
            return served is None or not upstream.reaches(served)

        return reached

    def _our_fault(self, error: PermanentError) -> bool:
        """Whether a refusal comes of how the registry here stands, not of the packet: its
        sender or a recipient disabled here, or not registered here at all. The packet waits
        on the axis for the registry to be mended, where ``fail`` would lose it."""
        if error.code in _REGISTRY_FAULTS:
            return True
        if error.code is ErrorCode.PACKET_FORGED_SENDER:
            details = error.details if isinstance(error.details, dict) else {}
            sender = AgencyCode.read(str(details.get("sender") or "")).code
            # Claiming an agency served here otherwise is forgery; one unknown here is not.
            return sender is not None and self._directory.served(sender) is None
        return False

    async def sync_agencies(self, upstream: Upstream) -> int:
        """Merge the axis' agency list (``getSynchronizeUnit``) into ours: names, parents and
        deletions for "who can I send to". How many agencies it listed."""
        units = await self._client(upstream).synchronize_units()
        served = {str(code) for code in self._directory.served_codes}
        await merge_units(self._store, units, served=served, source=upstream.url)
        return len(units)

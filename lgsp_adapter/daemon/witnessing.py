"""The daemon's two sides of witnessing: its checkpoints sent to its witnesses to cosign, and,
as a witness, the logs of others it cosigns at ``/witness``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import web

from lgsp_adapter.audit.cosignature import WitnessKey
from lgsp_adapter.audit.signing import Keyring, Trusted
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.witness import Witness
from lgsp_adapter.audit.witness_client import WitnessClient, WitnessUnavailable
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.http.witness import add_witness_routes

log = logging.getLogger(__name__)


def witness_clients(settings: Settings) -> list[WitnessClient]:
    """This log's witnesses, as the settings name them."""
    return [WitnessClient(str(w.url), w.verifier) for w in settings.audit.witnesses]


def witness_key(settings: Settings) -> WitnessKey:
    """The key this daemon cosigns with, made at the first start."""
    path = settings.witness.key_path(settings.store.path)
    return WitnessKey.load_or_create(path, settings.witness.name)


def mount_witness(app: web.Application, settings: Settings, audit: AuditStore) -> None:
    """Serve ``/witness`` for the logs the settings name (none: every log is unknown)."""
    logs: dict[str, Trusted] = {}
    for witnessed in settings.witness.logs:
        keys = witnessed.verifiers
        logs[keys[0].name] = Keyring(keys)
    key = witness_key(settings) if logs else None
    if key is not None:
        log.info("witnessing %d logs as %s", len(logs), key.name)
        add_witness_routes(app, Witness(key, logs, audit), audit)


async def cosign_periodically(
    audit: AuditStore,
    clients: list[WitnessClient],
    session: aiohttp.ClientSession,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Send each new checkpoint to every witness until ``stop``; a witness away is asked
    again at the next round, and said so once until it answers."""
    away: set[str] = set()
    while clients and not stop.is_set():
        latest = await _latest(audit)
        if latest is not None:
            for client in clients:
                if client.size != latest.size:
                    await _ask(client, session, audit, latest, away)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _ask(
    client: WitnessClient,
    session: aiohttp.ClientSession,
    audit: AuditStore,
    latest: StoredCheckpoint,
    away: set[str],
) -> None:
    try:
        await client.cosign(session, audit, latest)
    except WitnessUnavailable as exc:
        if client.name not in away:
            log.warning("checkpoint %d not cosigned: %s", latest.size, exc)
        away.add(client.name)
        return
    except Exception:
        log.exception("checkpoint %d: asking witness %s failed", latest.size, client.name)
        return
    if client.name in away:
        log.info("witness %s cosigns again (checkpoint %d)", client.name, latest.size)
        away.discard(client.name)


async def _latest(audit: AuditStore) -> StoredCheckpoint | None:
    try:
        return await audit.latest_checkpoint()
    except Exception:
        log.exception("cannot read the latest checkpoint to have it cosigned")
        return None

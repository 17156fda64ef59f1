"""The audit log over HTTP (``/v1/audit/…``), for clients in the auditor role only.

The same queries, exports, proofs, checkpoints and bundles as the command line, as JSON (or CSV
and JSON Lines for exports, streamed). Verifying the whole log is costly, so its result is kept
for a short while per tree size and one run serves concurrent requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from aiohttp import web

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit import export as exports
from lgsp_adapter.audit.bundle import dump, make_bundle, subject_of
from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.proofs import (
    b64,
    consistency_document,
    inclusion_document,
    signed_checkpoint,
)
from lgsp_adapter.audit.query import AuditQuery, BadQuery
from lgsp_adapter.audit.signing import LogKey, Trusted
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.audit.verify_report import Report
from lgsp_adapter.audit.witness_client import WitnessClient, ask_witnesses
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.http.app import client_of, whole_number
from lgsp_adapter.registry.agencies import Role

VERIFY_FRESH_S = 30.0
HTTP_BUNDLE_ENTRIES = 5000  # a request's bundle; larger ranges are for the command line


@dataclass
class AuditAccess:
    """What the audit routes work with: the log and the key that signs it."""

    log: AuditStore
    key: LogKey
    archive_dir: Path | None = None
    # Every key the log was signed with (the current and those rotated out): verifying with
    # the current key alone would call a rotated log tampered.
    trusted: Trusted | None = None
    witnesses: tuple[WitnessClient, ...] = ()  # asked what they cosigned at each verification
    _verified: tuple[float, Report] | None = None
    _running: asyncio.Task[None] | None = None

    async def verification(self, wait_s: float | None = None) -> tuple[Report | None, float, bool]:
        """The latest verification, when it finished, and whether a newer one is running.

        A result is kept for ``VERIFY_FRESH_S`` whatever the log does, so callers cannot make
        the daemon re-verify more often than that; one run serves everyone waiting. With
        ``wait_s``, the caller waits that long at most (the page), then gets the previous
        result (or none) and ``True`` for running."""
        cached = self._verified
        if cached and time.time() - cached[0] < VERIFY_FRESH_S:
            return cached[1], cached[0], False
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._verify(), name="audit-verify")
        try:
            await asyncio.wait_for(asyncio.shield(self._running), wait_s)
        except TimeoutError:
            return (cached[1], cached[0], True) if cached else (None, 0.0, True)
        assert self._verified is not None  # noqa: S101  # set by the run that just ended
        return self._verified[1], self._verified[0], False

    async def _verify(self) -> None:
        trusted = self.trusted or self.key.verifier
        witnesses = await ask_witnesses(self.witnesses, self.key.name)
        report = await verify_log(
            self.log, trusted, archive_dir=self.archive_dir, witnesses=witnesses
        )
        self._verified = (time.time(), report)

    async def close(self) -> None:
        """Stop a verification still running (the store is about to close)."""
        if self._running is not None and not self._running.done():
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def checkpoint(self, size: int | None = None) -> StoredCheckpoint:
        """The checkpoint of ``size``, or the latest."""
        return await signed_checkpoint(self.log, size)

    async def bundle(self, query: AuditQuery, subject: dict[str, Any]) -> bytes:
        """An evidence bundle of the entries ``query`` matches."""
        entries = await exports.gather(self.log, query, HTTP_BUNDLE_ENTRIES)
        if not entries:
            raise LgspError(ErrorCode.AUDIT_NOT_FOUND, "no entries match")
        if len(entries) > HTTP_BUNDLE_ENTRIES:
            raise BadQuery(
                f"more than {HTTP_BUNDLE_ENTRIES:,} entries match: narrow the range, or use "
                "`lgsp-adapter audit bundle` on the server"
            )
        bundle = await make_bundle(
            self.log, entries, subject=subject, verifier=self.key.verifier, key=self.key
        )
        return await asyncio.to_thread(dump, bundle)


AUDIT: web.AppKey[AuditAccess] = web.AppKey("audit", AuditAccess)
FILTERS = ("since", "until", "agency", "kind", "document_id", "outcome", "event", "packet_id")


def query_of(params: Mapping[str, str], *, allowed: tuple[str, ...] = ()) -> AuditQuery:
    """An ``AuditQuery`` from query parameters; anything else is a ``audit.bad_query``."""
    unknown = sorted(set(params) - set(allowed) - {*FILTERS, "after", "before", "limit"})
    unknown = [name for name in unknown if name != "newest_first"]
    if unknown:
        raise BadQuery(f"unknown parameters: {', '.join(unknown)}", details={"unknown": unknown})
    # An empty value is a mistake to name, not a filter to drop silently (the page leaves
    # empty fields out before it asks).
    empty = sorted(name for name, value in params.items() if value == "")
    if empty:
        raise BadQuery(f"empty parameters: {', '.join(empty)}", details={"empty": empty})
    return AuditQuery.of({k: v for k, v in params.items() if k not in allowed})


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the API shows it: index and non-null fields."""
    return {"index": entry.index, **{k: v for k, v in entry.fields().items() if v is not None}}


def checkpoint_json(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    """A checkpoint as the API shows it."""
    return {
        "size": checkpoint.size,
        "root": b64(checkpoint.root),
        "at": format_time(checkpoint.at),
        "note": checkpoint.note,
    }


def report_json(report: Report, at: float) -> dict[str, Any]:
    """A verification as the API shows it."""
    return {
        "ok": report.ok,
        "summary": report.summary(),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        "entries_checked": report.entries_checked,
        "checkpoints_checked": report.checkpoints_checked,
        "tree_size": report.size,
        "archived_below": report.archived_below,
        "first_bad_entry": report.first_bad_entry,
        "problems": [p.message for p in report.problems[:100]],
        "witnessed": report.witnessed,
        "notes": report.notes[:100],
    }


def _int(params: Mapping[str, str], name: str, *, required: bool = True) -> int | None:
    value = whole_number(params, name, ErrorCode.AUDIT_BAD_QUERY)
    if value is None and required:
        raise BadQuery(f"{name} is required")
    return value


async def entries(request: web.Request) -> web.Response:
    """``GET /v1/audit/entries``: one page of matching entries and the cursor to the next."""
    client_of(request, Role.AUDITOR)
    query = query_of(request.query)
    found = await request.app[AUDIT].log.query(query)
    following = None
    if len(found) == query.limit:
        key = "before" if query.newest_first else "after"
        following = {key: found[-1].index}
    return web.json_response({"entries": [entry_json(e) for e in found], "next": following})


async def journey(request: web.Request) -> web.Response:
    """``GET /v1/audit/packets/{id}``: every entry about one packet."""
    client_of(request, Role.AUDITOR)
    packet_id = _packet_id(request.match_info["packet_id"])
    found = await request.app[AUDIT].log.history(packet_id)
    if not found:
        raise LgspError(ErrorCode.AUDIT_NOT_FOUND, f"no entries about packet {packet_id}")
    return web.json_response(
        {"packet_id": str(packet_id), "entries": [entry_json(e) for e in found]}
    )


def _packet_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError as exc:
        raise BadQuery(f"{text!r} is not a packet id") from exc


async def export(request: web.Request) -> web.StreamResponse:
    """``GET /v1/audit/export?format=csv|jsonl&…``: every matching entry, streamed."""
    client_of(request, Role.AUDITOR)
    return await stream_export(request)


async def stream_export(request: web.Request) -> web.StreamResponse:
    """The export download, shared with the auditors' page."""
    kind = request.query.get("format", "jsonl")
    if kind not in exports.FORMATS:
        raise BadQuery(f"format must be one of {', '.join(exports.FORMATS)}")
    query = query_of(request.query, allowed=("format", "lang"))
    response = web.StreamResponse(
        headers={
            "Content-Type": exports.CONTENT_TYPES[kind],
            "Content-Disposition": f'attachment; filename="audit-export.{kind}"',
        }
    )
    await response.prepare(request)
    await response.write(exports.header(kind).encode())
    batch: list[str] = []
    async for entry in exports.matching(request.app[AUDIT].log, query):
        batch.append(exports.line(kind, entry))
        if len(batch) >= 1000:
            await response.write("".join(batch).encode())
            batch.clear()
    await response.write("".join(batch).encode())
    await response.write_eof()
    return response


async def checkpoints(request: web.Request) -> web.Response:
    """``GET /v1/audit/checkpoints``: every signed checkpoint, smallest first."""
    client_of(request, Role.AUDITOR)
    found = await request.app[AUDIT].log.checkpoints()
    return web.json_response({"checkpoints": [checkpoint_json(c) for c in found]})


async def latest_checkpoint(request: web.Request) -> web.Response:
    """``GET /v1/audit/checkpoints/latest``: the latest signed note, as text."""
    client_of(request, Role.AUDITOR)
    checkpoint = await request.app[AUDIT].checkpoint()
    return web.Response(text=checkpoint.note, content_type="text/plain")


async def sign_now(request: web.Request) -> web.Response:
    """``POST /v1/audit/checkpoints``: sign the log as it is now (201), or the latest (200)."""
    client_of(request, Role.AUDITOR)
    access = request.app[AUDIT]
    before = await access.log.checkpoints()
    made = await access.log.checkpoint(access.key)
    if made is None:
        raise LgspError(ErrorCode.AUDIT_NOT_FOUND, "the log is empty: nothing to sign")
    fresh = not before or before[-1].size != made.size
    return web.json_response(checkpoint_json(made), status=201 if fresh else 200)


async def public_key(request: web.Request) -> web.Response:
    """``GET /v1/audit/public-key``: the log's verifier key, PEM and fingerprint."""
    client_of(request, Role.AUDITOR)
    key = request.app[AUDIT].key
    return web.json_response(
        {
            "origin": key.name,
            "verifier_key": key.verifier.encoded(),
            "public_key_pem": key.public_pem(),
            "public_key_sha256": key.verifier.fingerprint,
        }
    )


async def prove_inclusion(request: web.Request) -> web.Response:
    """``GET /v1/audit/proofs/inclusion?index=N[&size=S]``."""
    client_of(request, Role.AUDITOR)
    access = request.app[AUDIT]
    index = _int(request.query, "index")
    assert index is not None  # noqa: S101  # required above
    checkpoint = await access.checkpoint(_int(request.query, "size", required=False))
    found = await access.log.entries(index, index + 1)
    if not found:
        raise LgspError(ErrorCode.AUDIT_NOT_FOUND, f"no entry {index} in the store")
    return web.json_response(await inclusion_document(access.log, found[0], checkpoint))


async def prove_consistency(request: web.Request) -> web.Response:
    """``GET /v1/audit/proofs/consistency?old=M[&new=N]`` between two checkpoints."""
    client_of(request, Role.AUDITOR)
    access = request.app[AUDIT]
    old = await access.checkpoint(_int(request.query, "old"))
    new = await access.checkpoint(_int(request.query, "new", required=False))
    if old.size > new.size:
        raise BadQuery("old must not be larger than new")
    return web.json_response(await consistency_document(access.log, old, new))


async def bundle(request: web.Request) -> web.Response:
    """``GET /v1/audit/bundle?packet_id=…`` (or other filters): an evidence bundle."""
    client_of(request, Role.AUDITOR)
    return await bundle_response(request)


async def bundle_response(request: web.Request) -> web.Response:
    """The bundle download, shared with the auditors' page."""
    query = query_of(request.query, allowed=("lang",))
    subject = subject_of(query)
    if not subject:
        raise BadQuery("name a packet_id, or filters, for the bundle")
    data = await request.app[AUDIT].bundle(query, subject)
    name = str(query.packet_id) if query.packet_id else "range"  # validated: safe in a header
    return web.Response(
        body=data,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="evidence-{name}.json"'},
    )


async def verify(request: web.Request) -> web.Response:
    """``GET /v1/audit/verify``: the whole log recomputed (cached for a short while)."""
    client_of(request, Role.AUDITOR)
    report, at, _ = await request.app[AUDIT].verification()
    assert report is not None  # noqa: S101  # waited for without a limit
    return web.json_response(report_json(report, at))


def add_audit_routes(app: web.Application, access: AuditAccess) -> None:
    """Mount ``/v1/audit/…`` on ``app``."""
    app[AUDIT] = access
    router = app.router
    router.add_get("/v1/audit/entries", entries)
    router.add_get("/v1/audit/packets/{packet_id}", journey)
    router.add_get("/v1/audit/export", export)
    router.add_get("/v1/audit/checkpoints", checkpoints)
    router.add_get("/v1/audit/checkpoints/latest", latest_checkpoint)
    router.add_post("/v1/audit/checkpoints", sign_now)
    router.add_get("/v1/audit/public-key", public_key)
    router.add_get("/v1/audit/proofs/inclusion", prove_inclusion)
    router.add_get("/v1/audit/proofs/consistency", prove_consistency)
    router.add_get("/v1/audit/bundle", bundle)
    router.add_get("/v1/audit/verify", verify)

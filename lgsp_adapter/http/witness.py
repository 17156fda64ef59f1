"""``/witness/…``: this daemon as a witness of other daemons' logs (c2sp.org/tlog-witness).

``POST /witness/add-checkpoint`` takes a log's checkpoint with a consistency proof from the
last one cosigned here and answers with a cosignature; ``GET /witness/<SHA-256 of the
origin>/checkpoint`` gives the latest checkpoint cosigned of a log, for its auditors to compare
with the log itself. No token: the protocol's requests are signed checkpoints, checked against
the keys of the logs this daemon was told to witness, and anything else is refused. A
checkpoint that does not extend what was cosigned is evidence of a fork: it is recorded in this
daemon's own audit log.
"""

from __future__ import annotations

import hashlib
import logging
import re

from aiohttp import web

from lgsp_adapter.audit.entry import AuditEntry, AuditEvent
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.audit.witness import MAX_REQUEST, Witness, WitnessRefusal
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.http.app import read_body, status_of

log = logging.getLogger(__name__)
_WITNESS = web.AppKey("witness", Witness)
_AUDIT = web.AppKey("witness_audit", AuditStore)
_HASH = re.compile(r"[0-9a-f]{64}")


def add_witness_routes(app: web.Application, witness: Witness, audit: AuditStore) -> None:
    """Serve the witness protocol for the logs ``witness`` knows."""
    app[_WITNESS] = witness
    app[_AUDIT] = audit
    app.router.add_post("/witness/add-checkpoint", add_checkpoint)
    app.router.add_get("/witness/{origin_hash}/checkpoint", latest_checkpoint)


async def add_checkpoint(request: web.Request) -> web.Response:
    """Cosign a checkpoint that extends the last one cosigned of its log."""
    witness = request.app[_WITNESS]
    try:
        # 413 past the limit; a body trickling in times out.
        body = await read_body(request, MAX_REQUEST)
    except LgspError as exc:  # the protocol answers in text, not our JSON errors
        return _refusal(WitnessRefusal(status_of(exc), exc.message))
    try:
        line = await witness.add_checkpoint(body)
    except WitnessRefusal as refusal:
        if refusal.fork:
            await _record_fork(request.app[_AUDIT], body, refusal)
        return _refusal(refusal)
    return web.Response(text=line, content_type="text/plain")


async def latest_checkpoint(request: web.Request) -> web.Response:
    """The latest checkpoint cosigned of the log whose origin hashes to the path's hash."""
    witness = request.app[_WITNESS]
    wanted = request.match_info["origin_hash"]
    if not _HASH.fullmatch(wanted):
        raise web.HTTPNotFound(text="not a log's origin hash (64 lowercase hex digits)\n")
    for origin in witness.logs:
        if hashlib.sha256(origin.encode()).hexdigest() == wanted:
            seen = await witness.state.witnessed(origin)
            if seen is None:
                break
            return web.Response(text=seen.note, content_type="text/plain")
    raise web.HTTPNotFound(text="this witness has cosigned no checkpoint of that log\n")


def _refusal(refusal: WitnessRefusal) -> web.Response:
    if refusal.status == 409 and refusal.size is not None:
        return web.Response(
            status=409, body=f"{refusal.size}\n".encode(), content_type="text/x.tlog.size"
        )
    return web.Response(status=refusal.status, text=refusal.message + "\n")


async def _record_fork(audit: AuditStore, body: bytes, refusal: WitnessRefusal) -> None:
    """A validly signed checkpoint this witness may not cosign: kept as evidence."""
    note = body.decode(errors="replace").partition("\n\n")[2]
    origin = note.split("\n", 1)[0][:200]
    log.error("witness: refused a checkpoint of %s: %s", origin, refusal.message)
    await audit.append(
        [
            AuditEntry(
                event=AuditEvent.REJECTED,
                outcome=str(ErrorCode.WITNESS_INCONSISTENT),
                detail=f"witness: a checkpoint of {origin} not cosigned: {refusal.message}",
                payload_sha256=hashlib.sha256(body).hexdigest(),
                actor="witness",
            )
        ]
    )

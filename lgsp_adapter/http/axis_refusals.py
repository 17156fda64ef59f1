"""Refusals at the axis facade, in the audit log: each one a ``rejected`` entry naming the
operation and the system; those of requests no registered system signed, as a trickle."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.errors import LgspError, PermanentError
from lgsp_adapter.http.app import STORE
from lgsp_adapter.http.rate_limit import RateLimiter

log = logging.getLogger(__name__)

UNAUDITED_TOLD_S = 60.0


class UnsignedRefusals:
    """How many refusals of requests that no registered system signed get an audit entry: a
    steady trickle (``burst`` at once, then ``per_second``), the rest only counted in the log.
    Anyone can send those, and each entry is kept for ever; a system's own refusals are all
    audited (and its requests are rate-limited by its name)."""

    def __init__(self, per_second: float = 0.1, burst: int = 100) -> None:
        self._bucket = RateLimiter(per_second=per_second, burst=burst)
        self._unaudited = 0
        self._told_at = -UNAUDITED_TOLD_S

    def audited(self) -> bool:
        """Whether this refusal is audited (else it is counted, and told once a minute)."""
        try:
            self._bucket.take("unsigned")
            return True
        except PermanentError:
            self._unaudited += 1
            now = time.monotonic()
            if now - self._told_at >= UNAUDITED_TOLD_S:
                log.warning(
                    "axis: %d refusals of unsigned requests not audited since last told "
                    "(over %g a second are counted here only)",
                    self._unaudited,
                    self._bucket.per_second,
                )
                self._unaudited, self._told_at = 0, now
            return False


UNSIGNED: web.AppKey[UnsignedRefusals] = web.AppKey("axis_unsigned_refusals", UnsignedRefusals)


async def audit_refusal(
    request: web.Request, error: LgspError, operation: str, system: str
) -> None:
    """The refusal as a ``rejected`` entry naming the operation and the system (as it said
    it was); a store that cannot take it is logged, and the answer goes out regardless."""
    details = error.details if isinstance(error.details, dict) else {}
    entry = AuditEntry(
        event=AuditEvent.REJECTED,
        sender=details.get("sender") if isinstance(details.get("sender"), str) else None,
        outcome=str(error.code),
        detail=f"axis {operation[:40]} from system {system[:100]}: {error.message}"[:500],
        actor=f"axis/{system[:100]}",
    )
    try:
        await request.app[STORE].append([entry])
    except Exception:  # the answer still goes out; the log says why the entry is missing
        log.warning("the refusal of axis %s could not be audited", operation, exc_info=True)
        return
    log_event(log, entry)

"""Requests too malformed to parse, as the operator's log shows them: one WARNING line each,
at most one every ten seconds (with how many were left out), never aiohttp's ERROR traceback.

aiohttp logs each request its parser refuses (``Content-Length: -1``, a broken request line)
as "Error handling request" with ten lines of traceback at ERROR. That is the client's fault,
not ours, and anyone who can reach the port can make the log scroll with it, unauthenticated,
burying what an operator must see.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

_SERVER_LOG = "aiohttp.server"


class MalformedRequests(logging.Filter):
    """Rewrites aiohttp's record of an unparsable request into one line, rate-limited."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self._every_s = every_s
        self._last = float("-inf")
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True  # anything else aiohttp logs is worth its traceback
        now = time.monotonic()
        if now - self._last < self._every_s:
            self._left_out += 1
            return False
        said = record.getMessage().replace("Error handling request", "a malformed request")
        why = (error.message or type(error).__name__).strip().splitlines()[0][:200]
        more = f"; {self._left_out} more since the last one" if self._left_out else ""
        record.msg, record.args = "%s refused with HTTP %s: %s%s", (said, error.code, why, more)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        self._last, self._left_out = now, 0
        return True


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server log (a fresh one per server started: the
    logger is the process's, and only one filter may count)."""
    server = logging.getLogger(_SERVER_LOG)
    for old in [f for f in server.filters if isinstance(f, MalformedRequests)]:
        server.removeFilter(old)
    server.addFilter(MalformedRequests())

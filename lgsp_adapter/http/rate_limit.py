"""Requests per token, limited: one misbehaving agency system (a retry loop gone wild) must not
starve the others, nor the store's single writer.

A token bucket per client: ``burst`` requests at once, refilled at ``per_second``. A request
over the limit is refused with 429 and ``Retry-After`` — before any work, and before the body
is read. Buckets live in memory: a restart forgives, which is what one wants of a limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from lgsp_adapter.errors import ErrorCode, PermanentError


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Token buckets by client name."""

    per_second: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str) -> None:
        """Spend one request of ``client``'s, or raise ``auth.rate_limited``."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / self.per_second)
            raise PermanentError(
                ErrorCode.AUTH_RATE_LIMITED,
                f"client {client} sends more than {self.per_second:g} requests a second; "
                f"wait {wait} s",
                details={"retry_after_s": wait},
            )
        bucket.tokens -= 1

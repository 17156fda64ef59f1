"""How long one delivery attempt may hold its message, against how long the broker lets it.

RabbitMQ takes a message back from a consumer that has not acknowledged it within its
``consumer_timeout`` (30 minutes by default), closing the channel: the message is redelivered
while the first push may still be under way, or done but not yet recorded, and the agency's
system gets it twice. An attempt is a push with its quick retries, so an endpoint whose
``timeout_s`` times those tries cannot end within that window is refused where it is
configured, in the settings at start or in the registry when it is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.registry.agencies import DeliveryMode, Endpoint, ServedAgency

# Beside the pushes, an attempt reads the store, checks signatures, records the outcome and
# parks a retry copy: a minute covers that with room.
ROOM_S = 60.0


@dataclass(frozen=True, slots=True)
class AttemptBudget:
    """The broker's window, and how the deliverer retries within one attempt."""

    consumer_timeout_s: float | None  # None: the embedded bus, which takes nothing back
    quick_retries: int
    quick_retry_delay_s: float

    def worst_s(self, endpoint: Endpoint) -> float:
        """The longest one attempt at ``endpoint`` can take, its quick retries included."""
        tries = 1 + self.quick_retries
        return tries * endpoint.timeout_s + self.quick_retries * self.quick_retry_delay_s

    def problem(self, code: str, endpoint: Endpoint) -> str | None:
        """Why ``endpoint`` does not fit the window, or None."""
        if self.consumer_timeout_s is None or endpoint.mode is DeliveryMode.PULL:
            return None  # the embedded bus; a pull endpoint is never pushed to
        worst = self.worst_s(endpoint)
        if worst + ROOM_S <= self.consumer_timeout_s:
            return None
        tries = 1 + self.quick_retries
        return (
            f"{code}: one delivery attempt may take {worst:g} s ({tries} "
            f"{'try' if tries == 1 else 'tries'} of timeout_s {endpoint.timeout_s:g} s), and "
            f"with {ROOM_S:g} s for the rest "
            f"it does not end within the broker's consumer_timeout of "
            f"{self.consumer_timeout_s:g} s ([bus] consumer_timeout_s): the broker would take "
            "the message back mid-push and the system would get it twice. Lower timeout_s or "
            "[delivery] quick_retries, or raise the broker's consumer_timeout and "
            "consumer_timeout_s with it"
        )


def fitting(budget: AttemptBudget | None, agency: ServedAgency) -> ServedAgency:
    """``agency`` as registered, unless its attempts could outlast the broker's window."""
    problem = budget.problem(str(agency.code), agency.endpoint) if budget else None
    if problem is not None:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            problem,
            details=[{"field": "endpoint.timeout_s", "problem": problem}],
        )
    return agency

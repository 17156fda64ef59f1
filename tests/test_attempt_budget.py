"""An endpoint whose delivery attempt could outlast the broker's consumer_timeout is refused
where it is configured: RabbitMQ would take the message back mid-push and the agency's system
would get it twice (issue 21)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.registry.agencies import Endpoint
from lgsp_adapter.registry.attempt_budget import ROOM_S, AttemptBudget
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import BROKER, remove_topology
from tests.test_registry_web import COMMUNE, PROVINCE, commune, running


def settings(bus: dict[str, Any], timeout_s: float, quick_retries: int = 2) -> Settings:
    return Settings.model_validate(
        {
            "bus": bus,
            "delivery": {"quick_retries": quick_retries},
            "agencies": [
                {
                    "code": COMMUNE,
                    "name": "xã",
                    "endpoint": {"url": "http://127.0.0.1:9/", "timeout_s": timeout_s},
                }
            ],
        }
    )


def test_the_worst_attempt_counts_every_quick_retry() -> None:
    budget = AttemptBudget(consumer_timeout_s=1800, quick_retries=2, quick_retry_delay_s=0.5)
    endpoint = Endpoint.model_validate({"url": "http://127.0.0.1:9/", "timeout_s": 300})
    assert budget.worst_s(endpoint) == 3 * 300 + 2 * 0.5
    assert budget.problem(COMMUNE, endpoint) is None
    narrow = AttemptBudget(
        consumer_timeout_s=900 + 1 + ROOM_S - 1, quick_retries=2, quick_retry_delay_s=0.5
    )
    assert narrow.problem(COMMUNE, endpoint) is not None
    pulled = Endpoint.model_validate({"mode": "pull"})
    assert narrow.problem(COMMUNE, pulled) is None  # never pushed: nothing held


def test_settings_that_cannot_fit_stop_the_daemon_at_start() -> None:
    rabbit = {"url": "amqp://guest:guest@127.0.0.1:5672/"}
    with pytest.raises(ValidationError, match=r"does not end within the broker's consumer_timeout"):
        settings(rabbit, timeout_s=300, quick_retries=10)
    settings(rabbit, timeout_s=300, quick_retries=2)  # 900 s and a minute fit in 30 min
    settings({}, timeout_s=300, quick_retries=10)  # the embedded bus takes nothing back
    with pytest.raises(ValidationError, match=r"consumer_timeout_s"):
        settings({**rabbit, "consumer_timeout_s": 300}, timeout_s=100)


@pytest.mark.asyncio
async def test_the_registry_refuses_an_endpoint_that_cannot_fit(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    bus = {"url": BROKER, "exchange": exchange, "consumer_timeout_s": 300}
    try:
        async with (
            agency_server(AgencyServer()) as province,
            running(tmp_path, province, bus) as api,
        ):
            # No quick retries on this daemon: 250 s and a minute outlast 300 s; 200 s fit.
            status, answer, _ = await api.call(
                "POST", "/v1/endpoints", commune(province.url, timeout_s=250)
            )
            assert (status, answer["error"]["code"]) == (400, "registry.invalid"), answer
            assert "consumer_timeout" in answer["error"]["message"]
            status, answer, _ = await api.call(
                "POST", "/v1/endpoints", commune(province.url, timeout_s=200)
            )
            assert status == 201, answer
            status, answer, _ = await api.call(
                "PATCH", f"/v1/endpoints/{COMMUNE}", {"endpoint": {"timeout_s": 250}}
            )
            assert (status, answer["error"]["code"]) == (400, "registry.invalid"), answer
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE], [0.2, 0.2])

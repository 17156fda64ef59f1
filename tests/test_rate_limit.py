"""Requests per token are limited: a burst, then 429 with Retry-After for that token only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.http.rate_limit import RateLimiter
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import daemon
from tests.test_registry_web import AUDITOR, INTEGRATOR, PROVINCE, Api


@pytest.mark.asyncio
async def test_a_token_over_its_limit_waits_and_others_do_not(tmp_path: Path) -> None:
    async with agency_server(AgencyServer()) as province:
        config = Settings.model_validate(
            {
                "http": {"port": 0, "requests_per_second": 2, "burst": 5},
                "store": {"path": str(tmp_path / "store.sqlite3")},
                "agencies": [{"code": PROVINCE, "name": "tỉnh", "endpoint": {"url": province.url}}],
                "clients": [
                    {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
                    {"name": "auditor", "token": AUDITOR, "role": "auditor"},
                ],
            }
        )
        async with daemon(config) as url, aiohttp.ClientSession() as session:
            busy = Api(session, url, INTEGRATOR)
            answers = [await busy.call("GET", "/v1/endpoints") for _ in range(6)]
            assert [status for status, _, _ in answers] == [200] * 5 + [429]
            _, refused, response = answers[-1]
            assert refused["error"]["code"] == "auth.rate_limited"
            assert response.headers["Retry-After"] == "1"
            status, _, _ = await busy.as_(AUDITOR).call("GET", "/v1/endpoints")
            assert status == 200  # another token is not slowed by this one
            await asyncio.sleep(0.6)  # refilled at 2 a second
            status, _, _ = await busy.call("GET", "/v1/endpoints")
            assert status == 200


def test_a_bucket_spends_its_burst_then_refuses_and_buckets_are_per_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]  # the clock, moved by hand: the test says nothing about this machine's speed
    monkeypatch.setattr("lgsp_adapter.http.rate_limit.time.monotonic", lambda: now[0])
    limiter = RateLimiter(per_second=2, burst=3)
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(LgspError) as info:
        limiter.take("a")
    assert info.value.code is ErrorCode.AUTH_RATE_LIMITED
    assert info.value.details == {"retry_after_s": 1}
    limiter.take("b")  # another client's bucket is full
    now[0] += 0.5  # one request's worth at 2 a second
    limiter.take("a")
    with pytest.raises(LgspError):
        limiter.take("a")

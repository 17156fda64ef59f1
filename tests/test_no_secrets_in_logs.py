"""No token, password or document body in the logs: a full run on RabbitMQ, with every kind of
secret in play and failures provoked, logged at DEBUG by every library, then searched."""

from __future__ import annotations

import logging
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES
from tests.test_exchange_embedded import settled
from tests.test_exchange_rabbitmq import broker_account, daemon, letter_to, remove_topology
from tests.test_registry_web import COMMUNE, PROVINCE, PROVINCE_TOKEN, Api, commune

INTEGRATOR = "integrator-secret-token-7Qx9LmZ2pW4k"
BEARER = "endpoint-bearer-secret-N3v8Rt5Yq1Zx"
PASSWORD = "endpoint-basic-password-Kp4Wd7Hs2Lm9"
HMAC_SECRET = "endpoint-hmac-secret-of-enough-length-Vb6Tn3Jq8Rw1"
BROUGHT = "brought-commune-token-Gh5Kd2Mx9Pz7Lq3"
SUBJECT = "V/v triển khai liên thông văn bản điện tử qua LGSP tỉnh"


@pytest.mark.asyncio
async def test_a_full_run_logs_no_secret_and_no_document(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    document = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_text()
    assert SUBJECT in document
    async with broker_account(f"lgsp_secrets_{uuid.uuid4().hex[:8]}") as bus_url:
        bus_password = bus_url.split(":")[2].split("@")[0]
        try:
            async with AsyncExitStack() as stack:
                province = await stack.enter_async_context(agency_server(AgencyServer()))
                refusing = await stack.enter_async_context(agency_server(AgencyServer(then=401)))
                signed = await stack.enter_async_context(agency_server(AgencyServer()))
                config = Settings.model_validate(
                    {
                        "http": {"port": 0},
                        "bus": {"url": bus_url, "exchange": exchange},
                        "store": {"path": str(tmp_path / "store.sqlite3")},
                        "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
                        "daemon": {"drain_s": 5},
                        "agencies": [
                            {
                                "code": PROVINCE,
                                "name": "tỉnh",
                                "endpoint": {
                                    "url": province.url,
                                    "auth": {"kind": "bearer", "token": BEARER},
                                },
                            }
                        ],
                        "clients": [
                            {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]},
                            {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
                        ],
                    }
                )
                url = await stack.enter_async_context(daemon(config))
                session = await stack.enter_async_context(aiohttp.ClientSession())
                api = Api(session, url, INTEGRATOR)
                basic = {"kind": "basic", "username": "vanthu", "password": PASSWORD}
                status, _, _ = await api.call(
                    "POST", "/v1/endpoints", commune(refusing.url, auth=basic) | {"token": BROUGHT}
                )
                assert status == 201
                hmac_auth = {"kind": "hmac", "key_id": "k1", "secret": HMAC_SECRET}
                status, _, _ = await api.call(
                    "POST", "/v1/endpoints", commune(signed.url, "000.21.07.H56", auth=hmac_auth)
                )
                assert status == 201
                await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")  # refused: 401
                sender = api.as_(PROVINCE_TOKEN)
                for to in (COMMUNE, "000.21.07.H56"):
                    status, answer, _ = await sender.call(
                        "POST", "/v1/packets", letter_to(to), **{"Content-Type": "application/xml"}
                    )
                    assert status == 202
                    await settled(url, answer["packet_id"])
                # Refusals log too: a wrong token, a forged sender.
                await api.as_("a-wrong-token-that-is-long-enough-0001").call("GET", "/v1/endpoints")
                await api.as_(BROUGHT).call(
                    "POST",
                    "/v1/packets",
                    letter_to(PROVINCE),
                    **{"Content-Type": "application/xml"},
                )
        finally:
            await remove_topology(exchange, [PROVINCE, COMMUNE, "000.21.07.H56"], [0.2, 1.0])
    lines = [
        (record.name, f"{record.getMessage()} {record.exc_text or ''} {record.args!r}")
        for record in caplog.records
    ]
    assert len(lines) > 50  # the run was logged, at every level
    for secret in (
        PROVINCE_TOKEN,
        INTEGRATOR,
        BEARER,
        PASSWORD,
        HMAC_SECRET,
        BROUGHT,
        bus_password,
        SUBJECT,
    ):
        leaks = [f"{name}: {text[:200]}" for name, text in lines if secret in text]
        assert not leaks, leaks[:3]

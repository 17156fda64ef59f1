"""Operators and the dead letters: listed, shown without the document, replayed (delivered on a
fresh schedule) or dropped with a reason, each act audited with the operator's name; nobody
else may, and no delivery is acted on twice. On both buses."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import (
    BROKER,
    COMMUNE,
    PROVINCE,
    daemon,
    letter_to,
    remove_topology,
)
from tests.test_registry_web import AUDITOR, PROVINCE_TOKEN, Api

OPERATOR = "van-hanh-operator-token-0123456789"
RETRY_DELAYS = [0.1]


@asynccontextmanager
async def operated(tmp_path: Path, commune: AgencyServer, bus: str) -> AsyncIterator[Api]:
    """A daemon serving the province (pull) and the commune (push to ``commune``), with an
    agency system, an auditor and an operator; the operator's view of its API."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    config = Settings.model_validate(
        {
            "bus": {"url": BROKER, "exchange": exchange} if bus == "rabbitmq" else {},
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": RETRY_DELAYS},
            "daemon": {"drain_s": 2},
            "agencies": [
                {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                {"code": COMMUNE, "name": "xã", "endpoint": {"url": commune.url}},
            ],
            "clients": [
                {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]},
                {"name": "thanh-tra", "token": AUDITOR, "role": "auditor"},
                {"name": "van-hanh", "token": OPERATOR, "role": "operator"},
            ],
        }
    )
    try:
        async with daemon(config) as url, aiohttp.ClientSession() as session:
            yield Api(session, url, OPERATOR)
    finally:
        if bus == "rabbitmq":
            await remove_topology(exchange, [PROVINCE, COMMUNE], RETRY_DELAYS)


async def eventually(check: Any, what: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", ["embedded", "rabbitmq"])
async def test_an_operator_replays_one_dead_letter_and_drops_another(
    tmp_path: Path, bus: str
) -> None:
    commune = AgencyServer(then=503)  # down: each letter runs out of attempts
    async with agency_server(commune), operated(tmp_path, commune, bus) as operator:
        province = operator.as_(PROVINCE_TOKEN)
        sent = []
        for number in (1, 2):
            status, answer, _ = await province.call(
                "POST",
                "/v1/packets",
                letter_to(COMMUNE, number=number),
                **{"Content-Type": "application/xml"},
            )
            assert status == 202, answer
            sent.append(answer["packet_id"])

        async def listed() -> list[dict[str, Any]]:
            status, page, _ = await operator.call("GET", f"/v1/dead-letters?agency={COMMUNE}")
            assert status == 200, page
            return list(page["dead_letters"]) if len(page["dead_letters"]) == 2 else []

        letters = await eventually(listed, "both letters dead-lettered")
        assert sorted(d["packet_id"] for d in letters) == sorted(sent)
        assert {d["attempts"] for d in letters} == {1 + len(RETRY_DELAYS)}
        assert all(d["recipient"] == COMMUNE and d["sender"] == PROVINCE for d in letters)

        # Only operators; and they see what happened, not the document.
        for token, status in ((PROVINCE_TOKEN, 403), (AUDITOR, 403), ("x" * 30, 401)):
            got, answer, _ = await operator.as_(token).call("GET", "/v1/dead-letters")
            assert got == status, answer
            got, _, _ = await operator.as_(token).call(
                "POST", f"/v1/dead-letters/{sent[0]}/{COMMUNE}/replay"
            )
            assert got == status
        status, shown, _ = await operator.call("GET", f"/v1/dead-letters/{sent[0]}/{COMMUNE}")
        assert status == 200, shown
        assert "dead_lettered" in [e["event"] for e in shown["history"]]
        assert "payload" not in shown
        assert "liên thông văn bản" not in json.dumps(shown, ensure_ascii=False)
        status, _, _ = await operator.call("GET", f"/v1/packets/{sent[0]}")
        assert status == 403

        # Replayed: on a fresh schedule, whole (the system fails all but the last try of it),
        # with the attempts made before kept, not reset (issue 21).
        budget = 1 + len(RETRY_DELAYS)
        commune.script, commune.then = [503] * len(RETRY_DELAYS), 200
        status, record, _ = await operator.call(
            "POST", f"/v1/dead-letters/{sent[0]}/{COMMUNE}/replay"
        )
        assert (status, record["state"], record["attempts"]) == (200, "accepted", budget), record
        assert (record["since_replay"], record["replays"]) == (0, 1)

        async def delivered() -> bool:
            _, packet, _ = await province.call("GET", f"/v1/packets/{sent[0]}")
            return bool(packet["deliveries"][0]["state"] == "delivered")

        await eventually(delivered, "the replayed letter delivered")
        _, packet, _ = await province.call("GET", f"/v1/packets/{sent[0]}")
        assert packet["deliveries"][0]["attempts"] == 2 * budget
        replayed = [e for e in packet["history"] if e.get("outcome") == "dead_letter.replayed"]
        assert f"{budget} attempt(s) made before, replay 1" in replayed[0]["detail"]
        assert commune.delivered().count(sent[0]) == 1
        status, answer, _ = await operator.call(
            "POST", f"/v1/dead-letters/{sent[0]}/{COMMUNE}/replay"
        )
        assert (status, answer["error"]["code"]) == (409, "dead_letter.not_dead_lettered")

        # Dropped, with a reason that must say something.
        drop = f"/v1/dead-letters/{sent[1]}/{COMMUNE}/drop"
        for body in ({}, {"reason": " \x00 "}, {"reason": "x", "also": 1}, [1]):
            status, answer, _ = await operator.call("POST", drop, body)
            assert (status, answer["error"]["code"]) == (400, "dead_letter.bad_request"), body
        reason = "the commune's old system is retired;\nresent by post"
        status, record, _ = await operator.call("POST", drop, {"reason": reason})
        assert (status, record["state"]) == (200, "dropped"), record
        status, answer, _ = await operator.call("POST", drop, {"reason": reason})
        assert (status, answer["error"]["code"]) == (409, "dead_letter.not_dead_lettered")
        status, answer, _ = await operator.call(
            "POST", f"/v1/dead-letters/{sent[1]}/{COMMUNE}/replay"
        )
        assert status == 409
        status, page, _ = await operator.call("GET", "/v1/dead-letters")
        assert page == {"dead_letters": [], "next": None}

        for path, code in (
            (f"/v1/dead-letters/{uuid.uuid4()}/{COMMUNE}/replay", "dead_letter.not_found"),
            (f"/v1/dead-letters/{sent[0]}/000.99.00.H56/replay", "dead_letter.not_found"),
            (f"/v1/dead-letters/not-a-uuid/{COMMUNE}/replay", "dead_letter.not_found"),
            (f"/v1/dead-letters/{sent[0]}/H56/replay", "dead_letter.bad_request"),
        ):
            status, answer, _ = await operator.call("POST", path)
            assert answer["error"]["code"] == code, (path, answer)

        # Each act is in the audit log, with who did it and why.
        auditor = operator.as_(AUDITOR)
        acts = []
        for packet_id in sent:
            _, journey, _ = await auditor.call("GET", f"/v1/audit/packets/{packet_id}")
            acts += [e for e in journey["entries"] if e["event"] == "admin"]
        assert [(a["outcome"], a["actor"]) for a in acts] == [
            ("dead_letter.replayed", "van-hanh"),
            ("dead_letter.dropped", "van-hanh"),
        ]
        assert acts[1]["detail"] == "the commune's old system is retired; resent by post"
        await asyncio.sleep(0.5)
    assert sent[1] not in commune.delivered()


@pytest.mark.asyncio
async def test_a_dead_letter_is_acted_on_where_it_ended_and_its_sender_told(
    tmp_path: Path,
) -> None:
    # Two daemons on RabbitMQ: the province's sends, the commune's made the attempts. The
    # sender's daemon shows the dead letter (from the receipt) but cannot replay it: it would
    # make no attempt. A drop at the commune's reaches the sender's record.
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    commune = AgencyServer(then=503)

    def config(name: str, served: dict[str, Any], known: str) -> Settings:
        code = next(iter(served))
        return Settings.model_validate(
            {
                "bus": {"url": BROKER, "exchange": exchange},
                "http": {"port": 0},
                "store": {"path": str(tmp_path / f"{name}.sqlite3")},
                "delivery": {"quick_retries": 0, "retry_delays_s": RETRY_DELAYS},
                "daemon": {"drain_s": 2},
                "agencies": [{"code": code, "name": code, "endpoint": served[code]}],
                "known_agencies": [{"code": known}],
                "clients": [
                    {"name": "van-hanh", "token": OPERATOR, "role": "operator"},
                    *(
                        [{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}]
                        if code == PROVINCE
                        else []
                    ),
                ],
            }
        )

    try:
        async with (
            agency_server(commune),
            daemon(config("r", {COMMUNE: {"url": commune.url}}, PROVINCE)) as r_url,
            daemon(config("s", {PROVINCE: {"mode": "pull"}}, COMMUNE)) as s_url,
            aiohttp.ClientSession() as session,
        ):
            at_sender, at_recipient = Api(session, s_url, OPERATOR), Api(session, r_url, OPERATOR)
            status, answer, _ = await at_sender.as_(PROVINCE_TOKEN).call(
                "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
            )
            assert status == 202, answer
            packet_id = answer["packet_id"]

            async def listed(api: Api) -> list[dict[str, Any]]:
                _, page, _ = await api.call("GET", "/v1/dead-letters")
                return list(page["dead_letters"])

            (theirs,) = await eventually(lambda: listed(at_recipient), "dead at the commune's")
            (ours,) = await eventually(lambda: listed(at_sender), "the receipt at the sender's")
            assert (theirs["here"], ours["here"]) == (True, False)
            for act, body in (("replay", None), ("drop", {"reason": "not ours to drop"})):
                status, answer, _ = await at_sender.call(
                    "POST", f"/v1/dead-letters/{packet_id}/{COMMUNE}/{act}", body
                )
                assert (status, answer["error"]["code"]) == (409, "dead_letter.elsewhere")

            status, record, _ = await at_recipient.call(
                "POST",
                f"/v1/dead-letters/{packet_id}/{COMMUNE}/drop",
                {"reason": "the commune resends it by post"},
            )
            assert (status, record["state"]) == (200, "dropped"), record

            async def told() -> bool:
                _, packet, _ = await at_sender.as_(PROVINCE_TOKEN).call(
                    "GET", f"/v1/packets/{packet_id}"
                )
                return bool(packet["deliveries"][0]["state"] == "dropped")

            await eventually(told, "the sender's record dropped too")
            assert await listed(at_sender) == []
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE], RETRY_DELAYS)
    assert commune.delivered() == []

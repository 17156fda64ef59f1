"""``/v1/endpoints`` against a running daemon (embedded bus): an integrator registers, tests,
changes and removes agencies live, and each change applies to the very next packet."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.registry.endpoint_transport import hmac_signature
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES
from tests.test_exchange_embedded import settled
from tests.test_exchange_rabbitmq import daemon, letter_to
from tests.tls_files import https_agency_server, make_tls_files

PROVINCE, DEPARTMENT, COMMUNE = "000.00.00.H56", "000.00.12.H56", "000.21.00.H56"
PROVINCE_TOKEN = "province-office-token-0123456789"
INTEGRATOR = "integrator-of-the-province-0123456789"
AUDITOR = "auditor-of-the-province-0123456789"
VAN_BAN = (EXAMPLES / "translators" / "van-ban.json").read_bytes()


@dataclass
class Api:
    """The daemon's API as one caller sees it."""

    session: aiohttp.ClientSession
    url: str
    token: str

    async def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {self.token}", **headers}}
        if isinstance(body, bytes):
            kwargs["data"] = body
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, f"{self.url}{path}", **kwargs) as answer:
            text = await answer.text()
            return answer.status, json.loads(text) if text else None, answer

    def as_(self, token: str) -> Api:
        return Api(self.session, self.url, token)


@asynccontextmanager
async def running(
    tmp_path: Path, province: AgencyServer, bus: dict[str, Any] | None = None
) -> AsyncIterator[Api]:
    """A daemon serving the province, with an integrator and an auditor; on the embedded bus
    unless ``bus`` gives a RabbitMQ url and exchange."""
    config = Settings.model_validate(
        {
            "bus": bus or {},
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.2, 0.2]},
            "daemon": {"drain_s": 5, "registry_poll_s": 0.2},
            "agencies": [
                {"code": PROVINCE, "name": "Văn phòng UBND tỉnh", "endpoint": {"url": province.url}}
            ],
            "clients": [
                {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]},
                {"name": "tinh-integrator", "token": INTEGRATOR, "role": "integrator"},
                {"name": "thanh-tra", "token": AUDITOR, "role": "auditor"},
            ],
        }
    )
    async with daemon(config) as url, aiohttp.ClientSession() as session:
        yield Api(session, url, INTEGRATOR)


def commune(url: str, code: str = COMMUNE, **endpoint: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "UBND xã Quảng Phú",
        "endpoint": {"url": url, "timeout_s": 2, **endpoint},
        "contact": {"name": "Lê Thị B", "phone": "0237 3852 111"},
    }


async def submit(
    api: Api, body: bytes, content_type: str = "application/xml", **headers: str
) -> str:
    status, answer, _ = await api.call(
        "POST", "/v1/packets", body, **{"Content-Type": content_type, **headers}
    )
    assert status == 202, answer
    return str(answer["packet_id"])


@pytest.mark.asyncio
async def test_an_integrator_registers_tests_and_serves_a_commune_live(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        sender = api.as_(PROVINCE_TOKEN)
        # Not yet registered: a letter to the commune is refused.
        status, answer, _ = await sender.call(
            "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
        )
        assert (status, answer["error"]["code"]) == (422, "packet.unknown_recipient")

        # By name, not address: a cookie jar keeps cookies of names only.
        by_name = quang_phu.url.replace("127.0.0.1", "localhost")
        status, record, response = await api.call("POST", "/v1/endpoints", commune(by_name))
        assert status == 201, record
        assert response.headers["Location"] == f"/v1/endpoints/{COMMUNE}"
        assert response.headers["ETag"] == '"1"'
        token = record.pop("token")
        assert record["revision"] == 1
        assert record["updated_by"] == "tinh-integrator (http)"
        assert record["parent"] == "000.00.00.H56"

        status, report, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert status == 200
        assert report["ok"]
        assert report["verdict"] == "answers"
        assert report["status"] == 204
        assert 0 < report["latency_ms"] < 2000
        assert report["tls"] is None  # plain http on loopback
        assert len(quang_phu.probes) == 1
        assert quang_phu.received == []

        # The very next packet for the commune is delivered there.
        packet_id = await submit(sender, letter_to(COMMUNE))
        state = await settled(api.url, packet_id)
        assert [d["state"] for d in state["deliveries"]] == ["delivered"]
        assert quang_phu.delivered() == [packet_id]
        # And the commune's system submits with the token it was given.
        reply = letter_to(PROVINCE).replace(
            b"<edXML:OrganId>000.00.00.H56</edXML:OrganId>",
            f"<edXML:OrganId>{COMMUNE}</edXML:OrganId>".encode(),
            1,
        )
        reply_id = await submit(api.as_(token), reply)
        for _ in range(100):
            if province.delivered() == [reply_id]:
                break
            await asyncio.sleep(0.05)
        assert province.delivered() == [reply_id]
        # The commune's test answer set a cookie; no later request of the daemon carries it.
        assert all("Cookie" not in r.headers for r in quang_phu.received)
        # The agency list answers "who can I send to" with the commune in it.
        status, listed, _ = await sender.call("GET", f"/v1/agencies?under={PROVINCE}")
        assert status == 200
        assert COMMUNE in [a["code"] for a in listed["agencies"]]


@pytest.mark.asyncio
async def test_change_disable_and_remove_apply_to_the_next_packet(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        first = await stack.enter_async_context(agency_server(AgencyServer()))
        moved = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        sender = api.as_(PROVINCE_TOKEN)
        status, record, _ = await api.call("POST", "/v1/endpoints", commune(first.url))
        assert status == 201
        status, record, response = await api.call(
            "PATCH",
            f"/v1/endpoints/{COMMUNE}",
            {"endpoint": {"url": moved.url}},
            **{"If-Match": '"1"'},
        )
        assert status == 200, record
        assert response.headers["ETag"] == '"2"'
        packet_id = await submit(sender, letter_to(COMMUNE))
        await settled(api.url, packet_id)
        assert moved.delivered() == [packet_id]
        assert first.delivered() == []
        # A stale revision loses: someone changed it meanwhile.
        status, answer, _ = await api.call(
            "PATCH", f"/v1/endpoints/{COMMUNE}", {"name": "x"}, **{"If-Match": '"1"'}
        )
        assert (status, answer["error"]["code"]) == (412, "registry.conflict")
        assert answer["error"]["details"] == {"revision": 2}
        # Disabled: refused at submission, with the code saying why.
        status, _, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/disable")
        assert status == 200
        status, answer, _ = await sender.call(
            "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
        )
        assert (status, answer["error"]["code"]) == (422, "packet.recipient_disabled")
        status, _, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/enable")
        # Only some kinds: the rest refused at submission.
        await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", {"endpoint": {"kinds": ["status"]}})
        status, answer, _ = await sender.call(
            "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
        )
        assert (status, answer["error"]["code"]) == (422, "packet.kind_not_accepted")
        # Removed: no longer routable.
        status, _, _ = await api.call("DELETE", f"/v1/endpoints/{COMMUNE}")
        assert status == 204
        status, answer, _ = await sender.call(
            "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
        )
        assert (status, answer["error"]["code"]) == (422, "packet.unknown_recipient")
        status, answer, _ = await api.call("GET", f"/v1/endpoints/{COMMUNE}")
        assert (status, answer["error"]["code"]) == (404, "registry.not_found")
        # The province removed too: its settings client may no longer speak for it.
        status, _, _ = await api.call("DELETE", f"/v1/endpoints/{PROVINCE}")
        assert status == 204
        status, answer, _ = await sender.call(
            "POST", "/v1/packets", letter_to(PROVINCE), **{"Content-Type": "application/xml"}
        )
        assert (status, answer["error"]["code"]) == (403, "auth.forbidden")


@pytest.mark.asyncio
async def test_a_recipient_disabled_while_its_packet_waits_is_dead_lettered_with_the_verdict(
    tmp_path: Path,
) -> None:
    """Found in review: this dead letter, reached before the signature check, lacked the
    ``signature`` entry every other final outcome has."""
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        down = await stack.enter_async_context(agency_server(AgencyServer(then=503)))
        api = await stack.enter_async_context(running(tmp_path, province))
        status, _, _ = await api.call(
            "POST", "/v1/endpoints", commune(down.url, retry_delays_s=[1.5, 0.2])
        )
        assert status == 201
        packet_id = await submit(api.as_(PROVINCE_TOKEN), letter_to(COMMUNE))
        for _ in range(200):
            if down.received:
                break
            await asyncio.sleep(0.01)
        status, _, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/disable")
        assert status == 200
        state = await settled(api.url, packet_id)
    assert [d["state"] for d in state["deliveries"]] == ["dead_lettered"]
    events = [(e["event"], e.get("detail", "")) for e in state["history"]]
    assert any("is disabled in the registry" in detail for _, detail in events), events
    assert [event for event, _ in events].count("signature") == 1, events
    assert len(down.received) == 1


@pytest.mark.asyncio
async def test_roles_integrators_change_auditors_read_agencies_neither(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        auditor, agency = api.as_(AUDITOR), api.as_(PROVINCE_TOKEN)
        status, listed, _ = await auditor.call("GET", "/v1/endpoints")
        assert status == 200
        assert [e["code"] for e in listed["endpoints"]] == [PROVINCE]
        assert listed["endpoints"][0]["source"] == "settings"
        status, shown, response = await auditor.call("GET", f"/v1/endpoints/{PROVINCE}")
        assert status == 200
        assert shown["tokens"] == []
        assert response.headers["ETag"] == '"1"'
        for method, path, body in [
            ("POST", "/v1/endpoints", commune("http://127.0.0.1:9/")),
            ("PATCH", f"/v1/endpoints/{PROVINCE}", {"name": "x"}),
            ("DELETE", f"/v1/endpoints/{PROVINCE}", None),
            ("POST", f"/v1/endpoints/{PROVINCE}/disable", None),
            ("POST", f"/v1/endpoints/{PROVINCE}/test", None),
            ("POST", f"/v1/endpoints/{PROVINCE}/tokens", None),
        ]:
            status, answer, _ = await auditor.call(method, path, body)
            assert (status, answer["error"]["code"]) == (403, "auth.forbidden"), (method, path)
        status, answer, _ = await agency.call("GET", "/v1/endpoints")
        assert (status, answer["error"]["code"]) == (403, "auth.forbidden")
        status, answer, _ = await api.as_("not-a-token-anyone-was-ever-given").call(
            "GET", "/v1/endpoints"
        )
        assert (status, answer["error"]["code"]) == (401, "auth.invalid")


@pytest.mark.asyncio
async def test_bad_requests_get_precise_errors_and_change_nothing(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        status, _, _ = await api.call(
            "POST", "/v1/endpoints", commune("http://127.0.0.1:9/") | {"token": "x" * 40}
        )
        assert status == 201
        cases: list[tuple[Any, int, str]] = [
            (b"{not json", 400, "registry.invalid"),
            (b"[1, 2]", 400, "registry.invalid"),
            (b"[" * 60_000, 400, "registry.invalid"),  # nested deeper than any parser likes
            (b"x" * 70_000, 413, "packet.too_large"),
            (commune("ftp://127.0.0.1/inbox", "000.21.01.H56"), 400, "registry.invalid"),
            (commune("http://127.0.0.1:9/", "21.H56"), 400, "agency_code.invalid"),
            (commune("http://127.0.0.1:9/"), 409, "registry.duplicate"),
            (
                commune("http://127.0.0.1:9/", "000.21.01.H56") | {"token": "x" * 40},
                409,
                "registry.token_reused",
            ),
            (
                commune("http://127.0.0.1:9/", "000.21.01.H56") | {"token": PROVINCE_TOKEN},
                409,
                "registry.token_reused",
            ),
            (
                commune("http://127.0.0.1:9/", "000.21.01.H56", translator="none-such"),
                400,
                "translation.unknown_translator",
            ),
            (
                commune("http://127.0.0.1:9/", "000.21.01.H56") | {"colour": "red"},
                400,
                "registry.invalid",
            ),
        ]
        async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
            before = (await store.registry.revision(), await store.audit.tree_size())
        for body, status, code in cases:
            got, answer, _ = await api.call("POST", "/v1/endpoints", body)
            assert (got, answer["error"]["code"]) == (status, code), (
                body if isinstance(body, dict) else body[:20],
                answer,
            )
        _, answer, _ = await api.call(
            "POST", "/v1/endpoints", commune("ftp://127.0.0.1/inbox", "000.21.01.H56")
        )
        assert answer["error"]["details"][0]["field"] == "endpoint.url"
        async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
            assert (await store.registry.revision(), await store.audit.tree_size()) == before
        status, answer, _ = await api.call(
            "PATCH", f"/v1/endpoints/{COMMUNE}", {"name": "x"}, **{"If-Match": "soon"}
        )
        assert (status, answer["error"]["code"]) == (400, "registry.invalid")
        status, answer, _ = await api.call("PATCH", "/v1/endpoints/000.21.09.H56", {"name": "x"})
        assert (status, answer["error"]["code"]) == (404, "registry.not_found")
        status, answer, _ = await api.call("DELETE", f"/v1/endpoints/{COMMUNE}/tokens/nope")
        assert (status, answer["error"]["code"]) == (404, "registry.not_found")
        # A token request's misspelt field is named, not ignored (found by the API fuzz).
        status, answer, _ = await api.call(
            "POST", f"/v1/endpoints/{COMMUNE}/tokens", {"lable": "second-system"}
        )
        assert (status, answer["error"]["details"]) == (400, {"unknown": ["lable"]})


@pytest.mark.asyncio
async def test_an_endpoint_that_cannot_be_reached_fails_its_test(tmp_path: Path) -> None:
    async with agency_server(AgencyServer()) as gone:
        url = gone.url  # a port nobody listens on once this server stops
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        await api.call("POST", "/v1/endpoints", commune(url))
        status, report, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert status == 200
        assert report["ok"] is False
        assert report["verdict"] == "unreachable"
        assert report["error"]["code"] == "endpoint.unreachable"
        assert url in report["error"]["message"]
        await api.call(
            "POST",
            "/v1/endpoints",
            {"code": "000.21.02.H56", "name": "x", "endpoint": {"mode": "pull"}},
        )
        status, answer, _ = await api.call("POST", "/v1/endpoints/000.21.02.H56/test")
        assert (status, answer["error"]["code"]) == (400, "registry.invalid")


@pytest.mark.asyncio
async def test_tls_details_and_a_client_certificate(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        secure = await stack.enter_async_context(
            https_agency_server(AgencyServer(), files, client_certificate=True)
        )
        api = await stack.enter_async_context(running(tmp_path, province))
        # Without the private CA, the handshake fails, and the test says it was TLS.
        await api.call("POST", "/v1/endpoints", commune(secure.url))
        _, report, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert report["ok"] is False
        assert report["verdict"] == "tls_failed"
        # With the CA but no client certificate, the server refuses the handshake.
        await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", {"endpoint": {"tls_ca": str(files.ca)}})
        _, report, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert report["ok"] is False
        auth = {
            "kind": "mtls",
            "certificate": str(files.client_cert),
            "private_key": str(files.client_key),
        }
        status, _, _ = await api.call(
            "PATCH", f"/v1/endpoints/{COMMUNE}", {"endpoint": {"auth": auth}}
        )
        assert status == 200
        _, report, _ = await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert report["ok"] is True, report
        tls = report["tls"]
        assert tls["version"] in {"TLSv1.2", "TLSv1.3"}
        assert tls["subject"] == "commonName=agency.quangphu.example"
        assert tls["issuer"] == "commonName=Test CA of Thanh Hoa"
        assert tls["subject_alt_names"] == ["127.0.0.1"]
        assert 28 <= tls["days_left"] <= 30
        assert tls["client_certificate"] is True
        packet_id = await submit(api.as_(PROVINCE_TOKEN), letter_to(COMMUNE))
        await settled(api.url, packet_id)
        assert secure.delivered() == [packet_id]


@pytest.mark.asyncio
async def test_hmac_signed_pushes_verify_at_the_agency(tmp_path: Path) -> None:
    secret = "a-shared-secret-of-the-commune-0123456789"
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        auth = {"kind": "hmac", "key_id": "k2026", "secret": secret}
        status, record, _ = await api.call(
            "POST", "/v1/endpoints", commune(quang_phu.url, auth=auth)
        )
        assert status == 201
        assert record["endpoint"]["auth"]["secret"] == "**********"
        packet_id = await submit(api.as_(PROVINCE_TOKEN), letter_to(COMMUNE))
        await settled(api.url, packet_id)
        (got,) = quang_phu.received
        digest = hashlib.sha256(got.body).hexdigest()
        assert got.headers["X-LGSP-Payload-SHA256"] == digest
        expected = hmac_signature(secret, got.headers["X-LGSP-Timestamp"], packet_id, digest)
        assert hmac.compare_digest(got.headers["X-LGSP-Signature"], f"v1={expected}")
        assert got.headers["X-LGSP-Key-Id"] == "k2026"
        # The test request is signed the same way.
        await api.call("POST", f"/v1/endpoints/{COMMUNE}/test")
        assert quang_phu.probes[0]["X-LGSP-Signature"].startswith("v1=")
        async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
            entries = await store.audit.query(AuditQuery(limit=1000))
        assert secret not in str(entries)


@pytest.mark.asyncio
async def test_translators_on_an_endpoint_work_both_ways(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        department = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        await api.call("POST", "/v1/endpoints", commune(department.url, DEPARTMENT))
        await api.call(
            "POST", "/v1/endpoints", commune(quang_phu.url, translator="vn-document-json")
        )
        # The province's system speaks the JSON document format too, from now on.
        status, _, _ = await api.call(
            "PATCH", f"/v1/endpoints/{PROVINCE}", {"endpoint": {"translator": "vn-document-json"}}
        )
        assert status == 200
        packet_id = await submit(api.as_(PROVINCE_TOKEN), VAN_BAN, "application/json")
        state = await settled(api.url, packet_id)
        assert state["kind"] == "edoc"
        assert {d["state"] for d in state["deliveries"]} == {"delivered"}
        assert department.received[0].body.startswith(b"<?xml")  # our packet, as translated
        got = quang_phu.received[0]
        assert got.headers["Content-Type"] == "application/json"
        assert json.loads(got.body)["trich_yeu"] == json.loads(VAN_BAN)["trich_yeu"]
        # A translation error names the field, and is audited as a refusal.
        status, answer, _ = await api.as_(PROVINCE_TOKEN).call(
            "POST", "/v1/packets", b'{"loai": "moi"}', **{"Content-Type": "application/json"}
        )
        assert (status, answer["error"]["code"]) == (400, "translation.failed")
        assert answer["error"]["details"]["field"]


@pytest.mark.asyncio
async def test_a_token_that_is_not_utf8_is_refused_not_a_crash(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        host, port = api.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /v1/endpoints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer \xff\xfe-not-utf8-token-0123456789\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"auth.invalid" in answer


@pytest.mark.asyncio
async def test_vietnamese_basic_credentials_reach_the_endpoint_in_utf8(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(running(tmp_path, province))
        auth = {"kind": "basic", "username": "văn-thư", "password": "mật-khẩu-xã-Quảng-Phú"}
        body = commune(quang_phu.url, auth=auth)
        assert (await api.call("POST", "/v1/endpoints", body))[0] == 201
        packet_id = await submit(api.as_(PROVINCE_TOKEN), letter_to(COMMUNE))
        await settled(api.url, packet_id)
        (got,) = quang_phu.received
        scheme, _, encoded = got.headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        assert base64.b64decode(encoded).decode() == "văn-thư:mật-khẩu-xã-Quảng-Phú"

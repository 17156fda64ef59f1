"""The audit log over HTTP, as auditors use it: a real server and client on loopback, tokens
in the auditor role only, precise 4xx for bad queries, and the page's sign-in and escaping."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.bundle import verify_bundle
from lgsp_adapter.audit.entry import canonical_entry
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.http.app import make_app
from lgsp_adapter.http.audit import AuditAccess, add_audit_routes
from lgsp_adapter.http.audit_page import add_audit_page
from lgsp_adapter.store.sqlite import SqliteStore
from tests import rfc9162
from tests.test_web import PROVINCE_TOKEN, auth, error_code, post
from tests.test_web import settings as agency_settings

AUDITOR_TOKEN = "state-audit-office-token-0123456789"


def settings(tmp_path: Path) -> Settings:
    base = agency_settings(tmp_path).model_dump(mode="json")
    base["clients"] = [
        {**client, "token": token}
        for client, token in zip(base["clients"], [PROVINCE_TOKEN, "x" * 24, "y" * 24], strict=True)
    ]
    base["clients"].append({"name": "kiem-toan", "token": AUDITOR_TOKEN, "role": "auditor"})
    return Settings.model_validate(base)


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    config = settings(tmp_path)
    key = LogKey.generate("lgsp-adapter/web-test")
    async with await SqliteStore.open(config.store.path) as store:
        directory = config.directory()
        intake = Intake(store=store, directory=directory, limits=config.limits)

        def mount(app: web.Application) -> None:
            add_audit_routes(app, AuditAccess(log=store.audit, key=key))
            add_audit_page(app)

        app = make_app(
            store=store,
            directory=directory,
            intake=intake,
            max_bytes=config.limits.max_bytes,
            mount=mount,
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for number in (1, 2, 3):
                response = await post(client, "edoc-new-thanh-hoa.edxml", PROVINCE_TOKEN, number)
                assert response.status == 202
            await store.audit.append(
                [AuditEntry(event=AuditEvent.REJECTED, detail="<script>alert(1)</script>")]
            )
            yield client


AUDITOR = auth(AUDITOR_TOKEN)


@pytest.mark.asyncio
async def test_only_auditors_read_the_log_and_auditors_submit_nothing(
    api: TestClient[Any, Any],
) -> None:
    assert await error_code(await api.get("/v1/audit/entries"), 401) == "auth.missing"
    agency = await api.get("/v1/audit/entries", headers=auth(PROVINCE_TOKEN))
    assert await error_code(agency, 403) == "auth.forbidden"
    submitted = await post(api, "edoc-new-thanh-hoa.edxml", AUDITOR_TOKEN)
    assert await error_code(submitted, 403) == "auth.forbidden"


@pytest.mark.asyncio
async def test_entries_page_by_cursor_and_bad_queries_get_400(
    api: TestClient[Any, Any],
) -> None:
    first = await (await api.get("/v1/audit/entries?limit=2", headers=AUDITOR)).json()
    assert [e["index"] for e in first["entries"]] == [0, 1]
    assert first["next"] == {"after": 1}
    rest = await (await api.get("/v1/audit/entries?after=1", headers=AUDITOR)).json()
    assert [e["index"] for e in rest["entries"]] == [2, 3]
    assert rest["next"] is None
    for query, fragment in [
        ("since=2026-11-28T00:00Z&until=2026-11-27T00:00Z", "since must be before until"),
        ("since=yesterday", "since"),
        ("limit=5000", "limit"),
        ("event=exploded", "event"),
        ("agency=H56", "agency"),
        # Found by the fuzz (tests/test_fuzz_openapi.py): read as seconds since 1970, as no
        # filter, as a number past SQLite's integers (a 500), as a number with a space.
        ("until=0.5", "'0.5' is not an ISO 8601 time"),
        ("since=&agency=000.00.00.H56", "empty parameters: since"),
        ("after=10924215432299178622976", "is not a whole number"),
        ("after=%2012", "is not a whole number"),
    ]:
        response = await api.get(f"/v1/audit/entries?{query}", headers=AUDITOR)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "audit.bad_query"
        assert fragment in error["message"]
    response = await api.get("/v1/audit/entries?colour=red", headers=AUDITOR)
    error = (await response.json())["error"]
    assert (response.status, error["code"]) == (400, "http.unknown_parameter")
    assert error["details"]["unknown"] == ["colour"]
    assert "agency" in error["details"]["allowed"]
    response = await api.head("/v1/audit/entries?colour=red", headers=AUDITOR)
    assert response.status == 400  # HEAD is GET without the body


@pytest.mark.asyncio
async def test_a_packets_journey_and_its_bundle(api: TestClient[Any, Any]) -> None:
    entries = (await (await api.get("/v1/audit/entries", headers=AUDITOR)).json())["entries"]
    packet = entries[0]["packet_id"]
    journey = await (await api.get(f"/v1/audit/packets/{packet}", headers=AUDITOR)).json()
    assert [e["event"] for e in journey["entries"]] == ["received"]
    missing = await api.get(
        f"/v1/audit/packets/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=AUDITOR
    )
    assert await error_code(missing, 404) == "audit.not_found"
    bad = await api.get("/v1/audit/packets/not-a-uuid", headers=AUDITOR)
    assert await error_code(bad, 400) == "audit.bad_query"
    bundle = await api.get(f"/v1/audit/bundle?packet_id={packet}", headers=AUDITOR)
    assert bundle.status == 200
    check = verify_bundle(await bundle.read())
    assert check.entries == 1


@pytest.mark.asyncio
async def test_checkpoints_and_proofs_check_with_rfc9162(api: TestClient[Any, Any]) -> None:
    none_yet = await api.get("/v1/audit/proofs/inclusion?index=0", headers=AUDITOR)
    assert await error_code(none_yet, 409) == "audit.no_checkpoint"
    made = await api.post("/v1/audit/checkpoints", headers=AUDITOR)
    assert made.status == 201
    again = await api.post("/v1/audit/checkpoints", headers=AUDITOR)
    assert again.status == 200
    note = await (await api.get("/v1/audit/checkpoints/latest", headers=AUDITOR)).text()
    assert note.startswith("lgsp-adapter/web-test\n4\n")
    proof = await (await api.get("/v1/audit/proofs/inclusion?index=2", headers=AUDITOR)).json()
    entries = (await (await api.get("/v1/audit/entries", headers=AUDITOR)).json())["entries"]
    fields = {k: v for k, v in entries[2].items() if k != "index"}
    root = base64.b64decode(note.splitlines()[2])
    path = [base64.b64decode(p) for p in proof["audit_path"]]
    assert rfc9162.inclusion_holds(canonical_entry(fields), 2, 4, path, root)
    for query in (
        "index=x",
        "index=99999999999999999999",
        "",
        "index=%C2%B2",
        "index=2&size=%C2%B2",
    ):
        response = await api.get(f"/v1/audit/proofs/inclusion?{query}", headers=AUDITOR)
        assert await error_code(response, 400) == "audit.bad_query"
    beyond = await api.get("/v1/audit/proofs/inclusion?index=9", headers=AUDITOR)
    assert await error_code(beyond, 404) == "audit.not_found"
    consistency = await api.get("/v1/audit/proofs/consistency?old=4&new=4", headers=AUDITOR)
    assert (await consistency.json())["proof"] == []
    key = await (await api.get("/v1/audit/public-key", headers=AUDITOR)).json()
    assert key["verifier_key"].startswith("lgsp-adapter/web-test+")
    verified = await (await api.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verified["ok"] is True
    assert verified["entries_checked"] == 4


@pytest.mark.asyncio
async def test_exports_stream_csv_and_json_lines(api: TestClient[Any, Any]) -> None:
    response = await api.get("/v1/audit/export?format=csv", headers=AUDITOR)
    assert response.headers["Content-Type"].startswith("text/csv")
    lines = (await response.text()).splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("index,at,event")
    response = await api.get("/v1/audit/export?format=xml", headers=AUDITOR)
    assert await error_code(response, 400) == "audit.bad_query"


@pytest.mark.asyncio
async def test_the_page_asks_for_an_auditors_token_and_escapes_what_it_shows(
    api: TestClient[Any, Any],
) -> None:
    response = await api.get("/audit", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/audit/login")
    refused = await api.post("/audit/login", data={"token": PROVINCE_TOKEN, "next": "/audit"})
    assert refused.status == 401
    signed = await api.post(
        "/audit/login",
        data={"token": AUDITOR_TOKEN, "next": "https://evil.example/"},
        allow_redirects=False,
    )
    assert signed.status == 303
    assert signed.headers["Location"] == "/audit"  # never an open redirect
    page = await api.get("/audit?lang=en")
    html = await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Exchange audit log" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    vietnamese = await (await api.get("/audit?lang=vi")).text()
    assert "Nhật ký trao đổi" in vietnamese
    bad = await api.get("/audit?since=yesterday")
    assert bad.status == 400
    assert "since" in await bad.text()


@pytest.mark.asyncio
async def test_the_page_does_not_wait_long_for_a_verification(
    api: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long log takes a while to verify: the page says so and shows the last result."""
    monkeypatch.setattr("lgsp_adapter.http.audit_page.PAGE_WAIT_S", 0)
    signed = await api.post("/v1/audit/checkpoints", headers=AUDITOR)
    assert signed.status == 201  # a log with entries and no checkpoint does not verify
    await api.post("/audit/login", data={"token": AUDITOR_TOKEN, "next": "/audit"})
    first = await (await api.get("/audit/checkpoints?lang=en")).text()
    assert "being verified again" in first
    assert "has not been verified yet" in first
    verified = await (await api.get("/v1/audit/verify", headers=AUDITOR)).json()
    assert verified["ok"] is True
    later = await (await api.get("/audit/checkpoints?lang=en")).text()
    assert "The log verifies" in later

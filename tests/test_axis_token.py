"""The provincial gateways' way in, against a real daemon: OAuth2 client credentials at
``/axis/token``, then the same operations with ``Authorization: Bearer`` and unsigned
``XroadVnpt-`` headers; tokens refused once stale, forged, or their system changed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.http.axis_token import AxisTokens
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.secret_box import SecretBox
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store.sqlite import SqliteStore
from tests.axis_sdk import SdkClient
from tests.test_axis_facade import (
    DISTRICT_SECRET,
    DISTRICT_SYSTEM,
    INTEGRATOR,
    PROVINCE_SECRET,
    PROVINCE_SYSTEM,
    facade,
    journey,
)
from tests.test_axis_facade_sends import to_the_communes
from tests.test_exchange_embedded import AUDITOR_TOKEN, COMMUNES, PROVINCE


@dataclass
class Gateway:
    """An agency system behind a provincial gateway: a token first, then bearer calls."""

    session: aiohttp.ClientSession
    url: str
    token: str = ""

    async def log_in(self, system_id: str, secret: str, *, basic: bool = True) -> Any:
        form = {"grant_type": "client_credentials"}
        headers = {"Authorization": aiohttp.encode_basic_auth(system_id, secret)} if basic else {}
        if not basic:
            form |= {"client_id": system_id, "client_secret": secret}
        token_url = f"{self.url}/axis/token"
        async with self.session.post(token_url, data=form, headers=headers) as answer:
            body = await answer.json()
            if answer.status == 200:
                assert answer.headers["Cache-Control"] == "no-store"
                self.token = body["access_token"]
            return answer.status, body

    async def call(
        self, operation: str, headers: dict[str, str], file: bytes | None = None
    ) -> tuple[int, Any]:
        sent = {f"XroadVnpt-{k}": v for k, v in headers.items()}
        sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if file is not None:
            data = aiohttp.FormData()
            data.add_field("file_doc", file, filename="doc.edxml")
        async with self.session.post(
            f"{self.url}/axis/{operation}", headers=sent, data=data
        ) as answer:
            return answer.status, await answer.json()


@pytest.mark.asyncio
async def test_a_gateway_client_sends_and_receives_with_bearer_tokens(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        province, district = Gateway(session, url), Gateway(session, url)
        assert (await province.log_in(PROVINCE_SYSTEM, PROVINCE_SECRET))[0] == 200
        status, issued = await district.log_in(DISTRICT_SYSTEM, DISTRICT_SECRET, basic=False)
        assert status == 200
        assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 3600)
        document = to_the_communes(5001)
        headers = {"from": PROVINCE, "messagetype": "edoc"}
        headers["hash-file"] = hashlib.sha256(document).hexdigest()
        status, sent = await province.call("sendEdoc", headers, document)
        assert (status, sent["status"]) == (200, "OK"), sent
        doc_id = sent["DocId"]
        for _ in range(200):
            listed = (await district.call("getReceivedEdocList", {"messagetype": "edoc"}))[1]
            if listed["data"]:
                break
            await asyncio.sleep(0.05)
        assert [item["docId"] for item in listed["data"]] == [doc_id]
        fetched = (await district.call("getEdoc", {"docId": doc_id}))[1]
        assert base64.b64decode(fetched["data"]) == document
        done = (await district.call("updateStatus", {"docId": doc_id, "status": "done"}))[1]
        assert done["status"] == "OK"
        events = await journey(url, doc_id)
        assert all(("delivered", commune) in events for commune in COMMUNES)


@pytest.mark.asyncio
async def test_tokens_are_refused_when_forged_misused_or_their_secret_changed(
    tmp_path: Path,
) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        gateway = Gateway(session, url)
        assert (await gateway.log_in(PROVINCE_SYSTEM, "not-the-secret"))[1]["error"] == (
            "invalid_client"
        )
        assert (await gateway.log_in("qlvb.khac", PROVINCE_SECRET))[0] == 401
        async with session.post(
            f"{url}/axis/token",
            data={"grant_type": "password"},
            headers={"Authorization": aiohttp.encode_basic_auth(PROVINCE_SYSTEM, PROVINCE_SECRET)},
        ) as answer:
            assert (answer.status, (await answer.json())["error"]) == (
                400,
                "unsupported_grant_type",
            )
        forged = Gateway(session, url, token="gAAAAAB-not-a-token")
        status, refused = await forged.call("countReceiveEdoc", {})
        assert (status, refused["status"], refused["ErrorCode"]) == (
            401,
            "FAIL",
            "axis.token_invalid",
        )
        assert (await gateway.log_in(PROVINCE_SYSTEM, PROVINCE_SECRET))[0] == 200
        assert (await gateway.call("countReceiveEdoc", {}))[0] == 200
        # A secret with characters form-encoding changes, sent raw in Basic as curl does.
        plus = "a+secret%20with=reserved&chars"
        async with session.put(
            f"{url}/v1/axis-systems/{DISTRICT_SYSTEM}",
            json={"agencies": COMMUNES, "secret": plus},
            headers={"Authorization": f"Bearer {INTEGRATOR}"},
        ) as answer:
            assert answer.status == 200, await answer.text()
        assert (await Gateway(session, url).log_in(DISTRICT_SYSTEM, plus))[0] == 200
        assert (await Gateway(session, url).log_in(DISTRICT_SYSTEM, plus, basic=False))[0] == 200
        # Naming another system beside the token is refused (the token itself is fine).
        status, refused = await gateway.call("countReceiveEdoc", {"systemid": DISTRICT_SYSTEM})
        assert (status, refused["ErrorCode"]) == (200, "axis.bad_request")
        # A token sealed with another key, and a download with a bad token: 401 both, so
        # that the client asks for a new one rather than take the document as gone.
        other = AxisTokens(SecretBox.at(tmp_path / "another.key"))
        foreign = Gateway(session, url, token=other.issue(PROVINCE_SYSTEM, PROVINCE_SECRET))
        assert (await foreign.call("countReceiveEdoc", {}))[0] == 401
        missing = "3f1d2c4b-0000-4000-8000-000000000000"
        async with session.post(
            f"{url}/axis/downloadEdoc",
            headers={"Authorization": f"Bearer {foreign.token}", "XroadVnpt-docId": missing},
        ) as answer:
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        # A signed request that a gateway in front of its client gave its own bearer token.
        sdk = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        sdk.headers.put("servicetype", "eDoc")
        headers = [*sdk.wire_headers(), ("Authorization", "Bearer eyJhbGciOi.gateway.jwt")]
        signed = await sdk.raw("POST", "countReceiveEdoc", headers, b"")
        assert signed.json()["status"] == "OK"
        # The integrator gives the system a new secret: its tokens stop at once.
        async with session.put(
            f"{url}/v1/axis-systems/{PROVINCE_SYSTEM}",
            json={"agencies": [PROVINCE], "secret": "the-province-secret-of-2027"},
            headers={"Authorization": f"Bearer {INTEGRATOR}"},
        ) as answer:
            assert answer.status == 200, await answer.text()
        status, refused = await gateway.call("countReceiveEdoc", {})
        assert (status, refused["ErrorCode"]) == (401, "axis.token_invalid")
        async with session.get(
            f"{url}/v1/audit/entries",
            params={"event": "rejected"},
            headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        ) as answer:
            outcomes = [e["outcome"] for e in (await answer.json())["entries"]]
        assert outcomes.count("auth.invalid") == 2  # the two log-ins refused
        assert outcomes.count("axis.token_invalid") == 4
        assert outcomes.count("axis.bad_request") == 1


@pytest.mark.asyncio
async def test_a_token_lasts_only_its_time(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        registry = Registry(store.registry, Directory(served=[], known=[], clients=[]))
        await registry.create(
            {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"mode": "pull"}},
            actor="integrator",
            issue_token=False,
        )
        box = SecretBox.at(tmp_path / "axis.key")
        systems = AxisSystems(registry, box)
        body = {"system_id": PROVINCE_SYSTEM, "agencies": [PROVINCE], "secret": PROVINCE_SECRET}
        await systems.register(body, actor="integrator")
        tokens = AxisTokens(box, ttl_s=1)
        token = tokens.issue(PROVINCE_SYSTEM, PROVINCE_SECRET)
        assert tokens.caller(token, systems)[0] == PROVINCE_SYSTEM
        # Another daemon with the same key file honours it; a sealed secret is no token.
        assert AxisTokens(SecretBox.at(tmp_path / "axis.key")).caller(token, systems)
        sealed = (await systems.records())[0].sealed_secret
        with pytest.raises(LgspError) as info:
            tokens.caller(sealed, systems)
        assert info.value.code is ErrorCode.AXIS_TOKEN_INVALID
        await asyncio.sleep(2.1)
        with pytest.raises(LgspError, match="older than an hour"):
            tokens.caller(token, systems)


@pytest.mark.asyncio
async def test_guesses_at_a_secret_are_paced_apart_from_the_systems_calls(tmp_path: Path) -> None:
    async with facade(tmp_path) as (url, _), aiohttp.ClientSession() as session:
        guesser = Gateway(session, url)
        known = [(await guesser.log_in(PROVINCE_SYSTEM, f"guess-{n}"))[0] for n in range(15)]
        unknown = [(await guesser.log_in(f"qlvb.khac-{n}", "guess"))[0] for n in range(15)]
        # Ten at once, then one a second: for a registered id and for the unknown ones alike,
        # so that a 429 tells nothing of which ids exist.
        assert known[:10] == [401] * 10
        assert unknown[:10] == [401] * 10
        assert 429 in known[10:]
        assert 429 in unknown[10:]
        # The province's own calls are not slowed by someone guessing at its secret.
        sdk = SdkClient(f"{url}/axis", PROVINCE_SYSTEM, PROVINCE_SECRET, session)
        assert (await sdk.call("countReceiveEdoc", {"servicetype": "eDoc"})).json()[
            "status"
        ] == "OK"

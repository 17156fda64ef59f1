"""The registry of endpoints, on both stores: every change checked, audited with its actor,
applied to the directory at once, and safe against integrators changing one endpoint at once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Client, KnownAgency, ServedAgency
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.records import Source
from lgsp_adapter.registry.service import Registry
from tests.registry_stores import Opened, opened, reopen_registry
from tests.tls_files import make_tls_files

COMMUNE = "000.12.34.H56"
SETTINGS_TOKEN = "the-settings-client-token-0123456789"
SECRET = "bearer-secret-never-to-be-shown-7d1f"


def commune(code: str = COMMUNE, **endpoint: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "UBND xã Quảng Phú",
        "endpoint": {"url": "http://127.0.0.1:9/inbox", **endpoint},
        "contact": {"name": "Nguyễn Văn A", "email": "cntt@quangphu.example"},
    }


def directory() -> Directory:
    settings_client = Client(
        name="qlvb",
        token=SecretStr(SETTINGS_TOKEN),
        agencies=[AgencyCode.parse("000.00.00.H56")],
    )
    return Directory(
        served=[],
        known=[KnownAgency(code=AgencyCode.parse("000.00.00.H41"), name="Nghệ An")],
        clients=[settings_client],
    )


def live(opened: Opened) -> Registry:
    return Registry(opened.registry, directory(), served_elsewhere=frozenset({"000.00.00.H41"}))


async def refused(code: ErrorCode, work: Any) -> LgspError:
    with pytest.raises(LgspError) as info:
        await work
    assert info.value.code is code, info.value
    return info.value


async def unchanged(opened: Opened) -> tuple[int, int]:
    return await opened.registry.revision(), await opened.audit.tree_size()


@pytest.mark.asyncio
async def test_a_registered_commune_is_served_at_once_and_its_token_works(
    opened: Opened,
) -> None:
    registry = live(opened)
    seen: list[list[str]] = []

    async def listener(codes: list[str]) -> None:
        seen.append(codes)

    late: list[tuple[list[str], bool]] = []

    async def after(codes: list[str]) -> None:  # sees the directory already changed
        late.append((codes, registry.directory.served(AgencyCode.parse(COMMUNE)) is not None))

    registry.on_change(listener, early=True)
    registry.on_change(after)
    record, token = await registry.create(commune(), actor="integrator:tinh")
    assert record.revision == 1
    assert record.source is Source.REGISTRY
    assert record.updated_by == "integrator:tinh"
    assert token is not None
    assert len(token) >= 40
    served = registry.directory.served(AgencyCode.parse(COMMUNE))
    assert served is not None
    assert served.contact is not None
    # Told before the directory lets packets in (every code), then after (the codes served).
    assert seen == [[COMMUNE], [COMMUNE]]
    assert late == [([COMMUNE], True)]  # once, after
    client = registry.directory.client_for(token)
    assert client is not None
    assert client.agencies == [AgencyCode.parse(COMMUNE)]
    assert registry.directory.client_for(token[:-1] + "x") is None
    # The token is kept only as its digest.
    assert token not in await opened.dump()
    entries = await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))
    assert [(e.outcome, e.recipient, e.actor) for e in entries] == [
        ("endpoint_created", COMMUNE, "integrator:tinh"),
        ("token_issued", COMMUNE, "integrator:tinh"),
    ]


@pytest.mark.asyncio
async def test_bad_registrations_are_refused_precisely_and_change_nothing(
    opened: Opened,
) -> None:
    registry = live(opened)
    await registry.create(commune(), actor="i")
    before = await unchanged(opened)
    await refused(ErrorCode.REGISTRY_DUPLICATE, registry.create(commune(), actor="i"))
    await refused(
        ErrorCode.REGISTRY_DUPLICATE, registry.create(commune("000.00.00.H41"), actor="i")
    )
    await refused(ErrorCode.AGENCY_CODE_INVALID, registry.create(commune("28.22.H17"), actor="i"))
    for url in ("ftp://127.0.0.1/inbox", "file:///etc/passwd", "javascript:alert(1)", "127.0.0.1"):
        error = await refused(
            ErrorCode.REGISTRY_INVALID,
            registry.create(commune("000.12.35.H56", url=url), actor="i"),
        )
        assert error.details[0]["field"] == "endpoint.url"
    await refused(
        ErrorCode.TRANSLATOR_UNKNOWN,
        registry.create(commune("000.12.35.H56", translator="no-such"), actor="i"),
    )
    error = await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.create(commune("000.12.35.H56", kinds=["edoc", "fax"]), actor="i"),
    )
    assert "unknown packet kinds ['fax']" in error.message
    error = await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.create(
            commune(
                "000.12.35.H56",
                url="https://127.0.0.1:9/",
                auth={"kind": "mtls", "certificate": "/nowhere.pem", "private_key": "/k.pem"},
            ),
            actor="i",
        ),
    )
    assert "TLS files cannot be loaded" in error.message
    assert await unchanged(opened) == before
    assert await opened.registry.endpoint("000.12.35.H56") is None


@pytest.mark.asyncio
async def test_a_token_is_never_shared_across_agencies(opened: Opened) -> None:
    registry = live(opened)
    chosen = "a-token-the-integrator-chose-0123456789"
    await registry.create(commune(), actor="i", token=chosen)
    before = await unchanged(opened)
    await refused(
        ErrorCode.REGISTRY_TOKEN_REUSED,
        registry.create(commune("000.12.35.H56"), actor="i", token=chosen),
    )
    await refused(
        ErrorCode.REGISTRY_TOKEN_REUSED,
        registry.create(commune("000.12.35.H56"), actor="i", token=SETTINGS_TOKEN),
    )
    await refused(
        ErrorCode.REGISTRY_TOKEN_REUSED, registry.issue_token(COMMUNE, actor="i", token=chosen)
    )
    assert await unchanged(opened) == before
    assert await opened.registry.endpoint("000.12.35.H56") is None
    # Revoked, it still may not be handed out again.
    token_id = (await opened.registry.tokens(COMMUNE))[0].id
    await registry.revoke_token(COMMUNE, token_id, actor="i")
    assert registry.directory.client_for(chosen) is None
    await refused(
        ErrorCode.REGISTRY_TOKEN_REUSED,
        registry.create(commune("000.12.35.H56"), actor="i", token=chosen),
    )
    await refused(ErrorCode.REGISTRY_NOT_FOUND, registry.revoke_token(COMMUNE, token_id, actor="i"))


@pytest.mark.asyncio
async def test_changes_are_merged_audited_and_never_show_secrets(opened: Opened) -> None:
    registry = live(opened)
    await registry.create(
        commune(auth={"kind": "bearer", "token": SECRET}), actor="i", issue_token=False
    )
    record = await registry.change(
        COMMUNE, {"endpoint": {"timeout_s": 3, "kinds": ["edoc", "status"]}}, actor="j"
    )
    assert record.revision == 2
    assert record.agency.endpoint.timeout_s == 3
    assert record.agency.endpoint.auth.kind == "bearer"  # untouched by a patch of other fields
    record = await registry.change(
        COMMUNE,
        {"endpoint": {"auth": {"kind": "basic", "username": "u", "password": "p"}}},
        actor="j",
    )
    assert record.agency.endpoint.auth.kind == "basic"  # replaced whole, not mixed
    record = await registry.change(COMMUNE, {"contact": None}, actor="j")
    assert record.agency.contact is None
    # A change that changes nothing writes nothing.
    before = await unchanged(opened)
    assert (await registry.change(COMMUNE, {"name": record.agency.name}, actor="j")).revision == 4
    assert await unchanged(opened) == before
    await refused(
        ErrorCode.REGISTRY_INVALID, registry.change(COMMUNE, {"code": "000.12.35.H56"}, actor="j")
    )
    await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.change(COMMUNE, {"endpoint": {"timeout_s": -1}}, actor="j"),
    )
    await refused(ErrorCode.REGISTRY_NOT_FOUND, registry.change("000.12.35.H56", {}, actor="j"))
    details = [e.detail or "" for e in await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))]
    assert "changed endpoint.kinds, endpoint.timeout_s; revision 2" in details
    assert (
        "changed endpoint.auth.kind, endpoint.auth.password, endpoint.auth.token,"
        " endpoint.auth.username; revision 3" in details
    )
    assert SECRET not in "".join(details)


@pytest.mark.asyncio
async def test_concurrent_changes_to_one_endpoint_never_lose_one(opened: Opened) -> None:
    registry = live(opened)
    await registry.create(commune(), actor="i", issue_token=False)
    # Ten integrators who all read revision 1: exactly one wins, the rest are told to re-read.
    outcomes = await asyncio.gather(
        *(
            registry.change(
                COMMUNE, {"endpoint": {"timeout_s": n + 1}}, actor=f"i{n}", expected_revision=1
            )
            for n in range(10)
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, LgspError)]
    assert len(won) == 1
    assert len(lost) == 9
    assert {e.code for e in lost} == {ErrorCode.REGISTRY_CONFLICT}
    # Without a revision, changes of different fields at once all land, through two handles.
    async with reopen_registry(opened) as other:
        elsewhere = Registry(other, directory())
        await asyncio.gather(
            registry.change(COMMUNE, {"contact": {"phone": "0237 3852 111"}}, actor="a"),
            elsewhere.change(COMMUNE, {"endpoint": {"send_arrival_status": True}}, actor="b"),
            registry.change(COMMUNE, {"name": "UBND xã Quảng Phú (mới)"}, actor="c"),
        )
    record = await opened.registry.endpoint(COMMUNE)
    assert record is not None
    assert record.revision == 5
    assert record.agency.contact is not None
    assert record.agency.contact.phone == "0237 3852 111"
    assert record.agency.endpoint.send_arrival_status
    assert record.agency.name.endswith("(mới)")


@pytest.mark.asyncio
async def test_disable_and_remove(opened: Opened) -> None:
    registry = live(opened)
    _, token = await registry.create(commune(), actor="i")
    assert token is not None
    record = await registry.set_enabled(COMMUNE, False, actor="i", expected_revision=1)
    assert not record.agency.enabled
    await refused(
        ErrorCode.REGISTRY_CONFLICT, registry.remove(COMMUNE, actor="i", expected_revision=1)
    )
    await registry.remove(COMMUNE, actor="i", expected_revision=2)
    assert registry.directory.served(AgencyCode.parse(COMMUNE)) is None
    assert registry.directory.client_for(token) is None
    assert all(t.revoked_at is not None for t in await opened.registry.tokens(COMMUNE))
    outcomes = [e.outcome for e in await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))]
    assert outcomes[-2:] == ["endpoint_disabled", "endpoint_removed"]
    await refused(ErrorCode.REGISTRY_NOT_FOUND, registry.remove(COMMUNE, actor="i"))


@pytest.mark.asyncio
async def test_settings_agencies_load_once_and_yield_to_an_integrators_change(
    opened: Opened,
) -> None:
    registry = live(opened)
    agency = ServedAgency.model_validate(commune())
    await registry.load_settings_agencies([agency])
    await registry.load_settings_agencies([agency])  # the next start: nothing to do
    record = await opened.registry.endpoint(COMMUNE)
    assert record is not None
    assert record.source is Source.SETTINGS
    assert record.revision == 1
    edited = agency.model_copy(update={"name": "UBND xã Quảng Phú, huyện Quảng Xương"})
    await registry.load_settings_agencies([edited])  # the operator edited the file
    record = await opened.registry.endpoint(COMMUNE)
    assert record is not None
    assert record.revision == 2
    assert record.agency.name == edited.name
    await registry.change(COMMUNE, {"endpoint": {"timeout_s": 4}}, actor="i")
    await registry.load_settings_agencies([agency])  # the registry's change stays
    record = await opened.registry.endpoint(COMMUNE)
    assert record is not None
    assert record.agency.endpoint.timeout_s == 4
    # Gone from the settings: removed if the settings own it, kept if the registry does.
    other = ServedAgency.model_validate(commune("000.12.35.H56"))
    await registry.load_settings_agencies([other])
    await registry.load_settings_agencies([])
    assert await opened.registry.endpoint("000.12.35.H56") is None
    assert await opened.registry.endpoint(COMMUNE) is not None
    entries = await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))
    assert [(e.outcome, e.recipient, e.detail, e.actor) for e in entries] == [
        ("endpoint_from_settings", COMMUNE, "added", "daemon"),
        ("endpoint_from_settings", COMMUNE, "changed", "daemon"),
        ("endpoint_changed", COMMUNE, "changed endpoint.timeout_s; revision 3", "i"),
        ("endpoint_from_settings", "000.12.35.H56", "added", "daemon"),
        ("endpoint_removed", "000.12.35.H56", "no longer in the settings", "daemon"),
    ]


@pytest.mark.asyncio
async def test_a_change_made_by_another_process_reaches_a_watching_daemon(
    opened: Opened,
) -> None:
    registry = live(opened)
    await registry.refresh()
    stopping = asyncio.Event()
    watching = asyncio.create_task(registry.watch(stopping, interval_s=0.05))
    try:
        async with reopen_registry(opened) as other:
            _, token = await Registry(other, directory()).create(commune(), actor="cli")
        assert token is not None
        for _ in range(100):
            if registry.directory.client_for(token) is not None:
                break
            await asyncio.sleep(0.05)
        assert registry.directory.served(AgencyCode.parse(COMMUNE)) is not None
        assert registry.directory.client_for(token) is not None
    finally:
        stopping.set()
        await watching


@pytest.mark.asyncio
async def test_a_listener_that_fails_is_told_again(opened: Opened) -> None:
    registry = live(opened)
    calls: list[list[str]] = []

    async def flaky(codes: list[str]) -> None:
        calls.append(codes)
        if len(calls) == 1:
            raise ConnectionError("the broker is away")

    registry.on_change(flaky, early=True)
    record, token = await registry.create(commune(), actor="i")  # stored, though the bus failed
    assert record.revision == 1
    # Not served until the bus has made room for it; its token already known.
    assert registry.directory.served(AgencyCode.parse(COMMUNE)) is None
    assert token is not None
    assert registry.directory.client_for(token) is not None
    assert await registry.refresh()  # the next look tries again
    assert registry.directory.served(AgencyCode.parse(COMMUNE)) is not None
    assert not await registry.refresh()  # and, done, stops
    assert calls == [[COMMUNE], [COMMUNE], [COMMUNE]]


@pytest.mark.asyncio
async def test_an_integrators_removal_outlives_the_settings_file_and_revisions_go_on(
    opened: Opened,
) -> None:
    registry = live(opened)
    agency = ServedAgency.model_validate(commune())
    await registry.load_settings_agencies([agency])
    await registry.remove(COMMUNE, actor="i")
    await registry.load_settings_agencies([agency])  # the next start: it stays removed
    assert await opened.registry.endpoint(COMMUNE) is None
    # Registered again, it continues its revisions: an old If-Match cannot match it.
    record, _ = await registry.create(commune(), actor="i")
    assert record.revision == 2
    await refused(
        ErrorCode.REGISTRY_CONFLICT,
        registry.change(COMMUNE, {"name": "x"}, actor="i", expected_revision=1),
    )


@pytest.mark.asyncio
async def test_concurrent_revocations_of_one_token_make_one_entry(opened: Opened) -> None:
    registry = live(opened)
    await registry.create(commune(), actor="i")
    token_id = (await opened.registry.tokens(COMMUNE))[0].id
    outcomes = await asyncio.gather(
        *(registry.revoke_token(COMMUNE, token_id, actor=f"i{n}") for n in range(8)),
        return_exceptions=True,
    )
    assert sum(o is None for o in outcomes) == 1
    assert {o.code for o in outcomes if isinstance(o, LgspError)} == {ErrorCode.REGISTRY_NOT_FOUND}
    entries = await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN, outcome="token_revoked"))
    assert len(entries) == 1


@pytest.mark.asyncio
async def test_credentials_follow_their_host_and_the_mask_is_no_secret(opened: Opened) -> None:
    registry = live(opened)
    await registry.create(
        commune(auth={"kind": "bearer", "token": SECRET}), actor="i", issue_token=False
    )
    before = await unchanged(opened)
    error = await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.change(COMMUNE, {"endpoint": {"url": "https://elsewhere.example/in"}}, actor="i"),
    )
    assert "send its auth again" in error.message
    error = await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.change(
            COMMUNE, {"endpoint": {"auth": {"kind": "bearer", "token": "**********"}}}, actor="i"
        ),
    )
    assert "how a secret is shown" in error.message
    assert await unchanged(opened) == before
    # Nor through a detour: pull (no URL), then push to another host.
    await registry.change(COMMUNE, {"endpoint": {"mode": "pull", "url": None}}, actor="i")
    await refused(
        ErrorCode.REGISTRY_INVALID,
        registry.change(
            COMMUNE, {"endpoint": {"mode": "push", "url": "http://evil.example/x"}}, actor="i"
        ),
    )
    back = {
        "mode": "push",
        "url": "http://127.0.0.1:9/inbox",
        "auth": {"kind": "bearer", "token": SECRET},
    }
    await registry.change(COMMUNE, {"endpoint": back}, actor="i")
    # The same host on another path keeps its credentials; another host with auth restated too.
    await registry.change(COMMUNE, {"endpoint": {"url": "http://127.0.0.1:9/other"}}, actor="i")
    moved = {"url": "https://elsewhere.example/in", "auth": {"kind": "bearer", "token": "t" * 30}}
    record = await registry.change(COMMUNE, {"endpoint": moved}, actor="i")
    assert str(record.agency.endpoint.url) == "https://elsewhere.example/in"


@pytest.mark.asyncio
async def test_credentials_no_request_can_carry_are_refused(opened: Opened, tmp_path: Path) -> None:
    registry = live(opened)
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    encrypted = make_tls_files(tmp_path)
    locked = tmp_path / "locked.key"
    key = serialization.load_pem_private_key(encrypted.client_key.read_bytes(), password=None)
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    https = "https://127.0.0.1:9/inbox"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "http://alice:pw@127.0.0.1:9/"}, "may not carry credentials"),
        ({"auth": {"kind": "basic", "username": "a:b", "password": "p"}}, "pattern"),
        ({"auth": {"kind": "bearer", "token": "a\r\nInjected: 1"}}, "control characters"),
        ({"auth": {"kind": "bearer", "token": ""}}, "cannot be empty"),
        ({"url": https, "tls_ca": str(fifo)}, "TLS files cannot be loaded"),
        ({"url": https, "tls_ca": "/etc/pass\x00wd"}, "TLS files cannot be loaded"),
        (
            {
                "url": https,
                "auth": {
                    "kind": "mtls",
                    "certificate": str(encrypted.client_cert),
                    "private_key": str(locked),
                },
            },
            "encrypted private key",
        ),
    ]
    for endpoint, what in cases:
        error = await refused(
            ErrorCode.REGISTRY_INVALID,
            asyncio.wait_for(
                registry.create(commune(**endpoint), actor="i", issue_token=False), timeout=10
            ),
        )
        assert what in error.message, (endpoint, error.message)
    for token in (" padded-token-of-enough-length-0001", "x" * 23, "tab\tinside-a-long-token-0001"):
        await refused(
            ErrorCode.REGISTRY_INVALID, registry.create(commune(), actor="i", token=token)
        )
    assert await opened.registry.endpoints() == []


__all__ = ["opened"]  # the fixture, shared with the other registry tests

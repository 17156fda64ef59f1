"""The axis systems of the registry, on both stores: registered live and audited, secrets sealed
(never in the store in the clear), and seen by another process on the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.secret_box import SecretBox
from lgsp_adapter.registry.service import Registry
from tests.registry_stores import Opened, opened, reopen_registry

PROVINCE = "000.00.00.H56"
DEPARTMENT = "000.00.12.H56"
SYSTEM = "qlvb.tinh-h56"
SECRET = "the-axis-secret-the-qlvb-already-has"


def agency(code: str) -> dict[str, Any]:
    return {"code": code, "name": f"Đơn vị {code}", "endpoint": {"mode": "pull"}}


async def live(opened: Opened, box: SecretBox) -> tuple[Registry, AxisSystems]:
    registry = Registry(opened.registry, Directory(served=[], known=[], clients=[]))
    for code in (PROVINCE, DEPARTMENT):
        await registry.create(agency(code), actor="integrator:tinh", issue_token=False)
    systems = AxisSystems(registry, box)
    await systems.reload()
    return registry, systems


async def refused(code: ErrorCode, work: Any) -> LgspError:
    with pytest.raises(LgspError) as info:
        await work
    assert info.value.code is code, info.value
    return info.value


@pytest.mark.asyncio
async def test_a_system_registered_is_known_at_once_with_its_secret_sealed(
    opened: Opened, tmp_path: Path
) -> None:
    box = SecretBox.at(tmp_path / "axis.key")
    registry, systems = await live(opened, box)
    body = {"system_id": SYSTEM, "agencies": [PROVINCE, DEPARTMENT], "secret": SECRET}
    record, made = await systems.register(body, actor="integrator:tinh")
    assert made is None  # the integrator gave the secret the software already holds
    assert record.agencies == (PROVINCE, DEPARTMENT)
    caller = systems.caller(SYSTEM)
    assert caller is not None
    assert caller.secret == SECRET
    assert caller.client.agencies == [AgencyCode.parse(PROVINCE), AgencyCode.parse(DEPARTMENT)]
    assert systems.secret_of("another") is None
    assert SECRET not in await opened.dump()
    entries = await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))
    assert [(e.outcome, e.actor) for e in entries][-1] == (
        "axis_system_registered",
        "integrator:tinh",
    )
    # Another process on the same store (a replica, the CLI) sees it, with the same key file.
    async with reopen_registry(opened) as again:
        other = AxisSystems(Registry(again, Directory(served=[], known=[], clients=[])), box)
        await other.reload()
        seen = other.caller(SYSTEM)
        assert seen is not None
        assert seen.secret == SECRET
    # A store beside another key file serves no system rather than the wrong secret.
    stranger = AxisSystems(registry, SecretBox.at(tmp_path / "other.key"))
    await stranger.reload()
    assert stranger.caller(SYSTEM) is None


@pytest.mark.asyncio
async def test_a_secret_is_made_when_none_is_given_and_changes_keep_or_replace_it(
    opened: Opened, tmp_path: Path
) -> None:
    _, systems = await live(opened, SecretBox.at(tmp_path / "axis.key"))
    _, made = await systems.register({"system_id": SYSTEM, "agencies": [PROVINCE]}, actor="i")
    assert made is not None
    assert len(made) >= 40
    caller = systems.caller(SYSTEM)
    assert caller is not None
    assert caller.secret == made
    # A change without a secret keeps it; with one, replaces it.
    body = {"system_id": SYSTEM, "agencies": [PROVINCE, DEPARTMENT]}
    await systems.register(body, actor="i", replace=True)
    caller = systems.caller(SYSTEM)
    assert caller is not None
    assert caller.secret == made
    assert len(caller.client.agencies) == 2
    await systems.register({**body, "secret": SECRET}, actor="i", replace=True)
    caller = systems.caller(SYSTEM)
    assert caller is not None
    assert caller.secret == SECRET
    await systems.remove(SYSTEM, actor="i")
    assert systems.caller(SYSTEM) is None
    outcomes = [
        e.outcome
        for e in await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))
        if (e.outcome or "").startswith("axis_")
    ]
    assert outcomes == [
        "axis_system_registered",
        "axis_system_changed",
        "axis_system_changed",
        "axis_system_removed",
    ]


@pytest.mark.asyncio
async def test_bad_registrations_are_refused_precisely_and_change_nothing(
    opened: Opened, tmp_path: Path
) -> None:
    _, systems = await live(opened, SecretBox.at(tmp_path / "axis.key"))
    await systems.register({"system_id": SYSTEM, "agencies": [PROVINCE]}, actor="i")
    before = (await opened.registry.revision(), await opened.audit.tree_size())
    cases: list[tuple[ErrorCode, dict[str, Any]]] = [
        (ErrorCode.REGISTRY_DUPLICATE, {"system_id": SYSTEM, "agencies": [PROVINCE]}),
        (ErrorCode.REGISTRY_INVALID, {"system_id": "x y", "agencies": [PROVINCE]}),
        (ErrorCode.REGISTRY_INVALID, {"system_id": "s2", "agencies": []}),
        (ErrorCode.REGISTRY_NOT_FOUND, {"system_id": "s2", "agencies": ["000.00.00.H41"]}),
        (ErrorCode.REGISTRY_INVALID, {"system_id": "s2", "agencies": [PROVINCE, PROVINCE]}),
        (ErrorCode.REGISTRY_INVALID, {"system_id": "s2", "agencies": [PROVINCE], "secret": "x"}),
        (ErrorCode.REGISTRY_INVALID, {"system_id": "s2", "agencies": [PROVINCE], "extra": 1}),
        (
            ErrorCode.REGISTRY_INVALID,
            {"system_id": "s2", "agencies": [PROVINCE], "secret": "sixteen-chars-or\nmore"},
        ),
    ]
    for code, body in cases:
        error = await refused(code, systems.register(body, actor="i"))
        assert "sixteen" not in error.message
    await refused(ErrorCode.REGISTRY_NOT_FOUND, systems.remove("s2", actor="i"))
    await refused(
        ErrorCode.REGISTRY_NOT_FOUND,
        systems.register({"system_id": "s2", "agencies": [PROVINCE]}, actor="i", replace=True),
    )
    assert (await opened.registry.revision(), await opened.audit.tree_size()) == before


__all__ = ["opened"]  # the fixture, shared with the other registry tests


@pytest.mark.asyncio
async def test_a_replica_with_another_key_file_is_refused_at_start(
    opened: Opened, tmp_path: Path
) -> None:
    # The first daemon on the store leaves its key's seal there; a replica that made its own
    # key file (none was copied to it) must not start and seal secrets the first cannot open.
    first = SecretBox.at(tmp_path / "first.key")
    _, systems = await live(opened, first)
    await systems.check_key("first.key")
    await systems.register({"system_id": SYSTEM, "agencies": [PROVINCE]}, actor="integrator")
    async with reopen_registry(opened) as again:
        replica = Registry(again, Directory(served=[], known=[], clients=[]))
        other = AxisSystems(replica, SecretBox.at(tmp_path / "replica.key"))
        with pytest.raises(FatalError, match=r"replica\.key is not the key") as info:
            await other.check_key(str(tmp_path / "replica.key"))
        assert info.value.code is ErrorCode.CONFIG_INVALID
        copied = AxisSystems(replica, SecretBox.at(tmp_path / "first.key"))
        await copied.check_key("first.key")  # the key file copied over: it starts
        await copied.reload()
        assert copied.secret_of(SYSTEM) == systems.secret_of(SYSTEM)


@pytest.mark.asyncio
async def test_on_a_store_from_before_the_check_the_key_that_opens_its_secrets_wins(
    opened: Opened, tmp_path: Path
) -> None:
    # Systems registered before the store kept a seal of its key: the replica with a key of
    # its own must not leave its seal first and lock the right key out.
    right = SecretBox.at(tmp_path / "right.key")
    _, systems = await live(opened, right)
    await systems.register({"system_id": SYSTEM, "agencies": [PROVINCE]}, actor="integrator")
    async with reopen_registry(opened) as again:
        replica = Registry(again, Directory(served=[], known=[], clients=[]))
        own = AxisSystems(replica, SecretBox.at(tmp_path / "own.key"))
        with pytest.raises(FatalError, match="is not the key"):
            await own.check_key("own.key")
        await AxisSystems(replica, SecretBox.at(tmp_path / "right.key")).check_key("right.key")
        with pytest.raises(FatalError, match="is not the key"):
            await own.check_key("own.key")

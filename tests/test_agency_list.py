"""The agency list: the national axis' list read with its hierarchy and quirks, merged into the
store (and audited), and answered to agency systems as "who can I send to"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.registry.agency_list import read_national_list
from lgsp_adapter.store.sqlite import SqliteStore
from tests.conftest import DATA
from tests.test_exchange_rabbitmq import daemon

NATIONAL = (DATA / "national-agencies.json").read_bytes()
TOKEN = "province-office-token-0123456789"


def test_the_national_list_keeps_its_hierarchy_and_reports_what_it_skips() -> None:
    agencies, skipped = read_national_list(NATIONAL)
    by_code = {a.code: a for a in agencies}
    assert by_code["000.00.12.H56"].parent == "000.00.00.H56"  # as the list says
    assert by_code["000.21.00.H56"].parent == "000.00.00.H56"  # as the code implies
    assert by_code["000.00.00.H56"].parent is None
    assert by_code["000.56.20.G12"].parent == "000.00.00.G12"
    assert by_code["000.22.00.H56"].name == "UBND xã Hoằng Hóa"  # blanks tidied
    assert by_code["000.23.00.H56"].deleted
    assert by_code["000.00.00.H56"].fax == "0237 3852 030"
    assert [(s["position"], s["why"]) for s in skipped] == [
        (8, "'28.22.H17' is not an agency code of the form 000.00.00.X00"),
        (9, "no name as text"),
        (10, "not an object"),
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", ErrorCode.JSON_MALFORMED),
        ('{"status": "FAIL", "ErrorDesc": "sai chữ ký"}'.encode(), ErrorCode.AGENCY_LIST_INVALID),
        (b'{"status": "OK", "data": {"code": "x"}}', ErrorCode.AGENCY_LIST_INVALID),
        (b"42", ErrorCode.AGENCY_LIST_INVALID),
    ],
)
def test_a_document_that_is_not_a_list_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(InvalidPacket) as raised:
        read_national_list(data)
    assert raised.value.code is code


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lgsp_adapter", "agencies", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.asyncio
async def test_imports_merge_and_are_audited(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    first = run("import", str(DATA / "national-agencies.json"), "--store", str(store))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "11 read: 8 added, 0 updated, 0 unchanged, 1 marked deleted, 3 skipped"
    )
    assert "skipped entry 8: '28.22.H17'" in first.stderr
    again = run("import", str(DATA / "national-agencies.json"), "--store", str(store))
    assert "0 added, 0 updated, 8 unchanged" in again.stdout
    changed = json.loads(NATIONAL)
    changed["data"][3]["name"] = "UBND xã Quảng Phú (mới)"
    (tmp_path / "changed.json").write_text(json.dumps(changed, ensure_ascii=False))
    third = run("import", str(tmp_path / "changed.json"), "--store", str(store))
    assert "0 added, 1 updated, 7 unchanged" in third.stdout
    listed = run("list", "--under", "000.00.00.H56", "--store", str(store))
    codes = [line.split()[0] for line in listed.stdout.splitlines()]
    assert codes == ["000.00.12.H56", "000.00.20.H56", "000.21.00.H56", "000.22.00.H56"]
    async with await SqliteStore.open(store) as opened:
        imports = await opened.audit.query(AuditQuery(event=AuditEvent.ADMIN))
    assert [e.outcome for e in imports] == ["agencies_imported"] * 3
    assert (imports[0].actor or "").endswith("(cli)")  # the account and machine that ran it
    assert imports[0].payload_sha256 is not None


@pytest.mark.asyncio
async def test_agency_systems_ask_who_they_can_send_to(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite3"
    imported = run("import", str(DATA / "national-agencies.json"), "--store", str(store_path))
    assert imported.returncode == 0
    config = Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(store_path)},
            "agencies": [
                {"code": "000.00.00.H56", "name": "VP UBND", "endpoint": {"mode": "pull"}},
                {"code": "000.99.00.H56", "name": "UBND xã Mới", "endpoint": {"mode": "pull"}},
                # The national list has it deleted; served here, it is routable all the same.
                {"code": "000.23.00.H56", "name": "UBND xã Đông Sơn", "endpoint": {"mode": "pull"}},
            ],
            "known_agencies": [{"code": "000.21.00.H56"}],
            "clients": [{"name": "province", "token": TOKEN, "agencies": ["000.00.00.H56"]}],
        }
    )
    async with daemon(config) as url, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}

        async def get(query: str) -> tuple[int, Any]:
            answer = await session.get(f"{url}/v1/agencies{query}", headers=headers)
            return answer.status, await answer.json()

        status, body = await get("?under=000.00.00.H56")
        assert status == 200
        rows = {a["code"]: (a["name"], a["reachable"]) for a in body["agencies"]}
        assert rows == {
            "000.00.12.H56": ("Sở Xây dựng tỉnh Thanh Hóa", False),
            "000.00.20.H56": ("Sở Giao thông vận tải tỉnh Thanh Hóa", False),
            "000.21.00.H56": ("UBND xã Quảng Phú", True),  # known on the bus
            "000.22.00.H56": ("UBND xã Hoằng Hóa", False),
            "000.23.00.H56": ("UBND xã Đông Sơn (cũ)", True),
            "000.99.00.H56": ("UBND xã Mới", True),  # from the settings: served here
        }
        status, body = await get("?q=thuế")
        assert [a["code"] for a in body["agencies"]] == ["000.00.00.G12", "000.56.20.G12"]
        status, body = await get("?q=đông sơn")
        assert [(a["code"], a["reachable"]) for a in body["agencies"]] == [("000.23.00.H56", True)]
        status, body = await get("?q=ủy ban")  # Vietnamese capitals fold too
        assert [a["code"] for a in body["agencies"]] == ["000.00.00.H56"]
        status, body = await get("?q=h56&limit=1")
        assert [a["code"] for a in body["agencies"]] == ["000.00.00.H56"]
        # The national name stays: the settings' short one does not overwrite it.
        status, body = await get("?q=000.00.00.H56")
        assert body["agencies"][0]["name"] == "Ủy ban nhân dân tỉnh Thanh Hóa"
        status, body = await get("?limit=2")
        assert body["next"] == {"after": body["agencies"][-1]["code"]}
        status, body = await get("?under=H56")
        assert (status, body["error"]["code"]) == (400, "agency_code.invalid")
        for bad in ("0", "9" * 5000, "²"):  # int() alone would fail on the last two with a 500
            status, body = await get(f"?limit={bad}")
            assert (status, body["error"]["code"]) == (400, "agency_list.invalid")
        answer = await session.get(f"{url}/v1/agencies")
        assert answer.status == 401


def test_duplicates_cycles_and_odd_values_are_reported_or_repaired() -> None:
    listing = {
        "data": [
            {"code": "000.30.00.H56", "name": "Xã cũ", "deleted": True},
            {"code": "000.31.00.H56", "pcode": "000.31.00.H56", "name": "Tự làm cha"},
            {"code": "000.00.40.H56", "pcode": "000.00.41.H56", "name": "A"},
            {"code": "000.00.41.H56", "pcode": "000.00.40.H56", "name": "B"},
            {"code": "000.32.00.H56", "name": {"vi": "không phải chữ"}},
            {"code": "000.30.00.H56", "name": "Xã mới"},
        ]
    }
    agencies, skipped = read_national_list(json.dumps(listing).encode())
    by_code = {a.code: a for a in agencies}
    assert by_code["000.30.00.H56"].name == "Xã mới"
    assert not by_code["000.30.00.H56"].deleted
    assert by_code["000.31.00.H56"].parent == "000.00.00.H56"  # not its own parent
    parents = {by_code["000.00.40.H56"].parent, by_code["000.00.41.H56"].parent}
    assert "000.00.00.H56" in parents  # the cycle is cut where it closes
    assert [(s["position"], s["why"]) for s in skipped] == [
        (4, "no name as text"),
        (0, "the same code again at entry 5, which is kept"),
    ]

"""Signatures end to end: two daemons on the real RabbitMQ, the commune's endpoint requiring
valid signatures, its daemon trusting the test Government root and signing the statuses it
sends for the commune with the commune's own key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.signatures import Checker, SignatureStatus, TrustAnchors
from lgsp_adapter.store import DeliveryState
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.signing_pki import Pki, make_pki, sign_edxml
from tests.test_exchange_embedded import submit
from tests.test_exchange_rabbitmq import (
    COMMUNE,
    PROVINCE,
    TOKEN,
    base_settings,
    daemon,
    letter_to,
    remove_topology,
    wait_for,
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@dataclass
class Exchange:
    url: str
    province_store: Path
    commune_store: Path
    province: AgencyServer
    commune: AgencyServer


def _settings(tmp_path: Path, name: str, exchange: str, extra: dict[str, object]) -> Settings:
    return Settings.model_validate({**base_settings(tmp_path, name, exchange), **extra})


@asynccontextmanager
async def exchange_with_policy(tmp_path: Path, pki: Pki) -> AsyncIterator[Exchange]:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    province, commune = AgencyServer(), AgencyServer()
    key, certificate = pki.signer.write(tmp_path, "commune")
    anchors = str(pki.anchors_file(tmp_path))
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(agency_server(province))
            await stack.enter_async_context(agency_server(commune))
            b = _settings(
                tmp_path,
                "b",
                exchange,
                {
                    "signatures": {"trust_anchors": [anchors]},
                    "agencies": [
                        {
                            "code": COMMUNE,
                            "name": "UBND xa",
                            "endpoint": {
                                "url": commune.url,
                                "signature_policy": "require-valid",
                                "send_arrival_status": True,
                            },
                            "signing": {"key_file": str(key), "certificate_file": str(certificate)},
                        }
                    ],
                    "known_agencies": [{"code": PROVINCE}],
                },
            )
            a = _settings(
                tmp_path,
                "a",
                exchange,
                {
                    "signatures": {"trust_anchors": [anchors]},
                    "agencies": [
                        {"code": PROVINCE, "name": "Tinh", "endpoint": {"url": province.url}}
                    ],
                    "known_agencies": [{"code": COMMUNE}],
                    "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}],
                },
            )
            await stack.enter_async_context(daemon(b))
            url = await stack.enter_async_context(daemon(a))
            yield Exchange(url, a.store.path, b.store.path, province, commune)
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE])


async def _entries(path: Path, packet_id: str) -> list[tuple[str, str | None, str | None]]:
    async with await SqliteStore.open(path) as store:
        return [
            (e.event.value, e.outcome, e.detail) for e in await store.history(uuid.UUID(packet_id))
        ]


async def _status_from_commune(province: AgencyServer) -> bytes:
    for _ in range(200):
        statuses = [r.body for r in province.received if r.headers.get("X-LGSP-Kind") == "status"]
        if statuses:
            return statuses[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no status reached the province")


def _status_code(status: bytes) -> tuple[str, str]:
    root = etree.fromstring(status)
    code = root.findtext(".//{*}StatusCode") or ""
    return code, root.findtext(".//{*}Description") or ""


@pytest.mark.asyncio
async def test_a_validly_signed_document_is_delivered_with_its_verdict(
    tmp_path: Path, pki: Pki
) -> None:
    async with exchange_with_policy(tmp_path, pki) as ex:
        document = sign_edxml(letter_to(COMMUNE), pki.signer)
        packet_id = await submit(ex.url, document)
        await wait_for(ex.commune_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
        await wait_for(ex.province_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
        status = await _status_from_commune(ex.province)
        receiver_log = await _entries(ex.commune_store, packet_id)
        sender_log = await _entries(ex.province_store, packet_id)
    (request,) = ex.commune.received
    assert request.body == document  # byte for byte: the signature still verifies there
    assert request.headers["X-LGSP-Signature"] == "valid"
    assert request.headers["X-LGSP-Signature-Signer"].startswith("CN=Nguyen Van An")
    assert request.headers["X-LGSP-Signature-Serial"] == format(
        pki.signer.certificate.serial_number, "x"
    )
    (signature,) = [e for e in receiver_log if e[0] == "signature"]
    assert signature[1] == "valid"
    assert "CA Thanh Hoa" in (signature[2] or "")
    (receipt,) = [e for e in sender_log if e[0] == "receipt"]
    assert "signature valid by CN=Nguyen Van An" in (receipt[2] or "")
    # The 01 the adapter wrote for the commune carries the commune's signature.
    assert _status_code(status)[0] == "01"
    checked = await Checker(TrustAnchors([pki.root.certificate])).check(status)
    assert checked.status is SignatureStatus.VALID, checked.summary()
    # An auditor sees the verdict in `audit show` and carries it in an evidence bundle.
    (tmp_path / "b.toml").write_text(f'[store]\npath = "{ex.commune_store}"\n')
    shown = _audit(tmp_path, "show", packet_id, "--config", str(tmp_path / "b.toml"))
    assert "signature" in shown
    assert "valid" in shown
    assert "Nguyen Van An" in shown
    bundle = tmp_path / "evidence.json"
    _audit(tmp_path, "bundle", packet_id, "-o", str(bundle), "--config", str(tmp_path / "b.toml"))
    carried = [
        e["entry"]
        for e in json.loads(bundle.read_text())["entries"]
        if e["entry"]["event"] == "signature"
    ]
    assert carried[0]["outcome"] == "valid"
    assert "bundle verifies" in _audit(tmp_path, "verify-bundle", str(bundle))


def _audit(folder: Path, *args: str) -> str:
    done = subprocess.run(  # our own command
        [sys.executable, "-m", "lgsp_adapter", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make", "verdict"),
    [
        (lambda pki: letter_to(COMMUNE), "unsigned"),
        (
            lambda pki: sign_edxml(letter_to(COMMUNE), pki.signer).replace(
                b"<edXML:Subject>", b"<edXML:Subject>X"
            ),
            "invalid",
        ),
        (lambda pki: sign_edxml(letter_to(COMMUNE), pki.stranger), "untrusted"),
    ],
    ids=["unsigned", "altered", "untrusted"],
)
async def test_what_the_policy_refuses_is_not_delivered_and_the_sender_gets_a_02(
    tmp_path: Path, pki: Pki, make: object, verdict: str
) -> None:
    async with exchange_with_policy(tmp_path, pki) as ex:
        document = make(pki)  # type: ignore[operator]
        packet_id = await submit(ex.url, document)
        await wait_for(ex.commune_store, packet_id, COMMUNE, DeliveryState.REFUSED)
        await wait_for(ex.province_store, packet_id, COMMUNE, DeliveryState.REFUSED)
        status = await _status_from_commune(ex.province)
        receiver_log = await _entries(ex.commune_store, packet_id)
    assert ex.commune.received == []
    (signature,) = [e for e in receiver_log if e[0] == "signature"]
    assert signature[1] == verdict
    (refused,) = [e for e in receiver_log if e[0] == "refused"]
    assert refused[1] == "signature.refused"
    code, description = _status_code(status)
    assert code == "02"
    assert verdict in description

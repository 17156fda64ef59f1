"""Two daemons as the settings make them: the province's log is witnessed by the ministry's
daemon, at its /witness, as it runs; `audit verify --config` then reports the witness, and an
evidence bundle carries its cosignature."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from lgsp_adapter.audit.cosignature import WitnessKey
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.store.sqlite import SqliteStore
from tests.cli_process import lgsp_adapter
from tests.test_walkthrough import free_port

PROVINCE = "lgsp-adapter/thanhhoa.gov.vn"
WITNESS = "lgsp-adapter-witness/bo-y-te.gov.vn"


def daemon(folder: Path, port: int, code: str, **more: Any) -> dict[str, Any]:
    folder.mkdir(exist_ok=True)
    return {
        "http": {"host": "127.0.0.1", "port": port},
        "store": {"path": str(folder / "store.sqlite3")},
        "agencies": [{"code": code, "name": code, "endpoint": {"url": "http://127.0.0.1:9/"}}],
        **more,
    }


def toml_value(value: Any) -> str:
    """A value in TOML's inline syntax (tables as ``{k = v}``; strings and numbers as JSON)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml(settings: dict[str, Any]) -> str:
    """The settings as a TOML file, for the CLI."""
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items())


@pytest.mark.asyncio
async def test_a_daemon_has_its_checkpoints_cosigned_by_the_daemon_that_witnesses_it(
    tmp_path: Path,
) -> None:
    province_key = LogKey.generate(PROVINCE)
    (tmp_path / "province").mkdir()
    province_key.save(tmp_path / "province" / "audit-signing.key")
    (tmp_path / "ministry").mkdir()
    witness_key = WitnessKey.load_or_create(tmp_path / "ministry" / "witness-signing.key", WITNESS)
    ministry_port = free_port()
    ministry = daemon(
        tmp_path / "ministry",
        ministry_port,
        "000.00.00.G12",
        witness={"name": WITNESS, "logs": [{"verifier_keys": [province_key.verifier.encoded()]}]},
    )
    province = daemon(
        tmp_path / "province",
        0,
        "000.00.00.H38",
        audit={
            "origin": PROVINCE,
            "checkpoint_interval_s": 1,
            "witnesses": [
                {
                    "url": f"http://127.0.0.1:{ministry_port}/witness",
                    "verifier_key": witness_key.verifier.encoded(),
                }
            ],
        },
    )
    stop = asyncio.Event()
    tasks = []
    for settings in (ministry, province):
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        tasks.append(
            asyncio.create_task(
                run_daemon(Settings.model_validate(settings), stop, ready.set_result)
            )
        )
        await asyncio.wait_for(ready, 10)
    store_path = tmp_path / "province" / "store.sqlite3"
    try:
        for _ in range(100):
            async with await SqliteStore.open(store_path, owner=False) as store:
                if await store.audit.cosignatures():
                    break
            await asyncio.sleep(0.1)
        config = tmp_path / "province.toml"
        config.write_text(toml(province))
        status, out, err = await lgsp_adapter("audit", "verify", "--config", str(config))
        assert status == 0, err
        assert f"witness {WITNESS} vouches up to " in out
        status, out, err = await lgsp_adapter("audit", "checkpoints", "--config", str(config))
        assert f"cosigned by {WITNESS}" in out
        bundle = tmp_path / "bundle.json"
        status, _, err = await lgsp_adapter(
            "audit",
            "bundle",
            "--event",
            "config_changed",
            "-o",
            str(bundle),
            "--config",
            str(config),
        )
        assert status == 0, err
        key = witness_key.verifier.encoded()
        status, out, err = await lgsp_adapter(
            "audit", "verify-bundle", str(bundle), "--witness-key", key
        )
        assert status == 0, err
        assert f"cosigned by witness {WITNESS}" in out
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)

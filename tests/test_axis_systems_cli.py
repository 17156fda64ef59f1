"""`lgsp-adapter axis-systems …` in a shell beside a running daemon: a system registered,
re-keyed and removed there is served, refused and forgotten by the daemon within its registry
poll; a command with another key file than the daemon's seals nothing."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.registry.secret_box import SecretBox
from tests.axis_sdk import SdkClient
from tests.cli_process import lgsp_adapter
from tests.test_exchange_embedded import PROVINCE
from tests.test_exchange_rabbitmq import daemon

SYSTEM = "qlvb.tinh-h56"


async def axis_systems(
    cwd: Path, *args: str, body: dict[str, Any] | None = None, config: str = "lgsp.toml"
) -> tuple[int, str, str]:
    """The command with ``args``, and ``body`` as its JSON file: status, stdout, stderr."""
    source = []
    if body is not None:
        (cwd / "system.json").write_text(json.dumps(body), encoding="utf-8")
        source = [str(cwd / "system.json")]
    return await lgsp_adapter("axis-systems", *args, *source, "--config", str(cwd / config))


async def answers(sdk: SdkClient, wanted: str, timeout_s: float = 10) -> None:
    """The daemon answers the system's calls with ``wanted`` (OK, or the refusal's code)."""
    deadline = time.monotonic() + timeout_s
    while True:
        document = (await sdk.call("countReceiveEdoc", {"servicetype": "eDoc"})).json()
        if (document["ErrorCode"] == "0" and wanted == "OK") or document["ErrorCode"] == wanted:
            return
        assert time.monotonic() < deadline, f"still {document}"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_the_cli_registers_rekeys_and_removes_systems_of_a_running_daemon(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store.sqlite3"
    (tmp_path / "lgsp.toml").write_text(f'[store]\npath = "{store}"\n')
    elsewhere = tmp_path / "elsewhere.key"
    (tmp_path / "other.toml").write_text(
        f'[store]\npath = "{store}"\n[axis]\nsecret_key = "{elsewhere}"\n'
    )
    config = Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(store)},
            "daemon": {"drain_s": 5, "registry_poll_s": 0.1},
            "agencies": [{"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"mode": "pull"}}],
        }
    )
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(daemon(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        body = {"system_id": SYSTEM, "agencies": [PROVINCE], "label": "QLVB tỉnh"}
        status, out, err = await axis_systems(tmp_path, "add", body=body)
        assert status == 0, err
        secret = json.loads(out)["secret"]
        assert "shown this once" in err
        await answers(SdkClient(f"{url}/axis", SYSTEM, secret, session), "OK")
        _, listed, _ = await axis_systems(tmp_path, "list")
        assert listed.split() == [SYSTEM, PROVINCE, "QLVB", "tỉnh"]

        # With a key file of its own, the command seals nothing the daemon could not open.
        rekey = {"agencies": [PROVINCE], "secret": "a-new-secret-for-2027-qlvb"}
        status, _, err = await axis_systems(
            tmp_path, "change", SYSTEM, body=rekey, config="other.toml"
        )
        assert status == 1
        assert "no key file" in err  # and none is made: it would seal for nobody
        assert not elsewhere.exists()
        SecretBox.at(elsewhere)  # a key file, but not the daemon's
        status, _, err = await axis_systems(
            tmp_path, "change", SYSTEM, body=rekey, config="other.toml"
        )
        assert status == 1
        assert "is not the key" in err
        status, out, err = await axis_systems(tmp_path, "change", SYSTEM, body=rekey)
        assert status == 0, err
        assert "secret" not in json.loads(out)
        await answers(SdkClient(f"{url}/axis", SYSTEM, secret, session), "axis.signature_invalid")
        fresh = SdkClient(f"{url}/axis", SYSTEM, "a-new-secret-for-2027-qlvb", session)
        await answers(fresh, "OK")

        status, _, err = await axis_systems(tmp_path, "remove", SYSTEM)
        assert status == 0, err
        await answers(fresh, "axis.unknown_system")
        status, _, err = await axis_systems(tmp_path, "remove", SYSTEM)
        assert status == 1
        assert "registry.not_found" in err

"""``lgsp-adapter check``: the running daemon's readiness as an exit status."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lgsp_adapter.daemon.config import Settings
from tests.cli_process import lgsp_adapter
from tests.test_exchange_rabbitmq import daemon


async def check(*args: str) -> tuple[int, str]:
    status, out, err = await lgsp_adapter("check", *args)
    return status, out + err


@pytest.mark.asyncio
async def test_a_ready_daemon_is_0_and_one_that_does_not_answer_is_1(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port for the daemon, written in its settings
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "lgsp.toml"
    path.write_text(f"[http]\nport = {port}\n")
    settings = Settings.model_validate(
        {
            "http": {"port": port},
            "store": {"path": str(tmp_path / "s.sqlite3")},
            "agencies": [{"code": "000.00.00.H56", "name": "tỉnh", "endpoint": {"mode": "pull"}}],
        }
    )
    async with daemon(settings):
        status, output = await check("--config", str(path))
        assert (status, output.split(":")[0]) == (0, "ready"), output
    status, output = await check("--config", str(path))
    assert (status, output.split(":")[0]) == (1, "unreachable"), output
    status, output = await check("--url", f"http://127.0.0.1:{port}/readyz")
    assert status == 1
    path.write_text("[http]\nport = 0\n")
    status, output = await check("--config", str(path))
    assert status == 1
    assert "give --url" in output

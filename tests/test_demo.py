"""The README's first command: the demo exchange runs, retries where scripted, and says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lgsp_adapter.cli.demo import run_demo


@pytest.mark.asyncio
async def test_the_demo_exchange_delivers_everything(tmp_path: Path) -> None:
    lines: list[str] = []
    assert await run_demo(tmp_path, lines.append)
    text = "\n".join(lines)
    assert "Every packet reached every recipient." in text
    assert len(re.findall(r"retried\s+000\.22\.00\.H56", text)) == 2
    assert "-> 000.22.00.H56 UBND xã Hoằng Hóa: delivered after 3 attempt(s)" in text
    assert text.count("delivered after") == 8
    # A commune's system registered while the daemon runs, tested, then sent the next letter.
    assert "POST /v1/endpoints -> 201, revision 1" in text
    assert re.search(r"POST /v1/endpoints/000\.23\.00\.H56/test -> answers, HTTP 405", text)
    assert "-> 000.23.00.H56 UBND xã Quảng Tâm: delivered after 1 attempt(s)" in text
    # Another commune's software speaks only the national axis' protocol, and fetches so.
    assert "POST /v1/axis-systems -> 201: qlvb.quang-yen" in text
    assert "updateStatus done -> OK" in text
    assert "acknowledged done by axis/qlvb.quang-yen" in text
    assert "-> 000.24.00.H56 UBND xã Quảng Yên: delivered after 1 attempt(s)" in text
    assert (tmp_path / "lgsp-adapter.sqlite3").is_file()
    # It ends as an auditor would go on: the log verified, one packet's evidence checked offline.
    assert re.search(r"Audit log: the log verifies: \d+ entries, \d+ signed checkpoints", text)
    command = re.search(r"\n  (\S+) audit verify-bundle (\S+) --public-key (\S+)", text)
    assert command is not None
    assert Path(command.group(2)).is_file()  # noqa: ASYNC240  # after the run
    assert Path(command.group(3)).read_text().startswith("lgsp-adapter/")  # noqa: ASYNC240

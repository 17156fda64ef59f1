"""``lgsp-adapter dlq``: an operator's dead letters from a shell, through the running daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agency_server import AgencyServer, agency_server
from tests.cli_process import lgsp_adapter
from tests.test_dead_letters import OPERATOR, eventually, operated
from tests.test_exchange_rabbitmq import COMMUNE, letter_to
from tests.test_registry_web import PROVINCE_TOKEN


async def dlq(url: str, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    return await lgsp_adapter("dlq", "--url", url, *args, LGSP_OPERATOR_TOKEN=token)


@pytest.mark.asyncio
async def test_an_operator_lists_shows_replays_and_drops_from_a_shell(tmp_path: Path) -> None:
    commune = AgencyServer(then=503)
    async with agency_server(commune), operated(tmp_path, commune, "embedded") as operator:
        sent = []
        for number in (1, 2):
            _, answer, _ = await operator.as_(PROVINCE_TOKEN).call(
                "POST",
                "/v1/packets",
                letter_to(COMMUNE, number=number),
                **{"Content-Type": "application/xml"},
            )
            sent.append(answer["packet_id"])

        async def both() -> Any:
            _, page, _ = await operator.call("GET", "/v1/dead-letters")
            return len(page["dead_letters"]) == 2

        await eventually(both, "both dead-lettered")
        url = operator.url

        status, out, err = await dlq(url, "list")
        assert status == 0, err
        assert sorted(line.split()[1] for line in out.splitlines()) == sorted(sent)
        assert "2 dead letter(s)" in err
        status, out, _ = await dlq(
            url, "list", "--json", "--agency", COMMUNE, "--limit", "1", "--all"
        )
        assert sorted(json.loads(line)["packet_id"] for line in out.splitlines()) == sorted(sent)

        status, out, _ = await dlq(url, "show", sent[0], COMMUNE)
        assert status == 0
        assert "dead_lettered" in out

        commune.then = 200
        status, out, _ = await dlq(url, "replay", sent[0], COMMUNE)
        assert (status, out.strip()) == (0, f"{sent[0]} -> {COMMUNE}: accepted (replayed)")
        status, out, _ = await dlq(url, "drop", sent[1], COMMUNE, "--reason", "resent by post")
        assert (status, out.strip()) == (0, f"{sent[1]} -> {COMMUNE}: dropped")

        status, _, err = await dlq(url, "replay", sent[1], COMMUNE)
        assert status == 1
        assert "dead_letter.not_dead_lettered" in err
        status, _, err = await dlq(url, "list", token="not-the-operator-token-000000")
        assert status == 1
        assert "auth.invalid" in err
    status, _, err = await dlq(url, "list")
    assert status == 1
    assert "does not answer" in err


@pytest.mark.asyncio
async def test_the_token_comes_from_a_file_or_standard_input_never_an_argument(
    tmp_path: Path,
) -> None:
    """Issue 21: a --token argument is visible to every user of the machine in ps."""
    commune = AgencyServer()
    async with agency_server(commune), operated(tmp_path, commune, "embedded") as operator:
        token_file = tmp_path / "operator.token"
        token_file.write_text(OPERATOR + "\n")
        status, _, err = await lgsp_adapter(
            "dlq", "--url", operator.url, "--token-file", str(token_file), "list"
        )
        assert status == 0, err
        status, _, err = await lgsp_adapter(
            "dlq", "--url", operator.url, "--token-file", "-", "list", stdin=OPERATOR
        )
        assert status == 0, err
        status, _, err = await lgsp_adapter("dlq", "--url", operator.url, "--token", OPERATOR)
        assert status == 2
        assert "No such option '--token'" in err
        status, _, err = await lgsp_adapter(
            "dlq", "--url", operator.url, "list", LGSP_OPERATOR_TOKEN=""
        )
        assert status == 1
        assert "--token-file or LGSP_OPERATOR_TOKEN" in err

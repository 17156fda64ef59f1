"""``lgsp-adapter dlq …``: the dead letters from a shell, through the running daemon's API.

Unlike ``endpoints``, which writes the store, these ask the daemon (``/v1/dead-letters``) with
an operator's token: a replay then goes out at once, a drop reaches the sender (a receipt or
a push, which only the daemon can send), and every act is audited under the operator's name.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import quote, urlencode

import aiohttp
import click

from lgsp_adapter.cli.check import daemon_url
from lgsp_adapter.errors import LgspError

TOKEN_VARIABLE = "LGSP_OPERATOR_TOKEN"  # noqa: S105  # the name of a variable, not a token


class Api:
    """The daemon's API as one operator calls it."""

    def __init__(self, url: str, token: str, cafile: Path | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.cafile = cafile

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON; exit 1 with the error's code and message if it is one."""
        return asyncio.run(self._call(method, path, body))

    async def _call(self, method: str, path: str, body: Any) -> Any:
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                session.request(
                    method,
                    f"{self.url}{path}",
                    json=body,
                    headers=headers,
                    ssl=context if self.url.startswith("https") else True,
                ) as response,
            ):
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            _fail(f"error: the daemon at {self.url} does not answer: {exc}")
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            _fail(f"error: {method} {path} answered {status}, not JSON")
        if status >= 400:
            error = (answer or {}).get("error", {}) if isinstance(answer, dict) else {}
            _fail(f"error: {error.get('code', status)}: {error.get('message', text[:200])}")
        return answer


def _part(text: str) -> str:
    """A path segment as typed, quoted: a '/' or '?' in it must not make another request."""
    return quote(text, safe="")


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@click.group("dlq")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The daemon's settings, for its address (or give --url).",
)
@click.option("--url", help="The daemon's base URL, e.g. https://lgsp.tinh:8080.")
@click.option(
    "--token-file",
    type=click.File("r", encoding="utf-8"),
    help="A file holding the operator's token, or - for standard input. Without it, "
    "LGSP_OPERATOR_TOKEN. Never on the command line, where every user sees it in ps.",
)
@click.option(
    "--cafile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CA that signed the daemon's certificate, when it serves https.",
)
@click.pass_context
def dlq_group(
    context: click.Context,
    config_path: Path | None,
    url: str | None,
    token_file: TextIO | None,
    cafile: Path | None,
) -> None:
    """Dead letters: list, show, replay, drop (operators; through the running daemon)."""
    try:
        url = url or daemon_url(config_path)
    except LgspError as exc:
        _fail(f"error: {exc}")
    token = token_file.read().strip() if token_file else os.environ.get(TOKEN_VARIABLE, "")
    if not token:
        _fail(f"error: give the operator's token in --token-file or {TOKEN_VARIABLE}")
    context.obj = Api(url, token, cafile)


def _api(context: click.Context) -> Api:
    api = context.obj
    assert isinstance(api, Api)  # noqa: S101  # set by the group
    return api


def _line(letter: dict[str, Any]) -> str:
    where = "" if letter.get("here", True) else "  (ended at the recipient's daemon)"
    return (
        f"{letter['dead_lettered_at'][:19]}  {letter['packet_id']}  "
        f"{letter['sender']} -> {letter['recipient']}  {letter['kind']}  "
        f"{letter['attempts']} attempts  {letter.get('detail') or ''}{where}"
    )


@dlq_group.command("list")
@click.option("--agency", help="Only those to this agency.")
@click.option("--sender", help="Only those from this agency.")
@click.option("--kind", help="Only packets of this kind.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--all", "every", is_flag=True, help="Every page, not only the first.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
@click.pass_context
def list_command(
    context: click.Context,
    agency: str | None,
    sender: str | None,
    kind: str | None,
    limit: int,
    every: bool,
    as_json: bool,
) -> None:
    """Dead letters, oldest first."""
    api = _api(context)
    query: dict[str, Any] = {"limit": limit}
    query |= {k: v for k, v in {"agency": agency, "sender": sender, "kind": kind}.items() if v}
    show: Callable[[dict[str, Any]], str] = (
        (lambda letter: json.dumps(letter, ensure_ascii=False)) if as_json else _line
    )
    count = 0
    while True:
        page = api.call("GET", "/v1/dead-letters?" + urlencode(query))
        for letter in page["dead_letters"]:
            click.echo(show(letter))
            count += 1
        if not every or page.get("next") is None:
            break
        query["after"] = page["next"]["after"]
    if not as_json:
        click.echo(f"{count} dead letter(s)", err=True)


@dlq_group.command("show")
@click.argument("packet_id")
@click.argument("agency")
@click.pass_context
def show_command(context: click.Context, packet_id: str, agency: str) -> None:
    """One dead letter and its packet's history."""
    letter = _api(context).call("GET", f"/v1/dead-letters/{_part(packet_id)}/{_part(agency)}")
    click.echo(_line(letter))
    for entry in letter.get("history", []):
        parts = [entry.get("at", "")[:23], f"{entry['event']:<13}", entry.get("recipient") or "-"]
        parts += [entry.get("outcome") or "", entry.get("detail") or ""]
        if entry.get("actor"):
            parts.append(f"by {entry['actor']}")
        click.echo("  " + "  ".join(p for p in parts if p))


@dlq_group.command("replay")
@click.argument("packet_id")
@click.argument("agency")
@click.pass_context
def replay_command(context: click.Context, packet_id: str, agency: str) -> None:
    """Back to the outbox, on a fresh retry schedule."""
    record = _api(context).call(
        "POST", f"/v1/dead-letters/{_part(packet_id)}/{_part(agency)}/replay"
    )
    click.echo(f"{packet_id} -> {agency}: {record['state']} (replayed)")


@dlq_group.command("drop")
@click.argument("packet_id")
@click.argument("agency")
@click.option("--reason", required=True, help="Why it is given up (kept in the audit log).")
@click.pass_context
def drop_command(context: click.Context, packet_id: str, agency: str, reason: str) -> None:
    """Give it up for good; the sender is told."""
    record = _api(context).call(
        "POST", f"/v1/dead-letters/{_part(packet_id)}/{_part(agency)}/drop", {"reason": reason}
    )
    click.echo(f"{packet_id} -> {agency}: {record['state']}")

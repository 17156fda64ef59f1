"""``lgsp-adapter endpoints …``: the registry from a shell, beside a running daemon.

The commands change the store directly (SQLite file or ``postgresql://``) with the same checks
and audit entries as ``/v1/endpoints``, naming the account that ran them; a running daemon on
that store picks the change up within ``daemon.registry_poll_s``. Records are read and written
as the API's JSON, so a file that works with ``curl`` works here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click

from lgsp_adapter.cli.targets import Target, cli_actor, fail, run, target_options
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.http.registry import view
from lgsp_adapter.registry.probe import probe
from lgsp_adapter.registry.service import Registry

T = TypeVar("T")


@asynccontextmanager
async def open_registry(target: Target) -> AsyncIterator[Registry]:
    """The registry of ``target``'s store, checked against its settings' clients' tokens."""
    settings = target.settings
    elsewhere = frozenset(str(a.code) for a in settings.known_agencies)
    async with target.store() as store:
        yield Registry(store.registry, settings.directory(), served_elsewhere=elsewhere)


def _with(target: Target, work: Callable[[Registry], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_registry(target) as registry:
            await registry.refresh()
            return await work(registry)

    return run(go())


def read_json(source: str) -> dict[str, Any]:
    """A JSON object from a file, or from stdin for ``-``; a clear error otherwise."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        body = json.loads(text)
    except OSError as exc:
        fail(f"error: cannot read {source}: {exc.strerror}")
    except ValueError as exc:
        fail(f"error: {source} is not JSON: {exc}")
    if not isinstance(body, dict):
        fail(f"error: {source} must hold a JSON object")
    return body


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group("endpoints")
def endpoints_group() -> None:
    """The registry of agency endpoints: register, change, test, remove."""


@endpoints_group.command("list")
@target_options
def list_command(target: Target) -> None:
    """One line per endpoint: code, mode, enabled, URL, name."""

    async def work(registry: Registry) -> None:
        for record in await registry.store.endpoints():
            agency = record.agency
            state = "INVALID" if record.problem else "enabled" if agency.enabled else "DISABLED"
            where = str(agency.endpoint.url or "(pull inbox)")
            click.echo(
                f"{record.code}  {agency.endpoint.mode:<4}  {state:<8}  {where}  {agency.name}"
            )

    _with(target, work)


@endpoints_group.command("show")
@click.argument("code")
@target_options
def show_command(code: str, target: Target) -> None:
    """One endpoint as JSON (secrets masked), with its tokens' ids."""

    async def work(registry: Registry) -> None:
        record = await registry.store.endpoint(code)
        if record is None:
            raise PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"{code} is not registered here")
        _echo(view(record, await registry.store.tokens(code)))

    _with(target, work)


@endpoints_group.command("add")
@click.argument("source")
@click.option("--no-token", is_flag=True, help="Issue no token (a pull-only or push-only system).")
@click.option("--token-label", default="system", show_default=True)
@target_options
def add_command(source: str, no_token: bool, token_label: str, target: Target) -> None:
    """Register the endpoint in SOURCE (a JSON file, or - for stdin). Prints the record and,
    this once, the token its system submits with."""
    body = read_json(source)
    token = body.pop("token", None)

    async def work(registry: Registry) -> None:
        record, plain = await registry.create(
            body,
            actor=cli_actor(),
            token=token,
            issue_token=not no_token,
            token_label=token_label,
        )
        _echo(view(record) | ({"token": plain} if plain else {}))
        if plain:
            click.echo(
                "The token is shown this once; the registry keeps only its digest.", err=True
            )

    _with(target, work)


@endpoints_group.command("change")
@click.argument("code")
@click.argument("source")
@click.option("--revision", type=int, help="Refuse unless the record is at this revision.")
@target_options
def change_command(code: str, source: str, revision: int | None, target: Target) -> None:
    """Apply the JSON merge patch in SOURCE (a file, or - for stdin) to an endpoint."""
    patch = read_json(source)

    async def work(registry: Registry) -> None:
        record = await registry.change(code, patch, actor=cli_actor(), expected_revision=revision)
        _echo(view(record))

    _with(target, work)


@endpoints_group.command("enable")
@click.argument("code")
@target_options
def enable_command(code: str, target: Target) -> None:
    """Take packets for the agency again."""
    _with(target, lambda r: r.set_enabled(code, True, actor=cli_actor()))
    click.echo(f"{code} enabled")


@endpoints_group.command("disable")
@click.argument("code")
@target_options
def disable_command(code: str, target: Target) -> None:
    """Refuse packets to and from the agency; its deliveries wait on the retry schedule."""
    _with(target, lambda r: r.set_enabled(code, False, actor=cli_actor()))
    click.echo(f"{code} disabled")


@endpoints_group.command("remove")
@click.argument("code")
@click.option("--revision", type=int, help="Refuse unless the record is at this revision.")
@target_options
def remove_command(code: str, revision: int | None, target: Target) -> None:
    """Stop serving the agency (its tokens are revoked; queued packets wait)."""
    _with(target, lambda r: r.remove(code, actor=cli_actor(), expected_revision=revision))
    click.echo(f"{code} removed")


@endpoints_group.command("test")
@click.argument("code")
@target_options
def test_command(code: str, target: Target) -> None:
    """Check that the push endpoint answers, from this machine: latency and TLS. Exit 1 if not."""

    async def work(registry: Registry) -> dict[str, Any]:
        record = await registry.store.endpoint(code)
        if record is None:
            raise PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"{code} is not registered here")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            return await probe(record.agency, session)

    report = _with(target, work)
    _echo(report)
    if not report["ok"]:
        sys.exit(1)


@endpoints_group.group("token")
def token_group() -> None:
    """Submitting tokens of an agency's systems."""


@token_group.command("issue")
@click.argument("code")
@click.option("--label", default="system", show_default=True)
@target_options
def issue_command(code: str, label: str, target: Target) -> None:
    """Issue another token; printed this once."""
    record, plain = _with(target, lambda r: r.issue_token(code, actor=cli_actor(), label=label))
    _echo({"id": record.id, "label": record.label, "token": plain})


@token_group.command("revoke")
@click.argument("code")
@click.argument("token_id")
@target_options
def revoke_command(code: str, token_id: str, target: Target) -> None:
    """Revoke a token by its id (see `endpoints show`)."""
    _with(target, lambda r: r.revoke_token(code, token_id, actor=cli_actor()))
    click.echo(f"token {token_id} of {code} revoked")

"""``lgsp-adapter axis-systems …``: the agency systems that call the axis facade, from a shell.

The same registrations as ``/v1/axis-systems``, with the same checks and audit entries, naming
the account that ran them; a daemon on the store serves the change within
``daemon.registry_poll_s``. Secrets are sealed with the daemon's key file (``[axis]
secret_key``), which the command must be able to read and never makes: it refuses a key file
that is missing or does not open the store's secrets rather than seal one the daemon cannot
open.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from lgsp_adapter.cli.endpoints import open_registry, read_json
from lgsp_adapter.cli.targets import Target, cli_actor, run, target_options
from lgsp_adapter.http.axis_systems_admin import shown
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.secret_box import SecretBox

T = TypeVar("T")


def _with(target: Target, work: Callable[[AxisSystems], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_registry(target) as registry:
            await registry.refresh()
            key_file = target.axis_key_path()
            systems = AxisSystems(registry, SecretBox.existing(key_file))
            await systems.check_key(str(key_file))
            return await work(systems)

    return run(go())


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group("axis-systems")
def axis_systems_group() -> None:
    """Agency software speaking the national axis' protocol: register, change, remove."""


@axis_systems_group.command("list")
@target_options
def list_command(target: Target) -> None:
    """One line per system: its id, its agencies, its label."""

    async def work(systems: AxisSystems) -> None:
        for record in await systems.records():
            click.echo(f"{record.system_id}  {','.join(record.agencies)}  {record.label}")

    _with(target, work)


@axis_systems_group.command("add")
@click.argument("source")
@target_options
def add_command(source: str, target: Target) -> None:
    """Register the system in SOURCE (JSON as for POST /v1/axis-systems, or - for stdin).
    Without a secret, one is made and printed this once."""
    body = read_json(source)

    async def work(systems: AxisSystems) -> None:
        record, made = await systems.register(body, actor=cli_actor())
        _echo(shown(record, made))
        if made:
            click.echo("The secret is shown this once; the registry keeps it sealed.", err=True)

    _with(target, work)


@axis_systems_group.command("change")
@click.argument("system_id")
@click.argument("source")
@target_options
def change_command(system_id: str, source: str, target: Target) -> None:
    """Replace a system's agencies and label, and its secret when SOURCE gives one."""
    body = read_json(source) | {"system_id": system_id}

    async def work(systems: AxisSystems) -> None:
        record, _ = await systems.register(body, actor=cli_actor(), replace=True)
        _echo(shown(record))

    _with(target, work)


@axis_systems_group.command("remove")
@click.argument("system_id")
@target_options
def remove_command(system_id: str, target: Target) -> None:
    """Remove a system: from its next request, its signature opens nothing."""
    _with(target, lambda systems: systems.remove(system_id, actor=cli_actor()))
    click.echo(f"axis system {system_id} removed")

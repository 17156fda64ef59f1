"""``lgsp-adapter agencies``: the list of agencies the exchange knows, imported from the
national axis' list and searched by code, parent or name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from lgsp_adapter.cli.targets import CONFIG_OPTION, STORE_OPTION, cli_actor, fail
from lgsp_adapter.daemon.config import load_settings
from lgsp_adapter.errors import LgspError
from lgsp_adapter.registry.agency_list import Agency, ImportReport
from lgsp_adapter.registry.agency_list_admin import import_national_list
from lgsp_adapter.store.opening import opened


@click.group("agencies")
def agencies_group() -> None:
    """The list of agencies the exchange knows (codes, names, hierarchy)."""


@agencies_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@CONFIG_OPTION
@STORE_OPTION
def agencies_import_command(file: Path, config_path: Path | None, location: str | None) -> None:
    """Merge the national axis' agency list (getAgenciesList JSON) into the store's list."""

    async def work(where: str, data: bytes) -> ImportReport:
        async with opened(where, migrate=settings.store.migrate_on_start) as store:
            return await import_national_list(
                store.agency_list, data, actor=cli_actor(), source=file.name
            )

    try:
        settings = load_settings(config_path)
        where = location or settings.store.location()
        report = asyncio.run(work(where, file.read_bytes()))
    except LgspError as exc:
        fail(f"error: {file}: {exc}")
    click.echo(report.summary())
    for skipped in report.skipped[:20]:
        click.echo(f"  skipped entry {skipped['position']}: {skipped['why']}", err=True)


@agencies_group.command("list")
@click.option("--under", help="Only the agencies directly under this one.")
@click.option("--search", help="Name or code containing this.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@CONFIG_OPTION
@STORE_OPTION
def agencies_list_command(
    under: str | None,
    search: str | None,
    limit: int,
    config_path: Path | None,
    location: str | None,
) -> None:
    """The agencies of the list, by code."""

    async def work(where: str) -> list[Agency]:
        async with opened(where, existing=True, migrate=settings.store.migrate_on_start) as store:
            return await store.agency_list.find(under=under, search=search, limit=limit)

    try:
        settings = load_settings(config_path)
        where = location or settings.store.location()
        found = asyncio.run(work(where))
    except LgspError as exc:
        fail(f"error: {exc}")
    for agency in found:
        click.echo(f"{agency.code}  {agency.parent or '-':<14}  {agency.name}")

"""The operator's commands around a daemon: its store's schema and backup, and the broker's
queues and permissions, for deployments where the daemon may not declare them itself."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
import sqlite3
from pathlib import Path

import aio_pika
import aiohttp
import click
from yarl import URL

from lgsp_adapter.bus import declare
from lgsp_adapter.bus.rabbitmq_bindings import unbind_stale
from lgsp_adapter.bus.shovels import Management
from lgsp_adapter.bus.topology import Topology, permissions
from lgsp_adapter.cli.targets import CONFIG_OPTION, fail
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.store.backup import backup
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.migrate import migrate
from lgsp_adapter.store.opening import opened


@click.command("broker-permissions")
@click.argument("user")
@click.option(
    "--codes",
    help="A regular expression of the agency codes the daemon serves, now and later (e.g. "
    r"'000\.21\.\d\d\.H56' for every commune of a district). Default: those in the settings.",
)
@click.option("--vhost", default="/", show_default=True)
@CONFIG_OPTION
def broker_permissions_command(
    user: str, codes: str | None, vhost: str, config_path: Path | None
) -> None:
    """Print the rabbitmqctl line giving USER the least permissions this daemon needs."""
    try:
        settings = load_settings(config_path)
    except LgspError as exc:
        fail(f"error: {exc}")
    own = [str(agency.code) for agency in settings.agencies]
    own += [route.key for route in settings.routes]  # a route's queues are named by its key
    own += [bridge.key for bridge in settings.bridges]  # and a bridge's by its
    served = codes or "|".join(re.escape(name) for name in own)
    if not served:
        fail("error: no [[agencies]] or [[routes]] in the settings: say which with --codes")
    rules = permissions(Topology(settings.bus.exchange), served)
    if not settings.bus.declare:  # an administrator declares: the daemon configures nothing
        rules = dataclasses.replace(rules, configure="^$")
    click.echo(
        " ".join(
            shlex.quote(word)
            for word in (
                "rabbitmqctl",
                "set_permissions",
                "-p",
                vhost,
                user,
                rules.configure,
                rules.write,
                rules.read,
            )
        )
    )


@click.command("migrate")
@CONFIG_OPTION
@click.option(
    "--store",
    "location",
    help="A SQLite file or a postgresql:// URL (default: the settings' store).",
)
def migrate_command(config_path: Path | None, location: str | None) -> None:
    """Bring the store's schema up to this version (the daemon also does at start)."""
    try:
        where = location or load_settings(config_path).store.location()
        before, after = asyncio.run(migrate(where))
    except LgspError as exc:
        fail(f"error: {exc}")
    except sqlite3.Error as exc:
        fail(f"error: {ErrorCode.STORE_UNAVAILABLE}: {exc}")
    for part, version in sorted(after.items()):
        was = before.get(part, 0)
        change = f"{was} -> {version}" if was != version else f"{version}, current"
        click.echo(f"{part}: schema {change}")


@click.command("backup")
@CONFIG_OPTION
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The store to copy (default: the settings').",
)
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The copy's file; it must not exist.",
)
def backup_command(config_path: Path | None, store_path: Path | None, target: Path) -> None:
    """Copy the store while the daemon runs (one consistent moment), and check the copy."""
    try:
        if store_path is None:
            settings = load_settings(config_path)
            if settings.store.url is not None:
                fail(
                    "error: the store is in PostgreSQL: back it up with pg_dump "
                    "(docs/operations.md, Backup and restore)"
                )
            store_path = settings.store.path
        copy = backup(store_path, target)
    except LgspError as exc:
        fail(f"error: {exc}")
    except sqlite3.Error as exc:
        fail(f"error: {ErrorCode.STORE_UNAVAILABLE}: {exc}")
    click.echo(
        f"{copy.path}: {copy.packets} packets, {copy.deliveries} deliveries, "
        f"{copy.audit_entries} audit entries, {copy.size_bytes:,} bytes; integrity ok"
    )
    click.echo(f"check its audit log with: lgsp-adapter audit verify --store {copy.path}", err=True)


@click.command("declare")
@CONFIG_OPTION
@click.option(
    "--url",
    envvar="LGSP_ADMIN_BUS_URL",
    help="An administrator's amqp:// URL (or LGSP_ADMIN_BUS_URL); default: the settings' bus.",
)
@click.option(
    "--store",
    "location",
    help="The daemon's store, for the agencies registered live: a SQLite file or a "
    "postgresql:// URL (default: the settings').",
)
@click.option(
    "--management-url",
    envvar="LGSP_ADMIN_MANAGEMENT_URL",
    help="The broker's management API, http://admin:…@host:15672/ (or "
    "LGSP_ADMIN_MANAGEMENT_URL), to declare the shovels of the settings' [[bridges]].",
)
def declare_command(
    config_path: Path | None, url: str | None, location: str | None, management_url: str | None
) -> None:
    """Declare the exchange and the queues of every agency the daemon serves (the settings'
    and the registry's) and of its bridges, and with --management-url their shovels, for a
    broker where daemons may not (bus.declare = false)."""
    try:
        settings = load_settings(config_path)
        target = url or (settings.bus.url.get_secret_value() if settings.bus.url else None)
        if target is None:
            fail("error: no bus: give --url or set [bus] url")
        where: str | None = location or settings.store.location()
        # Never make a store by reading one: none yet means no registrations yet.
        if where is not None and not is_postgres(where) and not Path(where).is_file():
            where = None
        declared = asyncio.run(_declare(settings, target, where))
        if management_url is not None:
            declared += asyncio.run(_shovels(settings, target, management_url))
    except LgspError as exc:
        fail(f"error: {exc}")
    except (OSError, aio_pika.exceptions.AMQPException) as exc:
        fail(f"error: the broker refused or did not answer: {exc}")
    for name in declared:
        click.echo(name)
    click.echo(f"{len(declared)} declared on {settings.bus.exchange}", err=True)


async def _declare(settings: Settings, url: str, location: str | None) -> list[str]:
    default = settings.delivery.retry_delays_s
    agencies = {str(a.code): a.endpoint.retry_delays_s or default for a in settings.agencies}
    for route in settings.routes:  # one set of queues a route, bound by its patterns
        agencies[route.key] = route.endpoint.retry_delays_s or default
    patterns = {route.key: list(route.codes) for route in settings.routes}
    for bridge in settings.bridges:  # its queue, carried by the shovel: no retries of its own
        agencies[bridge.key] = []
        patterns[bridge.key] = list(bridge.codes)
    topology = Topology(settings.bus.exchange)
    connection = await aio_pika.connect(url)
    async with connection:
        if location is None:
            return await declare.everything(connection, topology, agencies, patterns)
        # Integrators' registrations, as the daemon will serve them; and the bindings the
        # routes no longer take, which a daemon that may not configure leaves to this.
        async with opened(location, migrate=settings.store.migrate_on_start) as store:
            directory = settings.directory()
            for record in await store.registry.endpoints():
                if record.problem is None and directory.range_of(record.code) is None:
                    agencies[record.code] = record.agency.endpoint.retry_delays_s or default
            declared = await declare.everything(connection, topology, agencies, patterns)
            await unbind_stale(connection, topology, store, directory)
            return declared


async def _shovels(settings: Settings, bus_url: str, management_url: str) -> list[str]:
    vhost = URL(bus_url).path.lstrip("/") or "/"
    async with aiohttp.ClientSession() as session:
        management = Management(management_url, session, vhost)
        return await management.declare(Topology(settings.bus.exchange), settings.bridges)


OPERATOR_COMMANDS = [broker_permissions_command, migrate_command, backup_command, declare_command]

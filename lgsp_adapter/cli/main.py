"""The ``lgsp-adapter`` command line.

Commands print for people and exit 0 on success, 1 when the input or the setup is at fault (with
one line on stderr naming the error code), and 2 on a usage mistake (click's convention).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import aio_pika
import click

from lgsp_adapter import __version__
from lgsp_adapter.bus import declare
from lgsp_adapter.bus.topology import Topology, permissions
from lgsp_adapter.cli.audit import audit_group
from lgsp_adapter.cli.check import check, daemon_url
from lgsp_adapter.cli.demo import run_demo
from lgsp_adapter.cli.dlq import dlq_group
from lgsp_adapter.cli.endpoints import endpoints_group
from lgsp_adapter.cli.summary import canonical_json, summary
from lgsp_adapter.cli.targets import cli_actor
from lgsp_adapter.daemon import logs
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.daemon.logs import LogFormat, LoggingSettings
from lgsp_adapter.daemon.run import check_servable, run_daemon
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.packets.reader import read_packet
from lgsp_adapter.registry.agency_list import Agency, ImportReport
from lgsp_adapter.registry.agency_list_admin import import_national_list
from lgsp_adapter.store.backup import backup
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.migrate import migrate
from lgsp_adapter.store.opening import opened
from lgsp_adapter.translators import (
    Envelope,
    find,
    installed,
    translate_from_packet,
    translate_to_packet,
)

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (see config/lgsp-adapter.toml); LGSP_… variables override it.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lgsp-adapter")
def main() -> None:
    """Connects agency systems to the LGSP exchange bus (edXML, tax–transport packets)."""


@main.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the canonical JSON instead.")
@CONFIG_OPTION
def inspect_command(files: tuple[Path, ...], as_json: bool, config_path: Path | None) -> None:
    """Read edXML or tax–transport packets and summarise them (exit 1 if any is invalid)."""
    try:
        limits = load_settings(config_path).limits
    except LgspError as exc:
        _fail(f"error: {exc}")
    failed = False
    for index, path in enumerate(files):
        if len(files) > 1:
            click.echo(("\n" if index else "") + f"== {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            click.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
            failed = True
            continue
        try:
            read = read_packet(data, limits=limits)
        except LgspError as exc:
            click.echo(f"error: {path}: {exc}", err=True)
            failed = True
            continue
        click.echo(canonical_json(read) if as_json else summary(read))
    if failed:
        sys.exit(1)


@main.command("serve")
@CONFIG_OPTION
@click.option(
    "--log-format",
    type=click.Choice([f.value for f in LogFormat]),
    help="text for people, json for machines (default: the settings' [log] format).",
)
def serve_command(config_path: Path | None, log_format: str | None) -> None:
    """Run the daemon until SIGTERM or Ctrl-C (then drain and stop)."""
    try:
        settings = load_settings(config_path)
        check_servable(settings)
    except LgspError as exc:
        _fail(f"error: {exc}")
    chosen = settings.log
    if log_format is not None:
        chosen = chosen.model_copy(update={"format": LogFormat(log_format)})
    logs.configure(chosen)
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await run_daemon(settings, stop)


@main.command("check")
@CONFIG_OPTION
@click.option("--url", help="The daemon's /readyz (default: from the settings' [http]).")
@click.option(
    "--cafile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CA that signed the daemon's certificate, when it serves https.",
)
def check_command(config_path: Path | None, url: str | None, cafile: Path | None) -> None:
    """Exit 0 if the running daemon is ready (or degraded: the bus away, packets kept), 1 if
    not or if it does not answer. For HEALTHCHECK, systemd and monitoring agents."""
    try:
        url = url or f"{daemon_url(config_path)}/readyz"
    except LgspError as exc:
        _fail(f"error: {exc}")
    status, line = asyncio.run(check(url, cafile=cafile))
    click.echo(line)
    sys.exit(status)


@main.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo keeps its store (default: a fresh folder it names).",
)
@click.option("--verbose", is_flag=True, help="Also show the daemon's log.")
def demo_command(data_dir: Path | None, verbose: bool) -> None:
    """Run a real exchange between Thanh Hóa agencies in one process (exit 0 if all arrived)."""
    if verbose:
        logs.configure(LoggingSettings())
    folder = data_dir or Path(tempfile.mkdtemp(prefix="lgsp-demo-"))
    ok = asyncio.run(run_demo(folder, click.echo))
    sys.exit(0 if ok else 1)


@main.command("translate")
@click.argument("name", required=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "listing", is_flag=True, help="List the installed translators.")
@click.option("--reverse", is_flag=True, help="From one of our packets to the agency's format.")
@click.option("--sender", help="The sending agency (into a packet).")
@click.option("--to", "recipients", multiple=True, help="A recipient agency (repeat for more).")
@click.option("--reference", help="The packet's reference (default: from the file's digest).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
def translate_command(
    name: str | None,
    file: Path | None,
    listing: bool,
    reverse: bool,
    sender: str | None,
    recipients: tuple[str, ...],
    reference: str | None,
    output: Path | None,
) -> None:
    """Turn an agency system's own format into one of our packets (or back, --reverse)."""
    if listing:
        for translator in installed().values():
            click.echo(
                f"{translator.name:<20} {translator.media_type:<18} {translator.description}"
            )
        return
    if name is None or file is None:
        _fail("error: name a translator and a file (or --list)")
    try:
        translator = find(name)
        data = file.read_bytes()
        if reverse:
            result = translate_from_packet(translator, data)
        else:
            if sender is None:
                _fail("error: --sender is required to make a packet")
            envelope = Envelope(sender=sender, recipients=list(recipients), reference=reference)
            result = translate_to_packet(translator, data, envelope)
    except OSError as exc:
        _fail(f"error: cannot read {file}: {exc.strerror}")
    except LgspError as exc:
        _fail(f"error: {file}: {exc}")
    if output is None:
        click.echo(result.decode("utf-8-sig"), nl=False)
    else:
        output.write_bytes(result)


@main.group("agencies")
def agencies_group() -> None:
    """The list of agencies the exchange knows (codes, names, hierarchy)."""


STORE_OPTION = click.option(
    "--store",
    "location",
    default=None,
    help="A SQLite file or a postgresql:// URL (default: the settings' store).",
)


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
        _fail(f"error: {file}: {exc}")
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
        _fail(f"error: {exc}")
    for agency in found:
        click.echo(f"{agency.code}  {agency.parent or '-':<14}  {agency.name}")


@main.command("broker-permissions")
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
        _fail(f"error: {exc}")
    served = codes or "|".join(re.escape(str(agency.code)) for agency in settings.agencies)
    if not served:
        _fail("error: no [[agencies]] in the settings: say which codes with --codes")
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


@main.command("migrate")
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
        _fail(f"error: {exc}")
    except sqlite3.Error as exc:
        _fail(f"error: {ErrorCode.STORE_UNAVAILABLE}: {exc}")
    for part, version in sorted(after.items()):
        was = before.get(part, 0)
        change = f"{was} -> {version}" if was != version else f"{version}, current"
        click.echo(f"{part}: schema {change}")


@main.command("backup")
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
                _fail(
                    "error: the store is in PostgreSQL: back it up with pg_dump "
                    "(docs/operations.md, Backup and restore)"
                )
            store_path = settings.store.path
        copy = backup(store_path, target)
    except LgspError as exc:
        _fail(f"error: {exc}")
    except sqlite3.Error as exc:
        _fail(f"error: {ErrorCode.STORE_UNAVAILABLE}: {exc}")
    click.echo(
        f"{copy.path}: {copy.packets} packets, {copy.deliveries} deliveries, "
        f"{copy.audit_entries} audit entries, {copy.size_bytes:,} bytes; integrity ok"
    )
    click.echo(f"check its audit log with: lgsp-adapter audit verify --store {copy.path}", err=True)


@main.command("declare")
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
def declare_command(config_path: Path | None, url: str | None, location: str | None) -> None:
    """Declare the exchange and the queues of every agency the daemon serves (the settings'
    and the registry's), for a broker where daemons may not (bus.declare = false)."""
    try:
        settings = load_settings(config_path)
        target = url or (settings.bus.url.get_secret_value() if settings.bus.url else None)
        if target is None:
            _fail("error: no bus: give --url or set [bus] url")
        where: str | None = location or settings.store.location()
        # Never make a store by reading one: none yet means no registrations yet.
        if where is not None and not is_postgres(where) and not Path(where).is_file():
            where = None
        declared = asyncio.run(_declare(settings, target, where))
    except LgspError as exc:
        _fail(f"error: {exc}")
    except (OSError, aio_pika.exceptions.AMQPException) as exc:
        _fail(f"error: the broker refused or did not answer: {exc}")
    for name in declared:
        click.echo(name)
    click.echo(f"{len(declared)} declared on {settings.bus.exchange}", err=True)


async def _declare(settings: Settings, url: str, location: str | None) -> list[str]:
    default = settings.delivery.retry_delays_s
    agencies = {str(a.code): a.endpoint.retry_delays_s or default for a in settings.agencies}
    if location is not None:  # integrators' registrations, as the daemon will serve them
        async with opened(location, migrate=settings.store.migrate_on_start) as store:
            for record in await store.registry.endpoints():
                if record.problem is None:
                    agencies[record.code] = record.agency.endpoint.retry_delays_s or default
    connection = await aio_pika.connect(url)
    async with connection:
        return await declare.everything(connection, Topology(settings.bus.exchange), agencies)


main.add_command(audit_group)
main.add_command(endpoints_group)
main.add_command(dlq_group)


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)

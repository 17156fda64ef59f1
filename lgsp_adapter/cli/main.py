"""The ``lgsp-adapter`` command line.

Commands print for people and exit 0 on success, 1 when the input or the setup is at fault (with
one line on stderr naming the error code), and 2 on a usage mistake (click's convention).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from lgsp_adapter import __version__
from lgsp_adapter.cli.agencies import agencies_group
from lgsp_adapter.cli.audit import audit_group
from lgsp_adapter.cli.axis_systems import axis_systems_group
from lgsp_adapter.cli.check import check, daemon_url
from lgsp_adapter.cli.demo import run_demo
from lgsp_adapter.cli.dlq import dlq_group
from lgsp_adapter.cli.endpoints import endpoints_group
from lgsp_adapter.cli.operate import OPERATOR_COMMANDS
from lgsp_adapter.cli.signatures import signature_command
from lgsp_adapter.cli.summary import canonical_json, summary
from lgsp_adapter.cli.targets import CONFIG_OPTION
from lgsp_adapter.cli.witness import witness_group
from lgsp_adapter.daemon import logs
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.daemon.logs import LogFormat, LoggingSettings
from lgsp_adapter.daemon.run import check_servable, run_daemon
from lgsp_adapter.errors import LgspError
from lgsp_adapter.packets.reader import read_packet
from lgsp_adapter.translators import (
    Envelope,
    find,
    installed,
    translate_from_packet,
    translate_to_packet,
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


main.add_command(audit_group)
main.add_command(agencies_group)
for command in OPERATOR_COMMANDS:
    main.add_command(command)
main.add_command(endpoints_group)
main.add_command(axis_systems_group)
main.add_command(dlq_group)
main.add_command(witness_group)
main.add_command(signature_command)


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)

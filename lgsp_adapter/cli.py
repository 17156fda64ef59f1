"""The ``lgsp-adapter`` command line.

Commands print for people and exit 0 on success, 1 when the input or the setup is at fault (with
one line on stderr naming the error code), and 2 on a usage mistake (click's convention).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from lgsp_adapter import __version__
from lgsp_adapter.config import load_settings
from lgsp_adapter.errors import LgspError
from lgsp_adapter.packets import read_packet
from lgsp_adapter.summary import canonical_json, summary

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


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)

"""``lgsp-adapter signature FILE…``: the verdict on one document's signatures, by hand.

For an operator setting up trust anchors and an auditor holding a document from elsewhere: the
same check the daemon makes before a delivery, with the settings' ``[signatures]`` anchors,
CRLs and algorithm policy, on files (``docs/signatures.md``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from lgsp_adapter.cli.targets import CONFIG_OPTION
from lgsp_adapter.daemon.config import load_settings
from lgsp_adapter.errors import LgspError
from lgsp_adapter.signatures import Checker, SignatureResult, SignatureStatus


@click.command("signature")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print each verdict as JSON.")
@CONFIG_OPTION
def signature_command(files: tuple[Path, ...], as_json: bool, config_path: Path | None) -> None:
    """Check the signatures of edXML files (exit 1 unless every envelope's is valid)."""
    try:
        settings = load_settings(config_path)
        checker = settings.signatures.checker(settings.limits) or Checker.default(settings.limits)
    except (LgspError, OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    valid = True
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            click.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
            valid = False
            continue
        result = asyncio.run(checker.check(data))
        valid = valid and result.status is SignatureStatus.VALID
        click.echo(_json(path, result) if as_json else f"{path}: {result.summary()}")
    if not valid:
        sys.exit(1)


def _json(path: Path, result: SignatureResult) -> str:
    return json.dumps({"file": str(path), **asdict(result)}, ensure_ascii=False, default=str)

"""``lgsp-adapter witness …``: this daemon as a witness of other daemons' logs.

Setting up witnessing is an exchange of keys between operators: each gives the other its log's
verifier key (``audit public-key``) and its witness key (``witness public-key``), and each
names the other's in its settings (``docs/inter-level.md``).
"""

from __future__ import annotations

from pathlib import Path

import click

from lgsp_adapter.audit.cosignature import WitnessKey
from lgsp_adapter.cli.targets import Target, open_log, run, target_options


@click.group("witness")
def witness_group() -> None:
    """Witness other daemons' logs: the key to give them, what was cosigned."""


def _key_path(target: Target) -> Path:
    store = target.settings.store.path if target.on_postgres else Path(target.location)
    return target.settings.witness.key_path(store)


@witness_group.command("public-key")
@target_options
def public_key_command(target: Target) -> None:
    """The witness key to give the logs this daemon witnesses (made if there is none)."""
    path = _key_path(target)
    made = not path.exists()
    key = WitnessKey.load_or_create(path, target.settings.witness.name)
    click.echo(key.verifier.encoded())
    if made:
        click.echo(f"made the witness key {path} (mode 0600): back it up", err=True)


@witness_group.command("logs")
@target_options
def logs_command(target: Target) -> None:
    """Each log this daemon witnesses, and the size of the latest checkpoint it cosigned."""

    async def work() -> list[tuple[str, int | None]]:
        async with open_log(target) as log:
            found = []
            for witnessed in target.settings.witness.logs:
                origin = witnessed.verifiers[0].name
                seen = await log.witnessed(origin)
                found.append((origin, None if seen is None else seen.size))
            return found

    for origin, size in run(work()):
        click.echo(f"{origin}  {'none cosigned yet' if size is None else f'{size:,}'}")

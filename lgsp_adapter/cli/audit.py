"""``lgsp-adapter audit …``: the auditor's and operator's commands over the audit log.

Each opens the store read-mostly beside a running daemon (SQLite in WAL mode, or PostgreSQL)
and answers on stdout; long runs report progress on stderr when it is a terminal and stay quiet
in pipes, so ``audit export | gzip`` and cron jobs get clean output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import click

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit import export as exports
from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.rotation import Rotation, retired_paths, rotate_key
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.audit.witness_check import Witnesses
from lgsp_adapter.audit.witness_client import ask_witnesses
from lgsp_adapter.cli.audit_evidence import (
    archive_command,
    bundle_command,
    journey_command,
    prove_group,
    verify_archive_command,
    verify_bundle_command,
    verify_proof_command,
)
from lgsp_adapter.cli.targets import (
    PUBLIC_KEY,
    Progress,
    Target,
    cli_actor,
    fail,
    filter_options,
    make_query,
    open_log,
    run,
    target_options,
)
from lgsp_adapter.daemon.witnessing import witness_clients
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError


@click.group("audit")
def audit_group() -> None:
    """Read, prove and verify the audit log."""


@audit_group.command("show")
@click.argument("packet_id", type=click.UUID)
@target_options
def show_command(target: Target, packet_id: UUID) -> None:
    """One packet's journey: its deliveries and every audit entry."""
    found = run(_show(packet_id, target))
    if not found:
        fail(f"error: {ErrorCode.AUDIT_NOT_FOUND}: no packet {packet_id} in {target.location}")


async def _show(packet_id: UUID, target: Target) -> bool:
    async with target.store() as store:
        packet = await store.packet(packet_id)
        if packet is None:
            return False
        click.echo(f"packet     {packet.id}")
        click.echo(f"kind       {packet.kind}")
        click.echo(f"sender     {packet.sender}")
        click.echo(f"document   {packet.document_id or '-'}")
        click.echo(f"sha256     {packet.sha256}  ({len(packet.payload):,} bytes)")
        click.echo(f"received   {format_time(packet.received_at)}")
        for delivery in await store.deliveries(packet_id):
            detail = f"  {delivery.detail}" if delivery.detail else ""
            click.echo(
                f"to         {delivery.recipient}: {delivery.state}"
                f" ({delivery.attempts} attempts){detail}"
            )
        click.echo("history")
        for entry in await store.history(packet_id):
            click.echo(f"  #{entry.index}  {entry.line()}")
    return True


@audit_group.command("query")
@filter_options
@click.option("--after", type=int, help="Only entries after this index.")
@click.option("--before", type=int, help="Only entries before this index.")
@click.option("--limit", type=int, default=50, show_default=True, help="Entries per page.")
@click.option("--newest-first", is_flag=True, help="Latest entries first.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of text.")
@target_options
def query_command(
    target: Target,
    filters: dict[str, Any],
    after: int | None,
    before: int | None,
    limit: int,
    newest_first: bool,
    as_json: bool,
) -> None:
    """Search the log; prints one page, and how to ask for the next (``--after`` the last
    index shown, oldest first; ``--before`` it, newest first)."""
    query = make_query(filters, limit=limit, newest_first=newest_first, after=after, before=before)

    async def work() -> list[AuditEntry]:
        async with open_log(target) as log:
            return await log.query(query)

    found = run(work())
    for entry in found:
        click.echo(exports.line("jsonl", entry).rstrip("\n") if as_json else _line(entry))
    if len(found) == query.limit:
        cursor = "--before" if newest_first else "--after"
        click.echo(f"next page: {cursor} {found[-1].index}", err=True)


def _line(entry: AuditEntry) -> str:
    return f"#{entry.index}  {entry.line()}"


@audit_group.command("export")
@filter_options
@click.option("--format", "file_format", type=click.Choice(exports.FORMATS), default="jsonl")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
@target_options
def export_command(
    target: Target, filters: dict[str, Any], file_format: str, output: Path | None
) -> None:
    """Every matching entry, as CSV or JSON Lines (exact values; CSV guards formulas)."""
    query = make_query(filters)

    async def work() -> int:
        async with open_log(target) as log:
            total = await log.tree_size()
            progress = Progress("exported", None if any(filters.values()) else total)
            # Into a side file first: an interrupted export never looks like a finished one.
            partial = output.with_name(output.name + ".partial") if output else None
            stream = partial.open("w", encoding="utf-8", newline="") if partial else sys.stdout
            count = 0
            try:
                stream.write(exports.header(file_format))
                async for entry in exports.matching(log, query):
                    stream.write(exports.line(file_format, entry))
                    count += 1
                    if count % 10_000 == 0:
                        progress(count)
            finally:
                if partial:
                    stream.close()
            if partial and output:
                partial.rename(output)
            progress(count)
            progress.end()
            return count

    count = run(work())
    if output:
        click.echo(f"{count:,} entries written to {output}", err=True)


@audit_group.command("verify")
@PUBLIC_KEY
@click.option(
    "--offline",
    is_flag=True,
    help="Do not ask the witnesses ([[audit.witnesses]]) what they cosigned; their stored "
    "cosignatures are still checked.",
)
@target_options
def verify_command(target: Target, public_key: Path | None, offline: bool) -> None:
    """Recompute the whole log and check every checkpoint and what its witnesses cosigned
    (exit 1 naming the first bad entry, or the witness the log contradicts)."""

    async def work() -> Any:
        verifier = target.verifier(public_key)
        clients = witness_clients(target.settings)
        origin = verifier.verifiers[-1].name
        witnesses = (
            Witnesses(keys=tuple(c.verifier for c in clients))
            if offline
            else await ask_witnesses(clients, origin)
        )
        async with open_log(target) as log:
            archived = max((a.end for a in await log.archives()), default=0)
            progress = Progress("verified", await log.tree_size() - archived)
            report = await verify_log(log, verifier, progress, target.archive_folder(), witnesses)
            progress.end()
            return report

    report = run(work())
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if report.ok:
        click.echo(report.summary())
        return
    click.echo(f"error: {ErrorCode.AUDIT_TAMPERED}: {report.summary()}", err=True)
    for problem in report.problems[:20]:
        click.echo(f"  {problem.message}", err=True)
    if len(report.problems) > 20:
        click.echo(f"  … and {len(report.problems) - 20} more", err=True)
    sys.exit(1)


@audit_group.command("checkpoint")
@target_options
def checkpoint_command(target: Target) -> None:
    """Sign a checkpoint of the log now (the daemon also signs them periodically)."""

    async def work() -> str | None:
        key = target.key()
        async with open_log(target) as log:
            made = await log.checkpoint(key)
        return None if made is None else made.note

    note = run(work())
    if note is None:
        fail(f"error: {ErrorCode.AUDIT_NOT_FOUND}: the log is empty: nothing to sign")
    click.echo(note, nl=False)


@audit_group.command("checkpoints")
@target_options
def checkpoints_command(target: Target) -> None:
    """List the signed checkpoints: size, time, root hash, and the witnesses that cosigned."""

    async def work() -> tuple[list[Any], dict[int, list[str]]]:
        async with open_log(target) as log:
            cosigned: dict[int, list[str]] = {}
            for cosignature in await log.cosignatures():
                cosigned.setdefault(cosignature.size, []).append(cosignature.witness)
            return await log.checkpoints(), cosigned

    checkpoints, cosigned = run(work())
    for checkpoint in checkpoints:
        root = checkpoint.root.hex()
        witnesses = ", ".join(cosigned.get(checkpoint.size, []))
        line = f"{checkpoint.size:>10,}  {format_time(checkpoint.at)}  {root}"
        click.echo(f"{line}  cosigned by {witnesses}" if witnesses else line)


@audit_group.command("public-key")
@click.option("--pem", is_flag=True, help="PEM (SubjectPublicKeyInfo) instead.")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every key the log was signed with (those rotated out first), one a line.",
)
@target_options
def public_key_command(target: Target, pem: bool, every: bool) -> None:
    """The log's verifier key, to give auditors (its fingerprint on stderr)."""
    try:
        key = target.key()
        retired = [LogKey.load(p, key.name) for p in retired_paths(target.key_path())]
    except LgspError as exc:
        fail(f"error: {exc}")
    for shown in [*retired, key] if every else [key]:
        click.echo(shown.public_pem() if pem else shown.verifier.encoded(), nl=not pem)
        click.echo(f"fingerprint (SHA-256): {shown.verifier.fingerprint}", err=True)


@audit_group.command("rotate-key")
@target_options
def rotate_key_command(target: Target) -> None:
    """Replace the signing key: the old key and the new sign one hand-over checkpoint, the
    old is kept beside the new as retired. Stop every daemon on the store first; then give
    the new key to each replica."""

    async def work() -> Rotation:
        async with target.store(owner=True) as store:
            for role in ("relay", "checkpoints", "embedded-bus"):
                if not await store.take_role(role):
                    raise FatalError(
                        ErrorCode.STORE_UNAVAILABLE,
                        "a daemon is running on this store: stop every daemon (every "
                        "replica) first, so that none signs with the old key",
                    )
            return await rotate_key(
                store.audit, target.key_path(), target.settings.audit.log_name(), cli_actor()
            )

    done = run(work())
    click.echo(f"retired  {done.retired.fingerprint}  (kept as {done.kept_at})")
    click.echo(f"current  {done.current.fingerprint}  ({target.key_path()})")
    click.echo(f"hand-over checkpoint at size {done.checkpoint.size}, signed by both")
    click.echo(
        "give auditors the new verifier key (`audit public-key`), and every replica the new "
        "key file, before starting the daemons",
        err=True,
    )


# Proofs, bundles and archives: commands of their own module, in this group.
for _command in (
    prove_group,
    bundle_command,
    journey_command,
    verify_bundle_command,
    verify_proof_command,
    archive_command,
    verify_archive_command,
):
    audit_group.add_command(_command)

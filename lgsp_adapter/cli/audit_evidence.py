"""``lgsp-adapter audit`` commands that make and check evidence: inclusion and consistency
proofs, evidence bundles, archives, each checkable offline with the log's verifier key.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import click

from lgsp_adapter.audit import export as exports
from lgsp_adapter.audit.archive import archive_before, verify_archive
from lgsp_adapter.audit.bundle import (
    MAX_ENTRIES,
    dump,
    make_bundle,
    subject_of,
    verify_bundle,
)
from lgsp_adapter.audit.cosignature import WitnessVerifier
from lgsp_adapter.audit.journey import check_journey, is_journey, join
from lgsp_adapter.audit.proofs import (
    BadEvidence,
    check_consistency,
    check_inclusion,
    consistency_document,
    inclusion_document,
    signed_checkpoint,
)
from lgsp_adapter.audit.signing import LogKey, NoteError
from lgsp_adapter.cli.targets import (
    PUBLIC_KEY,
    Target,
    cli_actor,
    fail,
    filter_options,
    make_query,
    open_log,
    read_verifier,
    run,
    target_options,
)
from lgsp_adapter.errors import ErrorCode, LgspError


@click.group("prove")
def prove_group() -> None:
    """Proofs as JSON (docs/audit.md), against the latest or a given checkpoint."""


@prove_group.command("inclusion")
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=int, help="The checkpoint's size (default: the latest).")
@target_options
def prove_inclusion_command(target: Target, index: int, size: int | None) -> None:
    """That entry INDEX is in the log."""

    async def work() -> dict[str, Any]:
        async with open_log(target) as log:
            checkpoint = await signed_checkpoint(log, size)
            entries = await log.entries(index, index + 1)
            if not entries:
                raise LgspError(ErrorCode.AUDIT_NOT_FOUND, f"no entry {index} in the store")
            return await inclusion_document(log, entries[0], checkpoint)

    click.echo(json.dumps(run(work()), ensure_ascii=False, indent=1))


@prove_group.command("consistency")
@click.argument("old_size", type=click.IntRange(min=1))
@click.argument("new_size", type=click.IntRange(min=1), required=False)
@target_options
def prove_consistency_command(target: Target, old_size: int, new_size: int | None) -> None:
    """That the log at NEW_SIZE (default: the latest checkpoint) extends it at OLD_SIZE."""

    async def work() -> dict[str, Any]:
        async with open_log(target) as log:
            old = await signed_checkpoint(log, old_size)
            new = await signed_checkpoint(log, new_size)
            if old.size > new.size:
                raise LgspError(ErrorCode.AUDIT_BAD_QUERY, "the old size is the larger")
            return await consistency_document(log, old, new)

    click.echo(json.dumps(run(work()), ensure_ascii=False, indent=1))


@click.command("bundle")
@click.argument("packet", type=click.UUID, required=False)
@filter_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@PUBLIC_KEY
@target_options
def bundle_command(
    target: Target,
    packet: UUID | None,
    filters: dict[str, Any],
    output: Path,
    public_key: Path | None,
) -> None:
    """An evidence file for one packet (or the entries the filters match), checkable offline
    with `audit verify-bundle`."""
    if packet is not None:
        filters["packet_id"] = str(packet)
    if not any(filters.values()):
        fail("error: name a packet, or filter the entries to bundle (e.g. --since/--until)")
    query = make_query(filters)

    async def work() -> bytes:
        try:
            key: LogKey | None = target.key()
        except LgspError:
            key = None  # a reader without the key uses the checkpoints already signed
        async with open_log(target) as log:
            entries = await exports.gather(log, query, MAX_ENTRIES)
            if not entries:
                raise LgspError(ErrorCode.AUDIT_NOT_FOUND, "no entries match")
            if key is not None:
                verifier = key.verifier
            elif public_key is not None:
                verifier = read_verifier(public_key).verifiers[-1]  # the current key
            else:
                raise LgspError(
                    ErrorCode.CONFIG_INVALID,
                    "a bundle names the log's key: give --public-key, or run where the key is",
                )
            subject = subject_of(query)
            return dump(
                await make_bundle(log, entries, subject=subject, verifier=verifier, key=key)
            )

    data = run(work())
    output.write_bytes(data)
    click.echo(f"bundle written to {output} ({len(data):,} bytes)", err=True)


@click.command("verify-bundle")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@PUBLIC_KEY
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    help="A witness's key (name+id+base64) whose cosignature in the bundle to check; again "
    "for more.",
)
def verify_bundle_command(
    file: Path, public_key: Path | None, witness_keys: tuple[str, ...]
) -> None:
    """Check an evidence bundle, or a journey (`audit journey`), offline, with nothing but the
    file (and a pinned key, and the keys of the witnesses that cosigned its checkpoint)."""
    try:
        pinned = read_verifier(public_key) if public_key else None
        witnesses = [WitnessVerifier.parse(text) for text in witness_keys]
    except NoteError as exc:
        fail(f"error: {ErrorCode.CONFIG_INVALID}: --witness-key: {exc}")
    except LgspError as exc:
        fail(f"error: {exc}")
    try:
        data = file.read_bytes()
        if is_journey(data):
            click.echo(check_journey(data, [pinned], witnesses).summary())
            return
        check = verify_bundle(data, pinned, witnesses)
    except LgspError as exc:
        fail(f"error: {file}: {exc}")
    click.echo(check.summary())


@click.command("journey")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    help="A witness's key, to check its cosignatures.",
)
def journey_command(files: tuple[Path, ...], output: Path, witness_keys: tuple[str, ...]) -> None:
    """Join the bundles of one packet from the logs it crossed (the forwarding daemon's first,
    each `audit bundle PACKET_ID` on its own side) into one journey file, checked as it is
    made: `verify-bundle` then proves the whole journey offline."""
    try:
        witnesses = [WitnessVerifier.parse(text) for text in witness_keys]
        data = join([path.read_bytes() for path in files], witnesses)
    except NoteError as exc:
        fail(f"error: {ErrorCode.CONFIG_INVALID}: --witness-key: {exc}")
    except LgspError as exc:
        fail(f"error: {exc}")
    output.write_bytes(data)
    click.echo(f"journey of {len(files)} logs written to {output}", err=True)


@click.command("verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The log's verifier key (a proof carries none of its own).",
)
def verify_proof_command(file: Path, public_key: Path) -> None:
    """Check a proof from `audit prove` (or /v1/audit/proofs/…) offline."""
    try:
        verifier = read_verifier(public_key)
        document = json.loads(file.read_bytes())
        if not isinstance(document, dict) or document.get("type") not in (
            "inclusion",
            "consistency",
        ):
            raise BadEvidence("not a proof of this log (type inclusion or consistency)")
        if document["type"] == "inclusion":
            checkpoint, index = check_inclusion(document, verifier)
            click.echo(f"entry {index} is in log {checkpoint.origin!r} at size {checkpoint.size}")
        else:
            old, new = check_consistency(document, verifier)
            click.echo(f"log {new.origin!r} at size {new.size} extends it at size {old.size}")
    except ValueError as exc:
        fail(f"error: {file}: not JSON: {exc}")
    except LgspError as exc:
        fail(f"error: {file}: {exc}")


@click.command("archive")
@click.option("--before", required=True, help="Archive entries older than this (ISO 8601).")
@target_options
def archive_command(target: Target, before: str) -> None:
    """Move entries older than --before into a signed archive file (audit.archive_dir)."""
    try:
        moment = datetime.fromisoformat(before)
    except ValueError:
        fail(f"error: {ErrorCode.AUDIT_BAD_QUERY}: --before {before!r} is not an ISO 8601 time")
    if moment.tzinfo is None:
        fail(f"error: {ErrorCode.AUDIT_BAD_QUERY}: --before needs a time zone")
    folder = target.archive_folder()

    async def work() -> Any:
        key = target.key()
        async with open_log(target) as log:
            return await archive_before(log, key, moment, folder, actor=cli_actor())

    record = run(work())
    if record is None:
        click.echo("nothing to archive: no signed checkpoint covers only older entries")
        return
    click.echo(
        f"entries {record.start} to {record.end - 1} archived to {folder / record.file}"
        f" (sha256 {record.sha256})"
    )


@click.command("verify-archive")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@PUBLIC_KEY
def verify_archive_command(file: Path, public_key: Path | None) -> None:
    """Check an archive file on its own."""
    try:
        pinned = read_verifier(public_key) if public_key else None
        check = verify_archive(file, pinned)
    except LgspError as exc:
        fail(f"error: {file}: {exc}")
    click.echo(check.summary())

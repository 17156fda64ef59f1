"""``lgsp-adapter audit …``: the auditor's and operator's commands over the audit log.

Each opens the store read-mostly beside a running daemon (SQLite in WAL mode, or PostgreSQL)
and answers on stdout; long runs report progress on stderr when it is a terminal and stay quiet
in pipes, so ``audit export | gzip`` and cron jobs get clean output.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import click

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit import export as exports
from lgsp_adapter.audit.archive import archive_before, verify_archive
from lgsp_adapter.audit.bundle import (
    MAX_ENTRIES,
    dump,
    make_bundle,
    subject_of,
    verify_bundle,
)
from lgsp_adapter.audit.proofs import (
    BadEvidence,
    check_consistency,
    check_inclusion,
    consistency_document,
    inclusion_document,
    signed_checkpoint,
)
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.rotation import Rotation, keyring, retired_paths, rotate_key
from lgsp_adapter.audit.signing import Keyring, LogKey, NoteError, Trusted, Verifier
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.cli.actor import cli_actor
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError
from lgsp_adapter.store import Store
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.opening import opened

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Which log a command works on, and how to find its key."""

    settings: Settings
    location: str  # a SQLite file, or a postgresql:// URL

    @property
    def migrate(self) -> bool:
        """Whether commands may bring the schema up to date (else only `migrate` does)."""
        return self.settings.store.migrate_on_start

    def store(self, *, owner: bool = False) -> AbstractAsyncContextManager[Store]:
        """The store, opened for a command: never made by mistake, its schema brought up to
        date unless the settings leave that to `lgsp-adapter migrate`."""
        return opened(self.location, owner=owner, existing=True, migrate=self.migrate)

    @property
    def on_postgres(self) -> bool:
        """Whether the log is on PostgreSQL."""
        return is_postgres(self.location)

    def key_path(self) -> Path:
        """Where the signing key is."""
        store = self.settings.store.path if self.on_postgres else Path(self.location)
        return self.settings.audit.key_path(store)

    def key(self) -> LogKey:
        """The signing key (operators only: it must be readable)."""
        return LogKey.load(self.key_path(), self.settings.audit.log_name())

    def archive_folder(self) -> Path:
        """Where the log's archive files are."""
        store = self.settings.store.path if self.on_postgres else Path(self.location)
        return self.settings.audit.archive_folder(store)

    def verifier(self, public_key: Path | None) -> Trusted:
        """The keys to check against: the pinned ones, else the signing key's and those it
        replaced (kept beside it by `audit rotate-key`)."""
        if public_key is None:
            return keyring(self.key_path(), self.settings.audit.log_name())
        return read_verifier(public_key)


def read_verifier(path: Path) -> Trusted:
    """Verifier keys from a file, one a line (what ``audit public-key`` prints; with
    ``--all``, every key the log was signed with)."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        verifiers = tuple(Verifier.parse(line) for line in lines)
    except OSError as exc:
        raise FatalError(ErrorCode.CONFIG_INVALID, f"cannot read {path}: {exc.strerror}") from exc
    except (NoteError, UnicodeDecodeError) as exc:
        raise FatalError(ErrorCode.CONFIG_INVALID, f"{path}: {exc}") from exc
    if not verifiers:
        raise FatalError(ErrorCode.CONFIG_INVALID, f"{path}: no verifier key in it")
    return verifiers[0] if len(verifiers) == 1 else Keyring(verifiers)


@asynccontextmanager
async def open_log(target: Target) -> AsyncIterator[AuditStore]:
    """The audit log of ``target``'s store."""
    async with target.store() as store:
        yield store.audit


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 1."""
    click.echo(message, err=True)
    sys.exit(1)


def run(work: Awaitable[T]) -> T:
    """Run a coroutine, turning our errors into one line and exit 1."""
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except LgspError as exc:
        fail(f"error: {exc}")


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --store, resolved into a ``Target`` passed as ``target``."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML settings file; LGSP_… variables override it.",
    )
    @click.option(
        "--store",
        "location",
        default=None,
        help="The store: a SQLite file or a postgresql:// URL (default: the settings').",
    )
    @wraps(command)
    def wrapper(config_path: Path | None, location: str | None, **kwargs: Any) -> Any:
        try:
            settings = load_settings(config_path)
        except LgspError as exc:
            fail(f"error: {exc}")
        target = Target(settings, location or settings.store.location())
        return command(target=target, **kwargs)

    return wrapper


PUBLIC_KEY = click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The log's verifier key (from `audit public-key`), to check against it.",
)


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The query filters, gathered into ``filters``."""
    options = [
        click.option("--since", help="From this time (ISO 8601 with zone), inclusive."),
        click.option("--until", help="Up to this time, exclusive."),
        click.option("--agency", help="Sender or recipient agency code."),
        click.option("--kind", help="Packet kind: edoc, status, tax-transport/…"),
        click.option("--document-id", help="The document's id."),
        click.option("--outcome", help="ok, an error code, a status."),
        click.option("--event", type=click.Choice([e.value for e in AuditEvent])),
        click.option("--packet-id", help="One packet's entries."),
    ]
    names = ("since", "until", "agency", "kind", "document_id", "outcome", "event", "packet_id")

    @wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        kwargs["filters"] = {name: kwargs.pop(name) for name in names}
        return command(**kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def make_query(filters: dict[str, Any], **extra: Any) -> AuditQuery:
    """The validated query, or exit 1 naming each bad filter."""
    try:
        return AuditQuery.of({**filters, **extra})
    except LgspError as exc:
        fail(f"error: {exc}")


class Progress:
    """Counts on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label = label
        self.total = total
        self.shown = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if not self.shown:
            return
        of = f"/{self.total:,} ({done * 100 // max(self.total, 1)}%)" if self.total else ""
        click.echo(f"\r{self.label} {done:,}{of}", err=True, nl=False)

    def end(self) -> None:
        """Leave the line."""
        if self.shown:
            click.echo("", err=True)


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
        click.echo(f"received   {packet.received_at.isoformat()}")
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
@click.option("--after", type=int, help="Entries after this index (the next page).")
@click.option("--limit", type=int, default=50, show_default=True, help="Entries per page.")
@click.option("--newest-first", is_flag=True, help="Latest entries first.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of text.")
@target_options
def query_command(
    target: Target,
    filters: dict[str, Any],
    after: int | None,
    limit: int,
    newest_first: bool,
    as_json: bool,
) -> None:
    """Search the log; prints one page, and how to ask for the next."""
    cursor = {"before" if newest_first else "after": after}
    query = make_query(filters, limit=limit, newest_first=newest_first, **cursor)

    async def work() -> list[AuditEntry]:
        async with open_log(target) as log:
            return await log.query(query)

    found = run(work())
    for entry in found:
        click.echo(exports.line("jsonl", entry).rstrip("\n") if as_json else _line(entry))
    if len(found) == query.limit:
        click.echo(f"next page: --after {found[-1].index}", err=True)


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
@target_options
def verify_command(target: Target, public_key: Path | None) -> None:
    """Recompute the whole log and check every checkpoint (exit 1 naming the first bad entry)."""

    async def work() -> Any:
        verifier = target.verifier(public_key)
        async with open_log(target) as log:
            archived = max((a.end for a in await log.archives()), default=0)
            progress = Progress("verified", await log.tree_size() - archived)
            report = await verify_log(log, verifier, progress, target.archive_folder())
            progress.end()
            return report

    report = run(work())
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
    """List the signed checkpoints: size, time, root hash."""

    async def work() -> list[Any]:
        async with open_log(target) as log:
            return await log.checkpoints()

    for checkpoint in run(work()):
        root = checkpoint.root.hex()
        click.echo(f"{checkpoint.size:>10,}  {checkpoint.at.isoformat()}  {root}")


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


@audit_group.group("prove")
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


@audit_group.command("bundle")
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


@audit_group.command("verify-bundle")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@PUBLIC_KEY
def verify_bundle_command(file: Path, public_key: Path | None) -> None:
    """Check an evidence bundle offline, with nothing but the file (and a pinned key)."""
    try:
        pinned = read_verifier(public_key) if public_key else None
        check = verify_bundle(file.read_bytes(), pinned)
    except LgspError as exc:
        fail(f"error: {file}: {exc}")
    click.echo(check.summary())


@audit_group.command("verify-proof")
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


@audit_group.command("archive")
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


@audit_group.command("verify-archive")
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

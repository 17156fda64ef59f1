"""What a command works on, and as whom: the store and audit log it opens beside a running
daemon (from ``--config`` or ``--store``), the options that name them, the filters of a
search, and the actor it records in the audit log.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.rotation import keyring
from lgsp_adapter.audit.signing import Keyring, LogKey, NoteError, Trusted, Verifier
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError
from lgsp_adapter.store import Store
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.opening import opened

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (see config/lgsp-adapter.toml); LGSP_… variables override it.",
)
STORE_OPTION = click.option(
    "--store",
    "location",
    default=None,
    help="A SQLite file or a postgresql:// URL (default: the settings' store).",
)


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

    def axis_key_path(self) -> Path:
        """Where the key sealing the axis systems' secrets is."""
        store = self.settings.store.path if self.on_postgres else Path(self.location)
        return self.settings.axis.key_path(store)

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


def cli_actor() -> str:
    """Who runs a command: the account and the machine, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (cli)"

"""The daemon's settings: one TOML file, overridable by ``LGSP_…`` environment variables.

Settings are validated before anything connects, so a typo stops the process at start with the
field named, not an hour later. Nested keys map to environment variables with a double
underscore: ``[limits] max_bytes`` is ``LGSP_LIMITS__MAX_BYTES``. Every key is documented in
``config/lgsp-adapter.toml``.
"""

from __future__ import annotations

import ssl
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lgsp_adapter.daemon.config_axis import AxisSettings
from lgsp_adapter.daemon.config_consistency import check_consistent
from lgsp_adapter.daemon.config_signatures import SignatureSettings
from lgsp_adapter.daemon.config_witness import LogWitness, WitnessSettings
from lgsp_adapter.daemon.logs import LoggingSettings
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.agencies import Client, KnownAgency, ServedAgency
from lgsp_adapter.registry.attempt_budget import AttemptBudget
from lgsp_adapter.registry.bridges import Bridge
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.routes import BusSenders, Route
from lgsp_adapter.store.location import is_postgres


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HttpSettings(_Section):
    """The HTTP server agency systems, integrators and auditors talk to."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (tests, the demo).")
    requests_per_second: float = Field(
        50.0, gt=0, le=100_000, description="Per token, sustained; more gets 429 with Retry-After."
    )
    burst: int = Field(200, ge=1, le=1_000_000, description="Per token, at once.")
    idempotency_window_h: float = Field(
        24.0,
        gt=0,
        le=24 * 365,
        description="How long an Idempotency-Key answers a repeat with the first answer; "
        "older, the key is refused (packet.idempotency_expired).",
    )
    body_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="A request body must arrive whole within this; a trickle gets 408.",
    )
    tls_certificate: Path | None = Field(
        None, description="PEM certificate (with its chain): serve https. Unset: plain http."
    )
    tls_private_key: Path | None = Field(None, description="Its PEM private key, unencrypted.")
    tls_client_ca: Path | None = Field(
        None,
        description="PEM CA bundle: require a client certificate it signed, besides the token.",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key go together")
        if self.tls_client_ca is not None and self.tls_certificate is None:
            raise ValueError("tls_client_ca needs tls_certificate and tls_private_key")
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (TLS 1.2 at least), or None for plain http."""
        if self.tls_certificate is None or self.tls_private_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_certificate, self.tls_private_key)
            if self.tls_client_ca is not None:
                context.load_verify_locations(cafile=self.tls_client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise FatalError(
                ErrorCode.CONFIG_INVALID, f"[http] TLS files cannot be loaded: {exc}"
            ) from exc
        return context


def _node(value: str) -> str:
    """``host:port`` or ``[v6 address]:port``, the port a real one."""
    host, _, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not host or (":" in host and not bracketed) or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port (or [IPv6]:port)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: a port is from 1 to 65535")
    return value


class BusSettings(_Section):
    """The exchange bus. No URL: the embedded bus, durable in the local store."""

    url: SecretStr | None = Field(
        None, description="amqp://user:password@host:5672/vhost of the province's RabbitMQ."
    )
    cluster_nodes: list[Annotated[str, AfterValidator(_node)]] = Field(
        default_factory=list,
        max_length=20,
        description="The cluster's other nodes as host:port, same account and vhost as url: "
        "when the connected node is lost the daemon moves to the next.",
    )
    exchange: str = Field("lgsp.packets", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    declare: bool = Field(
        True,
        description="Declare the exchange and this daemon's queues at start. False where the "
        "daemon's account may configure nothing: an administrator runs `lgsp-adapter declare` "
        "beforehand, and the daemon only checks they are there.",
    )
    management_url: SecretStr | None = Field(
        None,
        description="http[s]://account:password@host:15672/ of the broker's management API, "
        "where the daemon declares the shovels of its [[bridges]] (an account tagged "
        "policymaker); none: `lgsp-adapter declare` declares them.",
    )
    consumer_timeout_s: float = Field(
        1800.0,
        gt=0,
        le=7 * 24 * 3600,
        description="The broker's consumer_timeout (RabbitMQ's default is 30 minutes): an "
        "endpoint whose delivery attempt could outlast it is refused, at start or when "
        "registered (`docs/bus.md`). Raise both together.",
    )
    prefetch: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Unacknowledged packets per consumer (one a served agency), each held whole "
        "in memory: lower it where documents are large (8 of 5 MB hold 40 MB an agency).",
    )


class StoreSettings(_Section):
    """Where the daemon keeps packets, deliveries and the audit log."""

    path: Path = Field(
        Path("var/lgsp-adapter.sqlite3"),
        description="The SQLite file (the embedded default). With url set, the folder beside "
        "which the audit signing key and archives are kept by default.",
    )
    url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:5432/database: keep everything in "
        "PostgreSQL instead, where replicas of this daemon serving the same agencies share it "
        "(docs/operations.md, Replicas).",
    )
    pool_size: int = Field(
        10, ge=2, le=200, description="PostgreSQL connections this daemon may hold at once."
    )
    migrate_on_start: bool = Field(
        True,
        description="Bring the store's schema up to date at start. False where upgrades run "
        "`lgsp-adapter migrate` themselves (replicas upgraded together): the daemon then "
        "refuses a schema older than it knows rather than change it.",
    )

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_postgres(value.get_secret_value()):
            raise ValueError("must be a postgresql:// URL")
        return value

    def location(self) -> str:
        """Where the store is: the PostgreSQL URL when set, else the SQLite file."""
        return self.url.get_secret_value() if self.url is not None else str(self.path)

    outbox_budget_mb: int = Field(
        1024,
        ge=1,
        le=10_000_000,
        description="While the bus is away, accepted packets wait in the store, up to this "
        "many megabytes (decimal: 1,000,000 bytes each); beyond it submissions get 503 with "
        "Retry-After until the bus has taken some.",
    )


class DeliverySettings(_Section):
    """How hard the daemon tries to deliver to an agency system."""

    quick_retries: int = Field(2, ge=0, le=10, description="Immediate retries of a blip.")
    quick_retry_delay_s: float = Field(0.2, ge=0, le=10)
    retry_delays_s: list[float] = Field(
        [5, 30, 120, 600, 1800, 3600],
        min_length=1,
        description="Then one durable retry after each of these delays; then the dead letters.",
    )


class AuditSettings(_Section):
    """The audit log's signing key and checkpoints."""

    signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs checkpoints; made at first start. "
        "Default: audit-signing.key beside the store.",
    )
    origin: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\s+]+$",
        description="The log's name in its checkpoints. Default: lgsp-adapter/ and the first "
        "16 hex digits of the key's fingerprint.",
    )
    checkpoint_interval_s: float = Field(
        60.0, ge=1, le=86_400, description="How often a checkpoint is signed, if the log grew."
    )
    archive_dir: Path | None = Field(
        None, description="Where `audit archive` writes. Default: audit-archive beside the store."
    )
    witnesses: list[LogWitness] = Field(
        [],
        max_length=20,
        description="Daemons that cosign each checkpoint (`[[audit.witnesses]]`): `audit "
        "verify` then fails, naming one, if the log contradicts what it cosigned.",
    )

    def key_path(self, store: Path) -> Path:
        """Where the signing key lives."""
        return self.signing_key or store.with_name("audit-signing.key")

    def log_name(self) -> str | None:
        """The log's origin line, when set (else the key names it)."""
        return self.origin

    def archive_folder(self, store: Path) -> Path:
        """Where archive files go."""
        return self.archive_dir or store.with_name("audit-archive")


class DaemonSettings(_Section):
    """The process itself."""

    drain_s: float = Field(
        30.0, ge=0, le=3600, description="On SIGTERM, how long deliveries in hand may finish."
    )
    registry_poll_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often the registry is checked for changes made by another process "
        "(the CLI, a replica); changes through this daemon's API apply at once.",
    )
    consumer_watch_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="On RabbitMQ, how often the daemon checks that each served agency's "
        "consumer is still attached (the broker cancels one whose queue was deleted), and "
        "attaches it again; /readyz says unready meanwhile.",
    )


class Settings(BaseSettings):
    """Everything an operator can set."""

    model_config = SettingsConfigDict(
        env_prefix="LGSP_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    limits: XmlLimits = XmlLimits()
    daemon: DaemonSettings = DaemonSettings()
    http: HttpSettings = HttpSettings()
    bus: BusSettings = BusSettings()
    store: StoreSettings = StoreSettings()
    delivery: DeliverySettings = DeliverySettings()
    audit: AuditSettings = AuditSettings()
    axis: AxisSettings = AxisSettings()
    witness: WitnessSettings = WitnessSettings()
    signatures: SignatureSettings = SignatureSettings()
    log: LoggingSettings = LoggingSettings()
    agencies: list[ServedAgency] = Field(
        default_factory=list, description="The agencies this daemon serves."
    )
    known_agencies: list[KnownAgency] = Field(
        default_factory=list, description="Agencies served by other daemons on the bus."
    )
    clients: list[Client] = Field(
        default_factory=list, description="Agency systems that submit packets, and for whom."
    )
    routes: list[Route] = Field(
        default_factory=list,
        description="Ranges of codes reached through one endpoint each (the national axis for "
        "a ministry's codes, say); none may hold an agency listed by name.",
    )
    bus_senders: list[BusSenders] = Field(
        default_factory=list,
        description="Ranges of codes served by other daemons on this bus, each believed only "
        "from one broker account (`docs/bus.md`).",
    )
    bridges: list[Bridge] = Field(
        default_factory=list,
        description="Ranges of codes on other buses (a ministry's, the national hub's, another "
        "province's), reached by RabbitMQ shovels (`docs/inter-level.md`).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        check_consistent(self)
        return self

    def attempt_budget(self) -> AttemptBudget:
        """What one delivery attempt may take, on this bus (`registry/attempt_budget.py`)."""
        return AttemptBudget(
            consumer_timeout_s=self.bus.consumer_timeout_s if self.bus.url else None,
            quick_retries=self.delivery.quick_retries,
            quick_retry_delay_s=self.delivery.quick_retry_delay_s,
        )

    def directory(self) -> Directory:
        """The agencies and clients, as the exchange asks about them."""
        return Directory(
            served=self.agencies,
            known=self.known_agencies,
            clients=self.clients,
            routes=self.routes,
            bridges=self.bridges,
            senders=self.bus_senders,
        )


def load_settings(path: Path | None = None) -> Settings:
    """Settings from ``path`` (when given) with environment overrides; ``FatalError`` if invalid."""
    if path is not None and not path.is_file():
        raise FatalError(ErrorCode.CONFIG_INVALID, f"config file {path} does not exist")

    class FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The environment wins over the file: operators override one key without editing it.
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        return FromFile()
    except tomllib.TOMLDecodeError as exc:
        raise FatalError(
            ErrorCode.CONFIG_INVALID, f"config file {path} is not valid TOML: {exc}"
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise FatalError(
            ErrorCode.CONFIG_INVALID, f"invalid settings ({problems})", details=str(path)
        ) from exc

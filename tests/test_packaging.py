"""The container image, the compose file, the systemd unit and the Grafana dashboard, tested as
far as this machine can: it has no Docker engine, so nothing here builds or starts a
container. What is checked instead: every file they name exists; the image's own entry point
and health check commands run, with its environment, against the settings it ships; the
compose broker's definitions load into a real RabbitMQ, and the two daemons' settings exchange
a letter on the least-privilege accounts they define; the unit and the dashboard name only
what exists."""

from __future__ import annotations

import asyncio
import base64
import configparser
import hashlib
import json
import os
import re
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from lgsp_adapter.bus.topology import Topology, permissions
from lgsp_adapter.cli.main import main
from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.daemon.metrics import Metrics
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server, arrival
from tests.documents import numbered
from tests.exchange_stores import fresh_schema
from tests.test_exchange_embedded import submit
from tests.test_exchange_rabbitmq import daemon, rabbitmqctl, remove_topology

PROJECT = Path(__file__).resolve().parents[1]
DOCKER = PROJECT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
DEFINITIONS = json.loads((DOCKER / "rabbitmq" / "definitions.json").read_text())


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_image_copies_what_exists_and_runs_commands_that_exist() -> None:
    steps = instructions()
    for word, rest in steps:
        if word == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (PROJECT / source).exists(), source
    entry = json.loads(next(rest for word, rest in steps if word == "ENTRYPOINT"))
    command = json.loads(next(rest for word, rest in steps if word == "CMD"))
    health = next(rest for word, rest in steps if word == "HEALTHCHECK")
    assert entry == ["lgsp-adapter"]
    assert command[0] in main.commands
    assert json.loads(health.split("CMD", 1)[1])[:2] == ["lgsp-adapter", "check"]
    assert ("USER", "lgsp") in steps  # not root


@pytest.mark.asyncio
async def test_the_images_entry_point_and_health_check_run_with_its_settings(
    tmp_path: Path,
) -> None:
    # As in the image: its ENV, the settings it copies, its CMD and its HEALTHCHECK, with the
    # paths of the container moved into a folder of the test's.
    steps = instructions()
    env = dict(os.environ)
    for word, rest in steps:
        if word == "ENV":
            env |= dict(re.findall(r"(\w+)=(\S+)", rest))
    settings = tmp_path / "lgsp-adapter.toml"
    settings.write_text((PROJECT / "config" / "lgsp-adapter.toml").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env |= {"LGSP_STORE__PATH": str(tmp_path / "store.sqlite3"), "LGSP_HTTP__PORT": str(port)}

    def in_here(words: list[str]) -> list[str]:
        return [str(settings) if w == "/etc/lgsp-adapter/lgsp-adapter.toml" else w for w in words]

    command = in_here(json.loads(next(rest for word, rest in steps if word == "CMD")))
    health = in_here(json.loads(next(r for w, r in steps if w == "HEALTHCHECK").split("CMD", 1)[1]))
    serving = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lgsp_adapter", *command, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert serving.stderr is not None
        line = await asyncio.wait_for(serving.stderr.readline(), timeout=30)
        assert json.loads(line)["level"] in ("INFO", "WARNING")  # its CMD logs JSON
        for _ in range(100):
            check = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lgsp_adapter",
                *health[1:],
                env=env,
                stdout=asyncio.subprocess.PIPE,
            )
            output, _ = await check.communicate()
            if check.returncode == 0:
                break
            await asyncio.sleep(0.2)
        assert check.returncode == 0, output
        assert output.startswith(b"ready")
    finally:
        serving.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serving.wait(), timeout=30)


def settings_file(service: str) -> Path:
    """The settings file compose mounts into a daemon's container."""
    for volume in COMPOSE["services"][service]["volumes"]:
        source, target, *_ = volume.split(":")
        if target == "/etc/lgsp-adapter/lgsp-adapter.toml":
            return DOCKER / str(source)
    raise AssertionError(f"{service} has no settings file")


def daemon_settings(name: str) -> Settings:
    """A compose daemon's settings, with the environment compose gives it."""
    return with_environment(settings_file(name), **COMPOSE["services"][name]["environment"])


def with_environment(path: Path, **environment: str) -> Settings:
    """Settings from ``path`` with ``environment`` set, as a container or a shell has it."""
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        return load_settings(path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def account(settings: Settings) -> tuple[str, str]:
    """The broker user and password a daemon's URL carries."""
    assert settings.bus.url is not None
    match = re.match(r"amqp://([^:]+):([^@]+)@", settings.bus.url.get_secret_value())
    assert match is not None
    return match.group(1), match.group(2)


def test_compose_names_files_that_exist_and_settings_that_load() -> None:
    services = COMPOSE["services"]
    assert {
        "rabbitmq",
        "postgres",
        "province",
        "province-replica",
        "commune",
        "agency-system",
    } <= set(services)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), source
        if "build" in service:
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    for name in ("province", "commune"):
        assert daemon_settings(name).bus.exchange == "lgsp.packets"


def test_the_brokers_accounts_are_the_daemons_least_permissions() -> None:
    users = {u["name"]: u for u in DEFINITIONS["users"]}
    granted = {p["user"]: p for p in DEFINITIONS["permissions"]}
    for name in ("province", "commune"):
        settings = daemon_settings(name)
        user, password = account(settings)
        salted = base64.b64decode(users[user]["password_hash"])
        assert hashlib.sha256(salted[:4] + password.encode()).digest() == salted[4:]
        codes = "|".join(re.escape(str(a.code)) for a in settings.agencies)
        least = permissions(Topology(settings.bus.exchange), codes)
        assert (granted[user]["configure"], granted[user]["write"], granted[user]["read"]) == (
            least.configure,
            least.write,
            least.read,
        )
        # Each believes the other's packets only from the other's account.
        other = daemon_settings("commune" if name == "province" else "province")
        assert {k.bus_user for k in settings.known_agencies} == {account(other)[0]}


@pytest.mark.asyncio
async def test_the_compose_daemons_exchange_a_letter_on_the_compose_accounts(
    tmp_path: Path, postgres_database: str
) -> None:
    # The broker here is Debian's, not the image: its definitions are imported into it, and
    # the two daemons' settings run on its accounts, against this machine's broker.
    # rabbitmqctl runs as the rabbitmq user: the file must be readable by it.
    definitions = Path("/tmp") / f"lgsp-definitions-{uuid.uuid4().hex}.json"  # noqa: S108
    definitions.write_text(json.dumps({**DEFINITIONS, "vhosts": []}))
    definitions.chmod(0o644)
    users = [u["name"] for u in DEFINITIONS["users"]]
    try:
        await rabbitmqctl("import_definitions", str(definitions))
    finally:
        definitions.unlink()
    agency = AgencyServer()
    try:
        async with agency_server(agency):
            province_store = await fresh_schema(postgres_database)

            def here(name: str) -> Settings:
                # Its settings file and compose's environment, with this machine's broker,
                # agency system, a free port and a store of the test's (PostgreSQL where
                # compose gives it one: the province's replicas share it).
                user, password = account(daemon_settings(name))
                text = settings_file(name).read_text()
                path = tmp_path / f"{name}.toml"
                path.write_text(text.replace("http://agency-system:9000/inbox", agency.url))
                on_postgres = "LGSP_STORE__URL" in COMPOSE["services"][name]["environment"]
                return with_environment(
                    path,
                    LGSP_BUS__URL=f"amqp://{user}:{password}@127.0.0.1:5672/",
                    LGSP_HTTP__HOST="127.0.0.1",
                    LGSP_HTTP__PORT="0",
                    LGSP_STORE__PATH=str(tmp_path / f"{name}.sqlite3"),
                    **({"LGSP_STORE__URL": province_store} if on_postgres else {}),
                )

            province = here("province")
            replica = here("province-replica")
            assert province.store.url is not None
            assert replica.store.location() == province.store.location()
            # In order: the replica starts once the first has made the signing key.
            async with (
                daemon(here("commune")),
                daemon(province) as url,
                daemon(replica) as replica_url,
            ):
                token = province.clients[0].token
                assert token is not None
                # The letter docs/operations.md sends, to each replica.
                letter = (DOCKER / "letter-to-commune.edxml").read_bytes()
                # The same letter twice would be one packet: each replica gets a letter of its own.
                packet_ids = [
                    await submit(address, numbered(letter), token.get_secret_value())
                    for address in (url, replica_url)
                ]
                for packet_id in packet_ids:
                    await arrival(agency, packet_id)
    finally:
        await remove_topology("lgsp.packets", ["000.00.00.H56", "000.21.00.H56"])
        for user in users:
            await rabbitmqctl("delete_user", user)
    assert sorted(agency.delivered()) == sorted(packet_ids)


def test_the_systemd_unit_runs_the_daemon_unprivileged_and_waits_for_its_drain() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(PROJECT / "deploy" / "systemd" / "lgsp-adapter.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:4] == [
        "serve",
        "--config",
        "/etc/lgsp-adapter/lgsp-adapter.toml",
    ]
    assert service["User"] not in ("root", "0")
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > Settings().daemon.drain_s


@pytest.mark.asyncio
async def test_the_dashboard_graphs_only_series_the_daemon_exposes(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        registry = Metrics(store).registry
    exposed: set[str] = set()
    for family in registry.collect():
        exposed.add(family.name)
        exposed |= {sample.name for sample in family.samples}
        exposed |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_count", "_sum")}
    dashboard: dict[str, Any] = json.loads(
        (PROJECT / "deploy" / "grafana" / "lgsp-adapter.json").read_text()
    )
    named = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\blgsp_[a-z_]+", target["expr"])
    }
    assert named
    assert named <= exposed, named - exposed

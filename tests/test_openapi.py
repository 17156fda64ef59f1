"""The OpenAPI description is valid, served, and covers exactly the routes the daemon serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.daemon.metrics import Metrics
from lgsp_adapter.daemon.parts import mount_api
from lgsp_adapter.exchange.dead_letters import DeadLetters
from lgsp_adapter.exchange.inbox import Inbox
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.http.app import make_app
from lgsp_adapter.http.audit import AuditAccess
from lgsp_adapter.http.axis_token import AxisTokens
from lgsp_adapter.http.health import Health
from lgsp_adapter.http.openapi import document
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.secret_box import SecretBox
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_web import settings


def test_the_document_is_valid_openapi() -> None:
    validate(document())


@pytest.mark.asyncio
async def test_every_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    config = settings(tmp_path)
    async with (
        await SqliteStore.open(config.store.path) as store,
        aiohttp.ClientSession() as session,
    ):
        directory = config.directory()

        async def announce(*_: Any) -> None:
            return None

        registry = Registry(store.registry, directory)

        def mount(app: web.Application) -> None:  # as the daemon mounts them
            mount_api(
                app,
                access=AuditAccess(log=store.audit, key=LogKey.generate(None)),
                inbox=Inbox(store=store, directory=directory, announce=announce),
                store=store,
                registry=registry,
                session=session,
                health=Health(store, lambda: True, "embedded", 1_000_000),
                metrics=Metrics(store),
                dead_letters=DeadLetters(
                    store=store,
                    directory=directory,
                    wake=lambda: None,
                    tell_sender=announce,
                    tell_own_system=announce,
                ),
                axis_systems=AxisSystems(registry, SecretBox.at(tmp_path / "axis.key")),
                axis_tokens=AxisTokens(SecretBox.at(tmp_path / "axis.key")),
            )

        app = make_app(
            store=store,
            directory=directory,
            intake=Intake(store=store, directory=directory, limits=config.limits),
            max_bytes=config.limits.max_bytes,
            mount=mount,
        )
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/v1/")
            and route.method != "HEAD"
        }
        described = {
            (method, path) for path, item in document()["paths"].items() for method in item
        }
        assert served == described
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            answer = await client.get("/v1/openapi.json")
            assert answer.status == 200
            assert (await answer.json())["openapi"] == "3.1.0"

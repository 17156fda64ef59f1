"""The HTTP server over TLS, optionally requiring client certificates besides the token."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, FatalError
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import daemon
from tests.test_registry_web import AUDITOR, PROVINCE
from tests.tls_files import make_tls_files


def settings(tmp_path: Path, inbox: str, **http: str) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0, **http},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [{"code": PROVINCE, "name": "tỉnh", "endpoint": {"url": inbox}}],
            "clients": [{"name": "auditor", "token": AUDITOR, "role": "auditor"}],
        }
    )


@pytest.mark.asyncio
async def test_https_with_client_certificates(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    config = settings(
        tmp_path,
        "http://127.0.0.1:9/",
        tls_certificate=str(files.server_cert),
        tls_private_key=str(files.server_key),
        tls_client_ca=str(files.ca),
    )
    headers = {"Authorization": f"Bearer {AUDITOR}"}
    async with agency_server(AgencyServer()), daemon(config) as url:
        assert url.startswith("https://127.0.0.1:")
        with_certificate = ssl.create_default_context(cafile=files.ca)
        with_certificate.load_cert_chain(files.client_cert, files.client_key)
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"{url}/v1/endpoints", headers=headers, ssl=with_certificate
            ) as answer:
                assert answer.status == 200
            without = ssl.create_default_context(cafile=files.ca)
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{url}/v1/endpoints", headers=headers, ssl=without):
                    pass
            plain = url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{plain}/v1/endpoints", headers=headers):
                    pass


def test_tls_settings_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        settings(tmp_path, "http://127.0.0.1:9/", tls_certificate="server.pem")
    config = settings(
        tmp_path,
        "http://127.0.0.1:9/",
        tls_certificate=str(tmp_path / "missing.pem"),
        tls_private_key=str(tmp_path / "missing.key"),
    )
    with pytest.raises(FatalError) as info:
        config.http.ssl_context()
    assert info.value.code is ErrorCode.CONFIG_INVALID

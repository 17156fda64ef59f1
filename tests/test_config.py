from __future__ import annotations

from pathlib import Path

import pytest

from lgsp_adapter.daemon.audit_duties import settings_digest
from lgsp_adapter.daemon.config import load_settings
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.packets.agency_code import AgencyCode
from tests.conftest import PROJECT

TOKEN = "a-client-token-of-32-characters!"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lgsp.toml"
    path.write_text(text)
    return path


AGENCY = """
[[agencies]]
code = "000.00.00.H56"
name = "UBND tỉnh Thanh Hóa"
[agencies.endpoint]
url = "http://127.0.0.1:9101/inbox"
"""


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(FatalError) as info:
        load_settings(write(tmp_path, text))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    return info.value.message


def test_the_reference_file_is_valid_and_documents_every_section() -> None:
    settings = load_settings(PROJECT / "config" / "lgsp-adapter.toml")
    assert settings.bus.url is None  # embedded by default
    assert [str(a.code) for a in settings.agencies] == ["000.00.00.H56"]
    directory = settings.directory()
    assert directory.is_known(AgencyCode.parse("000.00.12.H56"))
    assert not directory.is_known(AgencyCode.parse("000.00.00.H41"))


def test_no_file_gives_the_embedded_defaults() -> None:
    settings = load_settings(None)
    assert settings.agencies == []
    assert settings.delivery.retry_delays_s == [5, 30, 120, 600, 1800, 3600]


def test_a_client_finds_itself_by_token_only() -> None:
    settings = load_settings(None).model_validate(
        {
            "agencies": [
                {"code": "000.00.00.H56", "name": "x", "endpoint": {"url": "http://127.0.0.1:1/"}}
            ],
            "clients": [{"name": "qlvb", "token": TOKEN, "agencies": ["000.00.00.H56"]}],
        }
    )
    directory = settings.directory()
    client = directory.client_for(TOKEN)
    assert client is not None
    assert client.name == "qlvb"
    assert directory.client_for(TOKEN[:-1]) is None
    assert directory.client_for("") is None


def test_a_client_may_speak_only_for_agencies_served_here(tmp_path: Path) -> None:
    text = AGENCY + f'[[clients]]\nname = "x"\ntoken = "{TOKEN}"\nagencies = ["000.00.00.H41"]\n'
    assert "may only speak for agencies served here, not 000.00.00.H41" in refused(tmp_path, text)


def test_two_clients_may_not_share_a_token(tmp_path: Path) -> None:
    client = f'[[clients]]\nname = "{{}}"\ntoken = "{TOKEN}"\nagencies = ["000.00.00.H56"]\n'
    text = AGENCY + client.format("a") + client.format("b")
    assert "share a token" in refused(tmp_path, text)


def test_short_tokens_are_refused(tmp_path: Path) -> None:
    text = AGENCY + '[[clients]]\nname = "x"\ntoken = "short"\nagencies = ["000.00.00.H56"]\n'
    assert "at least 24 characters" in refused(tmp_path, text)


def test_a_push_endpoint_needs_a_url(tmp_path: Path) -> None:
    text = '[[agencies]]\ncode = "000.00.00.H56"\nname = "x"\n[agencies.endpoint]\nmode = "push"\n'
    assert "a push endpoint needs a url" in refused(tmp_path, text)


def test_an_agency_code_must_have_the_standard_shape(tmp_path: Path) -> None:
    assert "agencies.0.code" in refused(tmp_path, AGENCY.replace("000.00.00.H56", "28.22.H17"))


def test_secrets_never_show_in_the_settings_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LGSP_BUS__URL", "amqp://daemon:hunter2-secret@127.0.0.1:5672/")
    text = AGENCY + f'[[clients]]\nname = "x"\ntoken = "{TOKEN}"\nagencies = ["000.00.00.H56"]\n'
    settings = load_settings(write(tmp_path, text))
    assert settings.bus.url is not None
    assert "hunter2-secret" in settings.bus.url.get_secret_value()
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-secret" not in shown
        assert TOKEN not in shown


def test_endpoint_kinds_must_be_kinds_we_carry(tmp_path: Path) -> None:
    text = AGENCY + 'kinds = ["edoc", "tax-transport/licences"]\n'
    assert "unknown packet kinds ['tax-transport/licences']" in refused(tmp_path, text)


def test_a_client_certificate_needs_https(tmp_path: Path) -> None:
    text = (
        AGENCY
        + '[agencies.endpoint.auth]\nkind = "mtls"\ncertificate = "c.pem"\nprivate_key = "k.pem"\n'
    )
    assert "a client certificate needs an https url" in refused(tmp_path, text)


def test_an_hmac_secret_must_be_long(tmp_path: Path) -> None:
    text = AGENCY + '[agencies.endpoint.auth]\nkind = "hmac"\nkey_id = "k1"\nsecret = "short"\n'
    assert "at least 32 characters" in refused(tmp_path, text)


def test_a_settings_client_needs_its_token(tmp_path: Path) -> None:
    text = AGENCY + '[[clients]]\nname = "x"\nagencies = ["000.00.00.H56"]\n'
    assert "needs its token" in refused(tmp_path, text)


def test_an_integrator_speaks_for_no_agency(tmp_path: Path) -> None:
    text = (
        AGENCY
        + f'[[clients]]\nname = "i"\nrole = "integrator"\ntoken = "{TOKEN}"\n'
        + 'agencies = ["000.00.00.H56"]\n'
    )
    assert "an integrator speaks for no agency" in refused(tmp_path, text)


def test_a_changed_endpoint_password_changes_the_settings_digest() -> None:
    base = {
        "agencies": [
            {
                "code": "000.00.00.H56",
                "name": "x",
                "endpoint": {
                    "url": "http://127.0.0.1:1/",
                    "auth": {"kind": "basic", "username": "u", "password": "one"},
                },
            }
        ]
    }
    first = load_settings(None).model_validate(base)
    base["agencies"][0]["endpoint"]["auth"]["password"] = "two"  # type: ignore[index]
    second = load_settings(None).model_validate(base)
    assert settings_digest(first) != settings_digest(second)

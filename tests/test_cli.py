"""The command line as people run it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, SAMPLES, sample


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lgsp_adapter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_inspect_summarises_a_document() -> None:
    result = run("inspect", str(EXAMPLES / "edoc-new-thanh-hoa.edxml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "kind         edoc (new document, BussinessDocType 0)"
    assert "sender       000.00.00.H56  Văn phòng UBND tỉnh Thanh Hóa" in lines
    assert "document id  000.00.00.H56,2026/11/20,1234/UBND-KSTTHC" in lines
    assert any(line.startswith("  cid:1  cong-van-1234.zip  application/zip") for line in lines)
    assert lines[-1] == "warnings     none"


def test_inspect_lists_warnings_of_a_real_sample() -> None:
    sample("edoc_new.edxml")  # skips without the shared samples
    result = run("inspect", str(SAMPLES / "edxml" / "edoc_new.edxml"))
    assert result.returncode == 0, result.stderr
    assert "warnings     3" in result.stdout
    assert "'28.22.H17' is not an agency code" in result.stdout


def test_inspect_json_is_the_canonical_model() -> None:
    result = run("inspect", "--json", str(EXAMPLES / "status-03-accepted.edxml"))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["kind"] == "status"
    header = body["packet"]["envelope"]["header"]["message_header"]
    assert header["status_code"] == "03"
    assert header["timestamp"] == {
        "text": "2026/11/20 10:02:41",
        "iso": "2026-11-20T10:02:41+07:00",
    }
    assert body["warnings"] == []


def test_inspect_json_gives_attachment_digests_not_contents() -> None:
    result = run("inspect", "--json", str(EXAMPLES / "edoc-new-thanh-hoa.edxml"))
    attachment = json.loads(result.stdout)["packet"]["attachments"][0]
    assert set(attachment) >= {"content_id", "size_bytes", "sha256"}
    assert "encoded" not in attachment


def test_invalid_input_exits_1_with_one_precise_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.edxml"
    bomb.write_text('<!DOCTYPE edXML [<!ENTITY a "aaaa">]><edXML>&a;</edXML>')
    result = run("inspect", str(bomb))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {bomb}: xml.entity_declaration: the document declares entities "
        "(entity expansion attack); entities are not allowed"
    ]


def test_one_bad_file_among_good_ones_fails_the_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "tax-transport/unknown"}')
    result = run("inspect", str(EXAMPLES / "tax-transport-licence.json"), str(bad))
    assert result.returncode == 1
    assert "kind         tax-transport/licence" in result.stdout
    assert "packet.unknown_kind" in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("inspect", str(tmp_path / "nope.edxml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_limits_come_from_the_config_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "lgsp.toml"
    config.write_text("[limits]\nmax_bytes = 1000\n")
    packet = str(EXAMPLES / "edoc-new-thanh-hoa.edxml")
    assert "packet.too_large" in run("inspect", "--config", str(config), packet).stderr
    relaxed = run(
        "inspect", "--config", str(config), packet, env={"LGSP_LIMITS__MAX_BYTES": "99999"}
    )
    assert relaxed.returncode == 0, relaxed.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[limits]\nmax_bytes = -5\n", "limits.max_bytes"),
        ("[limits]\nmax_byte = 5\n", "limits.max_byte"),
        ("[limits\n", "config"),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, content: str, fragment: str) -> None:
    config = tmp_path / "lgsp.toml"
    config.write_text(content)
    result = run("inspect", "--config", str(config), str(EXAMPLES / "status-03-accepted.edxml"))
    assert result.returncode == 1
    assert "config.invalid" in result.stderr
    assert fragment in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("lgsp-adapter, version ")


def test_demo_then_audit_show(tmp_path: Path) -> None:
    result = run("demo", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    command = next(
        line.split(":  ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("See one packet's journey again:")
    )
    words = command.split()
    assert words[0].endswith("lgsp-adapter")  # by name, or by its path in the venv
    assert words[1:3] == ["audit", "show"]
    # Run as printed, as a newcomer would paste it.
    shown = subprocess.run(words, capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "kind       edoc" in shown.stdout
    assert shown.stdout.count("delivered") >= 3


def test_audit_show_of_an_unknown_packet(tmp_path: Path) -> None:
    run("demo", "--data-dir", str(tmp_path))
    result = run(
        "audit",
        "show",
        "00000000-0000-0000-0000-000000000000",
        "--store",
        str(tmp_path / "lgsp-adapter.sqlite3"),
    )
    assert result.returncode == 1
    assert "no packet" in result.stderr


def test_serve_refuses_settings_it_cannot_run(tmp_path: Path) -> None:
    config = tmp_path / "lgsp.toml"
    config.write_text("")
    result = run("serve", "--config", str(config))
    assert result.returncode == 1
    assert "serves nobody" in result.stderr

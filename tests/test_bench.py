"""The benchmarks keep working: a short run of each, figures printed, no timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT


def test_codec_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "codec.py"),
            "--seconds",
            "0.05",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "codec docs/s" in result.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"20KB", "5MB"}
    for row in figures.values():
        assert row["codec_docs_per_s"] > 0
        assert row["peak_memory_bytes"] >= 0


@pytest.mark.parametrize("bus", ["embedded", "rabbitmq"])
def test_exchange_benchmark_runs_and_every_packet_arrives(tmp_path: Path, bus: str) -> None:
    out = tmp_path / "exchange.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "exchange.py"),
            "--bus",
            bus,
            "--seconds",
            "1",
            "--submitters",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["submitted"] > 0
    assert figures["delivered"] == figures["submitted"]


def test_audit_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "audit.py"),
            "--entries",
            "3000",
            "--packets",
            "20",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["entries"] == 3000
    assert figures["bundle_entries"] == 5
    assert figures["bundle_bytes"] > 0
    assert "verify: 3,000 entries" in result.stdout

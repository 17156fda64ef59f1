"""The benchmarks keep working: a short run of each, figures printed, no timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT


def test_codec_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    assert "codec docs/s" in bench("codec.py", "--seconds", "0.05", "--json", str(out))
    figures = json.loads(out.read_text())
    assert set(figures) == {"20KB", "5MB"}
    for row in figures.values():
        assert row["codec_docs_per_s"] > 0
        assert row["peak_memory_bytes"] >= 0


def test_make_bench_runs_every_figure_and_every_packet_arrives(tmp_path: Path) -> None:
    # CI's smoke run of `make bench`: a fraction of a second a run, figures not judged.
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "run.py"), "--seconds", "0.3", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio, 2 KB end to end / baseline:" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["baseline"]["messages"] > 0
    assert set(figures["runs"]) == {"2KB", "64KB", "5MB", "2KB at half rate", "2KB embedded"}
    for name, row in figures["runs"].items():
        assert row["submitted"] > 0, name
        assert row["delivered"] == row["submitted"], name
        assert row["failed"] == 0, name
        assert row["cpu_s_per_packet"] > 0, name
        assert all(peak > 0 for peak in row["peak_rss_mb"]), name


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


def test_signature_benchmark_reports_both_sizes(tmp_path: Path) -> None:
    out = tmp_path / "signatures.json"
    assert "signature check 5 MB" in bench("signatures.py", "--seconds", "0.05", "--json", str(out))
    figures = json.loads(out.read_text())
    assert set(figures) == {"2 KB", "5 MB"}
    assert all(row["check_ms"] > 0 and row["lxml_parse_ms"] > 0 for row in figures.values())


def bench(script: str, *args: str) -> str:
    """Run one benchmark script to its end; what it printed."""
    result = subprocess.run(  # our own script
        [sys.executable, str(PROJECT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout

"""`make bench`: every figure docs/performance.md publishes, measured in one run on this
machine, with the raw aio-pika ceiling of the same broker as the yardstick.

1. baseline: raw aio-pika, 2 KB persistent messages through one quorum queue, confirms in a
   window, a concurrent consumer acknowledging;
2. end to end through RabbitMQ (daemon A takes the submissions, daemon B delivers to an agency
   server on loopback), 2 KB, 64 KB and 5 MB documents;
3. the 2 KB run again at half its maximum rate, for the latency an operator sees below capacity;
4. end to end on the embedded bus (one daemon).

Prints a table, writes JSON (--json, default bench/results/latest.json), and asserts nothing: a
benchmark is not a test. `--seconds` shortens every run (CI's smoke run uses a fraction of one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import baseline  # bench/ is a folder of scripts, not a package
from exchange import run

KB, MB = 1024, 1024 * 1024


async def measure(seconds: float) -> dict[str, Any]:
    """Every run, in turn (each has the machine to itself)."""
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
    }
    results["baseline"] = await baseline(seconds)
    rows = {}
    for name, size, submitters in (("2KB", 2 * KB, 50), ("64KB", 64 * KB, 50), ("5MB", 5 * MB, 10)):
        rows[name] = await run("rabbitmq", seconds, submitters, 0.0, size)
    half = max(1.0, rows["2KB"]["packets_per_s"] / 2)
    rows["2KB at half rate"] = await run("rabbitmq", seconds, 50, half, 2 * KB)
    rows["2KB embedded"] = await run("embedded", seconds, 50, 0.0, 2 * KB)
    results["runs"] = rows
    results["ratio_2KB"] = rows["2KB"]["packets_per_s"] / results["baseline"]["messages_per_s"]
    return results


def table(results: dict[str, Any]) -> str:
    """The figures, for people."""
    base = results["baseline"]
    lines = [
        f"baseline: raw aio-pika, {base['message_bytes']:,} B persistent, confirmed, acknowledged"
        f" through one quorum queue: {base['messages_per_s']:,.0f} messages/s",
        "",
        f"{'run':<18} {'packets/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/pkt':>10} {'peak RSS MB':>16} {'failed':>7}",
    ]
    for name, row in results["runs"].items():
        rss = "/".join(f"{mb:.0f}" for mb in row["peak_rss_mb"])
        lines.append(
            f"{name:<18} {row['packets_per_s']:>10,.0f} {row['p50_ms']:>8.0f} "
            f"{row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} "
            f"{row['cpu_s_per_packet'] * 1000:>10.2f} {rss:>16} {row['failed']:>7}"
        )
    lines += [
        "",
        f"ratio, 2 KB end to end / baseline: {results['ratio_2KB']:.0%}",
        "(RabbitMQ runs: peak RSS of the receiving daemon / the sending daemon)",
        "",
        "CPU ms a packet (a message for the baseline), by process, in the same runs:",
    ]
    parts = {"baseline": base["cpu_ms_per_message_by_part"]}
    parts |= {name: row["cpu_ms_per_packet_by_part"] for name, row in results["runs"].items()}
    for name, by_part in parts.items():
        spent = ", ".join(f"{part} {ms:.2f}" for part, ms in by_part.items())
        lines.append(f"  {name:<18} {spent}; in all {sum(by_part.values()):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each run's length")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).resolve().parent / "results" / "latest.json"
    )
    args = parser.parse_args()
    results = asyncio.run(measure(args.seconds))
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()

"""What a process has used, from Linux's /proc: CPU time and peak memory, for the benchmarks'
accounting of who spent what (daemons, broker, load generator) in the same run."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory a process has had (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def broker_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM, if the broker runs on this machine (and we may
    read its /proc entry); None for a broker elsewhere."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"beam.smp" in command and b"rabbit" in command:
            return int(entry.name)
    return None


class CpuMeter:
    """CPU seconds a set of processes used between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._before: dict[str, float] = {}

    def start(self) -> None:
        """Note where each process stands."""
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds each used since ``start``."""
        return {name: cpu_seconds(pid) - self._before[name] for name, pid in self._pids.items()}

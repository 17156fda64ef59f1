"""``lgsp-adapter check``: the running daemon's readiness as an exit status, for a container's
HEALTHCHECK, systemd or a monitoring agent that runs commands.

It asks ``/readyz`` rather than checking the store and the broker itself, so the command and
the probe can never disagree: 0 when the daemon is ready or degraded (the bus is away and
packets wait in the outbox: it still keeps its promise), 1 when it is unready or does not
answer.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp

from lgsp_adapter.daemon.config import Settings, load_settings
from lgsp_adapter.errors import ErrorCode, FatalError


def base_url(settings: Settings) -> str:
    """Where the daemon these settings describe answers (on loopback when it listens on
    every address)."""
    scheme = "https" if settings.http.tls_certificate else "http"
    host = settings.http.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # listening everywhere: ask on loopback
        host = "127.0.0.1"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.http.port}"


def daemon_url(config_path: Path | None) -> str:
    """The base URL of the daemon the settings file describes, for the commands that call it
    (check, dlq); ``FatalError`` when the settings are wrong or let it pick its port."""
    settings = load_settings(config_path)
    if settings.http.port == 0:
        raise FatalError(
            ErrorCode.CONFIG_INVALID, "the settings let the daemon pick its port; give --url"
        )
    return base_url(settings)


async def check(url: str, *, cafile: Path | None = None, timeout_s: float = 5) -> tuple[int, str]:
    """The exit status and a line for people."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, ssl=context if url.startswith("https") else True) as response,
        ):
            text = await response.text()
            try:
                report = json.loads(text)
            except ValueError:
                return 1, f"{url} answered {response.status}, not a readiness report"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return 1, f"unreachable: {url}: {type(exc).__name__}: {exc}"
    status = report.get("status", "?") if isinstance(report, dict) else "?"
    why = report.get("why") if isinstance(report, dict) else None
    line = f"{status}: {url} answered {response.status}" + (f" ({why})" if why else "")
    return (0 if response.status == 200 else 1), line

"""``lgsp-adapter …`` as a shell runs it: another process, its exit status and its output."""

from __future__ import annotations

import asyncio
import os
import sys


async def lgsp_adapter(*args: str, stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    """Run the command with ``args`` (``stdin`` on its standard input, ``env`` added to the
    environment): status, stdout, stderr."""
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lgsp_adapter",
        *args,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    data = stdin.encode() if stdin is not None else None
    out, err = await asyncio.wait_for(run.communicate(data), timeout=60)
    assert run.returncode is not None
    return run.returncode, out.decode(), err.decode()

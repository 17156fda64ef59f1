"""``lgsp-adapter …`` as a shell runs it: another process, its exit status and its output."""

from __future__ import annotations

import asyncio
import os
import sys


async def lgsp_adapter(*args: str, **env: str) -> tuple[int, str, str]:
    """Run the command with ``args`` (and ``env`` added to the environment): status, stdout,
    stderr."""
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lgsp_adapter",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), timeout=60)
    assert run.returncode is not None
    return run.returncode, out.decode(), err.decode()

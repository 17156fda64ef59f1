"""Who runs a command, as the audit log names an operator acting from a shell."""

from __future__ import annotations

import getpass
import os
import socket


def cli_actor() -> str:
    """Who runs a command: the account and the machine, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (cli)"

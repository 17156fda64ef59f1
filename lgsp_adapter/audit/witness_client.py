"""Asking witnesses to cosign this log's checkpoints, and reading what they cosigned.

A witness cosigns only a checkpoint proved consistent with the last one it cosigned of this
log, so the client sends a consistency proof from that size. It learns the size from the
witness itself (a 409 carries it) rather than from its own store, which is exactly what an
operator rewriting the log could tamper with.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from lgsp_adapter.audit.cosignature import WitnessVerifier, checkpoint_text
from lgsp_adapter.audit.proofs import b64
from lgsp_adapter.audit.signing import NoteError
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import consistency_path
from lgsp_adapter.audit.witness_check import Witnesses, WitnessView

log = logging.getLogger(__name__)
TIMEOUT = aiohttp.ClientTimeout(total=15)
_MAX_ANSWER = 64 * 1024


class WitnessUnavailable(Exception):
    """The witness did not cosign: unreachable, or it refused (the message says which)."""


@dataclass
class WitnessClient:
    """One witness of this log, as its settings name it."""

    url: str  # its prefix: add-checkpoint and <origin hash>/checkpoint are below it
    verifier: WitnessVerifier
    size: int | None = None  # the size of this log the witness has, as last learned

    @property
    def name(self) -> str:
        """The witness's name (its key's)."""
        return self.verifier.name

    async def cosign(
        self, session: aiohttp.ClientSession, store: AuditStore, checkpoint: StoredCheckpoint
    ) -> str:
        """The witness's cosignature line of ``checkpoint``, checked and kept in ``store``."""
        old = self.size if self.size is not None else await self._cosigned_before(store)
        for _ in range(3):  # a 409 tells the size to prove from; two are a witness moving
            if old > checkpoint.size:
                raise WitnessUnavailable(
                    f"witness {self.name} has cosigned size {old} of this log, past its latest "
                    f"checkpoint {checkpoint.size}: the log lost entries it had signed"
                )
            proof = (
                []
                if old in (0, checkpoint.size)
                else await consistency_path(store, old, checkpoint.size)
            )
            body = f"old {old}\n" + "".join(f"{b64(h)}\n" for h in proof) + "\n" + checkpoint.note
            status, text = await self._post(session, body)
            if status == 409:
                old = _size(text, self.name)
                continue
            if status != 200:
                raise WitnessUnavailable(f"witness {self.name} refused ({status}): {text.strip()}")
            line = self._own_line(text, checkpoint)
            await store.add_cosignature(checkpoint.size, self.name, line)
            self.size = checkpoint.size
            return line
        raise WitnessUnavailable(f"witness {self.name} kept changing its size of this log")

    async def view(self, session: aiohttp.ClientSession, origin: str) -> str | None:
        """The latest checkpoint of the log ``origin`` the witness cosigned (the note with its
        cosignature), None if it has none; ``WitnessUnavailable`` if it cannot be asked."""
        url = f"{self.url.rstrip('/')}/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint"
        try:
            async with session.get(url, timeout=TIMEOUT) as response:
                text = (await _whole(response)).decode("utf-8", "replace")
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise WitnessUnavailable(f"witness {self.name} answered {response.status}")
                return text
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WitnessUnavailable(f"witness {self.name} at {url}: {exc!r}") from exc

    async def _cosigned_before(self, store: AuditStore) -> int:
        sizes = [c.size for c in await store.cosignatures() if c.witness == self.name]
        return max(sizes, default=0)

    async def _post(self, session: aiohttp.ClientSession, body: str) -> tuple[int, str]:
        url = f"{self.url.rstrip('/')}/add-checkpoint"
        try:
            async with session.post(url, data=body.encode(), timeout=TIMEOUT) as response:
                text = (await _whole(response)).decode("utf-8", "replace")
                return response.status, text
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WitnessUnavailable(f"witness {self.name} at {url}: {exc!r}") from exc

    def _own_line(self, text: str, checkpoint: StoredCheckpoint) -> str:
        """The answer's line that is this witness's valid cosignature of ``checkpoint``."""
        signed = checkpoint_text(checkpoint.note)
        for line in text.splitlines():
            try:
                self.verifier.check(line, signed)
            except NoteError:
                continue
            return line + "\n"
        raise WitnessUnavailable(
            f"witness {self.name} answered without a valid cosignature by its key "
            f"{self.verifier.key_id.hex()}"
        )


async def _whole(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body, up to ``_MAX_ANSWER`` (``read(n)`` gives only what has come)."""
    body = b""
    while len(body) < _MAX_ANSWER and (chunk := await response.content.read(_MAX_ANSWER)):
        body += chunk
    return body[:_MAX_ANSWER]


def _size(text: str, name: str) -> int:
    size = text.strip()
    if not size.isascii() or not size.isdigit():
        raise WitnessUnavailable(f"witness {name} answered 409 without its size")
    return int(size)


async def ask_witnesses(clients: Sequence[WitnessClient], origin: str) -> Witnesses:
    """What each witness cosigned last of the log ``origin``, for a verification; one that
    cannot be asked is noted, and its stored cosignatures are still checked."""
    views: list[WitnessView] = []
    unreachable: list[str] = []
    async with aiohttp.ClientSession() as session:
        for client in clients:
            try:
                views.append(WitnessView(client.verifier, await client.view(session, origin)))
            except WitnessUnavailable as exc:
                unreachable.append(f"not asked: {exc}")
    keys = tuple(client.verifier for client in clients)
    return Witnesses(keys=keys, views=tuple(views), unreachable=tuple(unreachable))

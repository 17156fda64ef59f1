"""``async with`` for the store's parts: leaving the block closes what the part holds."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    """A part whose ``close`` gives back its connections, locks and roles; used as
    ``async with part:``, it does so however the block ends."""

    async def close(self) -> None:
        """Give back what the part holds."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

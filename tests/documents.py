"""Documents of their own: the exchange knows an edXML document by its sender and DocumentId,
so a test that sends "the same letter" many times, meaning many letters, numbers each."""

from __future__ import annotations

import itertools
import re

_NUMBERS = itertools.count(100_001)
_DOCUMENT_ID = re.compile(rb"(<(?:\w+:)?DocumentId>[^,<]*,[^,<]*,)[^/<]*")


def numbered(document: bytes, number: int | None = None) -> bytes:
    """``document`` with the number of its DocumentId replaced (a fresh one by default)."""
    chosen = str(next(_NUMBERS) if number is None else number).encode()
    renumbered, found = _DOCUMENT_ID.subn(lambda m: m.group(1) + chosen, document, count=1)
    assert found == 1, "no DocumentId to number"
    return renumbered

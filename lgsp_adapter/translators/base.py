"""The translator interface, the registry of installed translators, and the guard around them.

A translator turns an agency system's bytes into one of our packets (edXML, or tax–transport
JSON) and back. What the agency's format does not carry (who sends, to whom, under what
reference) comes in an ``Envelope``. Whatever a translator raises reaches the caller as a
``TranslationError`` naming the translator: a plugin's bug must never look like our crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from lgsp_adapter.errors import ErrorCode, InvalidPacket, LgspError

GROUP = "lgsp_adapter.translators"


@dataclass(frozen=True)
class Envelope:
    """What a packet needs that an agency system's own format may not say."""

    sender: str
    recipients: list[str] = field(default_factory=list)
    reference: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class TranslationError(InvalidPacket):
    """The agency system's bytes cannot become a packet, or the packet cannot become theirs;
    ``details`` locates the fault (row and column, or field)."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(ErrorCode.TRANSLATION_FAILED, message, details=details)


@runtime_checkable
class Translator(Protocol):
    """What a translator plugin provides."""

    name: str
    media_type: str  # of the agency system's format
    description: str

    def to_packet(self, data: bytes, envelope: Envelope) -> bytes:
        """The agency system's bytes as one of our packets."""
        ...

    def from_packet(self, packet: bytes) -> bytes:
        """One of our packets in the agency system's format."""
        ...


def installed() -> dict[str, Translator]:
    """Every installed translator, by name."""
    found: dict[str, Translator] = {}
    for point in entry_points(group=GROUP):
        translator = point.load()()
        if not isinstance(translator, Translator):
            raise LgspError(
                ErrorCode.TRANSLATOR_UNKNOWN, f"entry point {point.name} is not a translator"
            )
        found[translator.name] = translator
    return found


def find(name: str) -> Translator:
    """The installed translator called ``name``."""
    translators = installed()
    if name not in translators:
        raise LgspError(
            ErrorCode.TRANSLATOR_UNKNOWN,
            f"no translator {name!r}; installed: {', '.join(sorted(translators)) or 'none'}",
        )
    return translators[name]


def translate_to_packet(translator: Translator, data: bytes, envelope: Envelope) -> bytes:
    """``translator.to_packet``, with anything it raises told as a translation error."""
    try:
        return translator.to_packet(data, envelope)
    except LgspError:
        raise
    except Exception as exc:  # a plugin's bug, reported as such, never as ours
        raise TranslationError(
            f"translator {translator.name} failed: {type(exc).__name__}: {exc}",
            details={"translator": translator.name},
        ) from exc


def translate_from_packet(translator: Translator, packet: bytes) -> bytes:
    """``translator.from_packet``, with anything it raises told as a translation error."""
    try:
        return translator.from_packet(packet)
    except LgspError:
        raise
    except Exception as exc:
        raise TranslationError(
            f"translator {translator.name} failed: {type(exc).__name__}: {exc}",
            details={"translator": translator.name},
        ) from exc

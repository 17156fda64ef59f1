"""The translator interface, the registry of installed translators, and the guard around them.

A translator turns an agency system's bytes into one of our packets (edXML, or tax–transport
JSON) and back. What the agency's format does not carry (who sends, to whom, under what
reference) comes in an ``Envelope``. Whatever a translator raises reaches the caller as a
``TranslationError`` naming the translator: a plugin's bug must never look like our crash.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from lgsp_adapter.errors import ErrorCode, InvalidPacket, LgspError
from lgsp_adapter.packets.reader import read_packet, recipients_of, sender_of
from lgsp_adapter.packets.safe_xml import XmlLimits

log = logging.getLogger(__name__)

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


@functools.cache
def _load() -> tuple[dict[str, Translator], dict[str, str]]:
    """Installed translators by name, and those that failed to load with why: one broken
    plugin must not take the others down. Read once per process: the daemon asks for every
    translated packet, and scanning the installed packages costs milliseconds each time (a
    plugin installed later is seen after a restart, as any code is)."""
    found: dict[str, Translator] = {}
    broken: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        try:
            translator = point.load()()
        except Exception as exc:  # a plugin's import or constructor failing
            broken[point.name] = f"{type(exc).__name__}: {exc}"
            log.warning("translator %s could not be loaded: %s", point.name, broken[point.name])
            continue
        if not isinstance(translator, Translator):
            broken[point.name] = "not a translator (name, media_type, to_packet, from_packet)"
            continue
        found[translator.name] = translator
    return found, broken


def installed() -> dict[str, Translator]:
    """Every installed translator that loads, by name."""
    return _load()[0]


def find(name: str) -> Translator:
    """The installed translator called ``name``."""
    translators, broken = _load()
    if name in broken:
        raise LgspError(
            ErrorCode.TRANSLATOR_UNKNOWN, f"translator {name!r} could not be loaded: {broken[name]}"
        )
    if name not in translators:
        raise LgspError(
            ErrorCode.TRANSLATOR_UNKNOWN,
            f"no translator {name!r}; installed: {', '.join(sorted(translators)) or 'none'}",
        )
    return translators[name]


def translate_to_packet(
    translator: Translator, data: bytes, envelope: Envelope, limits: XmlLimits | None = None
) -> bytes:
    """``translator.to_packet``, with anything it raises told as a translation error, and its
    output read and checked as a submitted packet would be: it must be a packet we read,
    within the limits, from the envelope's sender to the envelope's recipients (when named)."""
    try:
        packet = translator.to_packet(data, envelope)
    except LgspError:
        raise
    except Exception as exc:  # a plugin's bug, reported as such, never as ours
        raise TranslationError(
            f"translator {translator.name} failed: {type(exc).__name__}: {exc}",
            details={"translator": translator.name},
        ) from exc
    read = read_packet(packet, limits=limits or XmlLimits())
    sender = sender_of(read.packet)
    if sender != envelope.sender:
        raise TranslationError(
            f"the translated packet is from {sender!r}, not the sender {envelope.sender!r}",
            details={"sender": sender},
        )
    recipients = recipients_of(read.packet)
    if envelope.recipients and sorted(recipients) != sorted(envelope.recipients):
        raise TranslationError(
            f"the translated packet goes to {', '.join(recipients)}, not to "
            f"{', '.join(envelope.recipients)}",
            details={"recipients": recipients},
        )
    return packet


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

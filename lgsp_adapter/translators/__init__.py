"""Translators between agency systems' own formats and our packets, as plugins.

A translator is found by name among the ``lgsp_adapter.translators`` entry points, so a vendor
ships one in its own Python package without touching the core (``docs/translators.md``). Two
come with the adapter: ``badges-csv`` (a transport department's CSV export of vehicle badges)
and ``vn-document-json`` (a JSON document with Vietnamese field names). May import ``packets``
and ``errors`` only.
"""

from lgsp_adapter.translators.base import (
    Envelope,
    TranslationError,
    Translator,
    find,
    installed,
    translate_from_packet,
    translate_to_packet,
)

__all__ = [
    "Envelope",
    "TranslationError",
    "Translator",
    "find",
    "installed",
    "translate_from_packet",
    "translate_to_packet",
]

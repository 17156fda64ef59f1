"""What an XML document says before its root element — its encoding and any DOCTYPE — read
from the raw bytes before libxml2 sees them.

This is a security boundary, not a convenience. With every loading option off, libxml2 still
opens the file named by an external DTD (``<!DOCTYPE x SYSTEM "/etc/...">``; strace shows it),
tries network DTDs, and reports entity bombs as generic syntax errors. So every DOCTYPE is
refused here, with a code that says what it attempted. That only holds if we read the prolog in
the encoding libxml2 will use, so documents are limited to the encodings we can read the same way:
UTF-8 and the other ASCII-compatible ones we allow, and UTF-16. Anything else (UTF-7, which can
spell ``<!DOCTYPE`` in plain ASCII letters; UTF-32; EBCDIC) is refused outright.
"""

from __future__ import annotations

import re
from typing import NoReturn

from lgsp_adapter.errors import ErrorCode, InvalidPacket

# Encodings whose bytes spell markup in ASCII, as libxml2 names them (lower case).
ASCII_COMPATIBLE = frozenset(
    {"utf-8", "utf8", "us-ascii", "ascii", "latin1", "latin-1", "cp1258"}
    | {f"iso-8859-{n}" for n in range(1, 17) if n != 12}
    | {f"windows-{n}" for n in range(1250, 1259)}
)
UTF16 = frozenset({"utf-16", "utf-16le", "utf-16be"})

_UCS4 = (
    b"\xff\xfe\x00\x00",
    b"\x00\x00\xfe\xff",
    b"\x00\x00\x00<",
    b"<\x00\x00\x00",
    b"\x00\x00<\x00",
    b"\x00<\x00\x00",
)
_PREFIX_BYTES = 64 * 1024  # a prolog is a few hundred bytes; look further only when it is not
_DECLARATION_BYTES = 1024  # "<?xml version encoding standalone ?>" with generous blanks
_ENCODING = re.compile(r"\sencoding\s*=\s*([\"'])([^\"']*)\1")
_PROLOG = re.compile(
    # The internal subset ends at the first "]" outside quotes: an entity value may hold "]>".
    r"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*"
    r"(<!DOCTYPE\b(?:[^\[>]*\[(?:[^\]\"']|\"[^\"]*\"|'[^']*')*\]\s*>|[^>]*>)?)?",
    re.DOTALL | re.IGNORECASE,
)
_EXTERNAL_ID = re.compile(r"\b(?:SYSTEM|PUBLIC)\b", re.IGNORECASE)
_ENTITY = re.compile(r"<!ENTITY\b(?P<decl>[^>]*)>?", re.IGNORECASE)


def check_prolog(data: bytes) -> None:
    """Refuse an encoding we cannot read as libxml2 would, and any DOCTYPE."""
    codec = _codec(data)
    doctype = _doctype(data, codec)
    if doctype is not None:
        _refuse(doctype)


def _codec(data: bytes) -> str:
    """The Python codec that reads the prolog as libxml2 will (XML 1.0, appendix F)."""
    # libxml2 tells encodings apart by the first four bytes alone, then by the declaration.
    if data.startswith(_UCS4):
        raise _unsupported("UTF-32")
    if data.startswith(b"\x4c\x6f\xa7\x94"):  # "<?xm" in EBCDIC
        raise _unsupported("EBCDIC")
    if data.startswith(b"\xef\xbb\xbf"):
        codec, allowed = "utf-8-sig", ASCII_COMPATIBLE
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec, allowed = "utf-16", UTF16
    elif data.startswith(b"<\x00"):
        codec, allowed = "utf-16-le", UTF16
    elif data.startswith(b"\x00<"):
        codec, allowed = "utf-16-be", UTF16
    else:  # what libxml2 reads as UTF-8 unless declared otherwise
        codec, allowed = "latin-1", ASCII_COMPATIBLE  # ASCII bytes read the same in all of them
    declared = _declared_encoding(data, codec)
    if declared is not None and declared not in allowed:
        raise _unsupported(declared)
    return codec


def _declared_encoding(data: bytes, codec: str) -> str | None:
    """The encoding the XML declaration names, read as libxml2 does: the declaration opens the
    document and ends at the first ``?>``. One that does not end soon is refused, since blanks
    could otherwise push the encoding past any prefix we read."""
    head = data[: _DECLARATION_BYTES * 4].decode(codec, errors="replace")
    if not head.startswith("<?xml"):
        return None
    end = head.find("?>", 0, _DECLARATION_BYTES)
    if end < 0:
        raise InvalidPacket(
            ErrorCode.XML_MALFORMED,
            f"the XML declaration does not end within {_DECLARATION_BYTES} characters",
        )
    declared = _ENCODING.search(head[:end])
    if declared is None:
        if "encoding" in head[:end]:
            raise InvalidPacket(
                ErrorCode.XML_MALFORMED, "the XML declaration's encoding is unreadable"
            )
        return None
    return declared.group(2).strip().lower()


def _unsupported(name: str) -> InvalidPacket:
    return InvalidPacket(
        ErrorCode.XML_UNSUPPORTED_ENCODING,
        f"the document is in {name}; packets are accepted in UTF-8 (recommended), UTF-16 or a "
        "single-byte ASCII-compatible encoding such as windows-1258",
        details={"encoding": name},
    )


def _doctype(data: bytes, codec: str) -> str | None:
    for size in (_PREFIX_BYTES, len(data)):
        text = data[:size].decode(codec, errors="replace")
        match = _PROLOG.match(text)
        if match is None:  # cannot happen: every part of the pattern is optional
            return None
        doctype = match.group(1)
        if doctype is not None and (doctype.endswith(">") or size >= len(data)):
            return doctype
        # Look at everything only when the prefix ended inside the prolog.
        unfinished = (
            doctype is not None
            or text.startswith(("<!--", "<?"), match.end())
            or match.end() == len(text)
        )
        if not unfinished or size >= len(data):
            return None
    return None


def _refuse(doctype: str) -> NoReturn:
    subset_start = doctype.find("[")
    head = doctype if subset_start < 0 else doctype[:subset_start]
    entities = [m.group("decl") for m in _ENTITY.finditer(doctype)]
    refuse_doctype(
        external_entity=any(_EXTERNAL_ID.search(decl) for decl in entities),
        entities=bool(entities),
        external_dtd=bool(_EXTERNAL_ID.search(head)),
    )


def refuse_doctype(*, external_entity: bool, entities: bool, external_dtd: bool) -> NoReturn:
    """Refuse a DOCTYPE, naming the worst thing it attempted."""
    if external_entity:
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_ENTITY,
            "the document declares an external entity (XXE); entities are not allowed",
        )
    if entities:
        raise InvalidPacket(
            ErrorCode.XML_ENTITY_DECLARATION,
            "the document declares entities (entity expansion attack); entities are not allowed",
        )
    if external_dtd:
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_DTD,
            "the document refers to an external DTD; DTDs are not allowed",
        )
    raise InvalidPacket(ErrorCode.XML_DTD_FORBIDDEN, "the document has a DTD; none is allowed")

"""The only door through which XML enters the adapter: lxml with every dangerous feature off.

Packets come from other agencies' systems and must be treated as hostile. The parser resolves no
entities, loads no DTD, touches no network and no file; any DOCTYPE is refused (edXML has none),
with a code that says what it tried (external entity, entity expansion, external DTD). Size and
depth are bounded by ``XmlLimits``: ``huge_tree`` is on, because a single base64 attachment above
~7 MiB is a text node larger than libxml2's default 10 MB cap, and that also lifts libxml2's own
safeguards — so our limits are the ones that protect us.
"""

from __future__ import annotations

import functools
import re

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from lgsp_adapter.errors import ErrorCode, InvalidPacket

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


class XmlLimits(BaseModel):
    """Bounds on any XML we read; the defaults fit every real edXML packet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(
        DEFAULT_MAX_BYTES,
        gt=0,
        description="Largest packet accepted, in bytes (attachments are inline base64).",
    )
    max_depth: int = Field(
        DEFAULT_MAX_DEPTH,
        gt=0,
        le=1000,
        description="Deepest element nesting accepted; edXML itself needs 8.",
    )


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


@functools.cache
def _too_deep(max_depth: int) -> etree.XPath:
    # True when some element sits below max_depth levels: evaluated in C, no Python walk.
    return etree.XPath("boolean(/*" + "/*" * max_depth + ")")


def parse(data: bytes, limits: XmlLimits) -> etree._Element:
    """Parse untrusted bytes into a tree, or raise ``InvalidPacket`` saying what is wrong."""
    if len(data) > limits.max_bytes:
        raise InvalidPacket(
            ErrorCode.XML_TOO_LARGE,
            f"the document is {len(data)} bytes; the limit is {limits.max_bytes}",
            details={"size_bytes": len(data), "max_bytes": limits.max_bytes},
        )
    if not data.strip():
        raise InvalidPacket(ErrorCode.XML_MALFORMED, "the document is empty")
    doctype = _doctype(data)
    if doctype is not None:
        _refuse(doctype)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        if "Excessive depth" in (exc.msg or ""):  # libxml2's own hard limit (2048) came first
            raise InvalidPacket(
                ErrorCode.XML_TOO_DEEP,
                f"elements are nested deeper than {limits.max_depth} levels",
                details={"max_depth": limits.max_depth, "line": line},
            ) from exc
        raise InvalidPacket(
            ErrorCode.XML_MALFORMED,
            f"not well-formed XML at line {line}, column {column}: {exc.msg}",
            details={"line": line, "column": column},
        ) from exc
    _refuse_doctype(root.getroottree().docinfo)
    if _too_deep(limits.max_depth)(root):
        raise InvalidPacket(
            ErrorCode.XML_TOO_DEEP,
            f"elements are nested deeper than {limits.max_depth} levels",
            details={"max_depth": limits.max_depth},
        )
    return root


_PROLOG = re.compile(
    r"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*(<!DOCTYPE\b(?:[^\[>]*\[.*?\]\s*>|[^>]*>)?)?",
    re.DOTALL | re.IGNORECASE,
)
_EXTERNAL_ID = re.compile(r"\b(?:SYSTEM|PUBLIC)\b", re.IGNORECASE)
_ENTITY = re.compile(r"<!ENTITY\b(?P<decl>[^>]*)>?", re.IGNORECASE)


def _doctype(data: bytes) -> str | None:
    """The DOCTYPE declaration of the prolog, found before libxml2 ever reads it.

    libxml2 tries to load external DTDs and parameter entities while it parses, even with loading
    turned off (it then fails with a network error, but a ``file:`` one could be read), so any
    DOCTYPE is refused here, from the raw prolog, before parsing begins.
    """
    # The prolog is a few hundred bytes; look further only when comments or PIs fill the start.
    for size in (_PROLOG_PREFIX_BYTES, len(data)):
        text = _prolog_text(data[:size])
        match = _PROLOG.match(text)
        if match is None:  # cannot happen: every part of the pattern is optional
            return None
        doctype = match.group(1)
        if doctype is not None and (doctype.endswith(">") or size >= len(data)):
            return doctype
        unfinished = (
            doctype is not None
            or text.startswith(("<!--", "<?"), match.end())
            or match.end() == len(text)
        )
        if not unfinished or size >= len(data):
            return None
    return None


_PROLOG_PREFIX_BYTES = 64 * 1024


def _prolog_text(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if data[:2] == b"<\x00":
        return data.decode("utf-16-le", errors="replace")
    if data[:2] == b"\x00<":
        return data.decode("utf-16-be", errors="replace")
    # UTF-8 and the other ASCII-compatible encodings spell markup in ASCII bytes.
    return data.decode("latin-1")


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _refuse(doctype: str) -> None:
    subset_start = doctype.find("[")
    head = doctype if subset_start < 0 else doctype[:subset_start]
    entities = [m.group("decl") for m in _ENTITY.finditer(doctype)]
    if any(_EXTERNAL_ID.search(decl) for decl in entities):
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_ENTITY,
            "the document declares an external entity (XXE); entities are not allowed",
        )
    if entities:
        raise InvalidPacket(
            ErrorCode.XML_ENTITY_DECLARATION,
            "the document declares entities (entity expansion attack); entities are not allowed",
        )
    if _EXTERNAL_ID.search(head):
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_DTD,
            "the document refers to an external DTD; DTDs are not allowed",
        )
    raise InvalidPacket(ErrorCode.XML_DTD_FORBIDDEN, "the document has a DTD; none is allowed")


def _refuse_doctype(docinfo: etree.DocInfo) -> None:
    """Second line of defence: whatever DTD libxml2 still saw is refused the same way."""
    dtd = docinfo.internalDTD
    entities = list(dtd.iterentities()) if dtd is not None else []
    if any(entity.system_url for entity in entities):
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_ENTITY,
            "the document declares an external entity (XXE); entities are not allowed",
        )
    if entities:
        raise InvalidPacket(
            ErrorCode.XML_ENTITY_DECLARATION,
            "the document declares entities (entity expansion attack); entities are not allowed",
        )
    if docinfo.system_url or docinfo.public_id:
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_DTD,
            "the document refers to an external DTD; DTDs are not allowed",
        )
    if docinfo.doctype or dtd is not None:
        raise InvalidPacket(ErrorCode.XML_DTD_FORBIDDEN, "the document has a DTD; none is allowed")


def parse_fragment(xml: str) -> etree._Element:
    """Parse an element we stored ourselves (an unknown element kept from a packet)."""
    return etree.fromstring(xml.encode(), _parser())

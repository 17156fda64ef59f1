"""The only door through which XML enters the adapter: lxml with every dangerous feature off.

Packets come from other agencies' systems and must be treated as hostile. The prolog is read first
(``xml_prolog``): any DOCTYPE is refused (edXML has none) with a code that says what it tried,
and so is any encoding we cannot read as libxml2 would. The parser then resolves no entities,
loads no DTD and touches no network. Size and
depth are bounded by ``XmlLimits``: ``huge_tree`` is on, because a single base64 attachment above
~7 MiB is a text node larger than libxml2's default 10 MB cap, and that also lifts libxml2's own
safeguards — so our limits are the ones that protect us.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.xml_prolog import check_prolog, refuse_doctype

if TYPE_CHECKING:  # only the type stubs name what a resolver returns
    from lxml.etree._docloader import _InputDocument

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
    max_elements: int = Field(
        20_000,
        gt=0,
        description="Most elements accepted; a document to 500 recipients has about 5,000.",
    )
    max_namespaces: int = Field(
        64,
        gt=0,
        le=10_000,
        description="Most namespace declarations accepted; real packets make one to three.",
    )


class _RefuseEverything(etree.Resolver):
    """Answers every request libxml2 makes for an outside resource with nothing, and notes it.

    Defence in depth behind the prolog check: libxml2 should never ask, but one parser option
    (``collect_ids=False``) alone was enough to make it open the file an external DTD names.
    """

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def resolve(
        self, system_url: str | None, public_id: str | None, context: object
    ) -> _InputDocument:
        self.asked.append(system_url or public_id or "?")
        return self.resolve_empty(context)


def _parser(resolver: etree.Resolver, *, verbatim: bool = False) -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=True,
        remove_comments=not verbatim,
        remove_pis=not verbatim,
    )
    parser.resolvers.add(resolver)
    return parser


@functools.cache
def _too_deep(max_depth: int) -> etree.XPath:
    # True when some element sits below max_depth levels: evaluated in C, no Python walk.
    return etree.XPath("boolean(/*" + "/*" * max_depth + ")")


def parse(data: bytes, limits: XmlLimits, *, verbatim: bool = False) -> etree._Element:
    """Parse untrusted bytes into a tree, or raise ``InvalidPacket`` saying what is wrong.
    ``verbatim`` keeps comments and processing instructions: a signature covers them."""
    if len(data) > limits.max_bytes:
        raise InvalidPacket(
            ErrorCode.XML_TOO_LARGE,
            f"the document is {len(data)} bytes; the limit is {limits.max_bytes}",
            details={"size_bytes": len(data), "max_bytes": limits.max_bytes},
        )
    if not data.strip():
        raise InvalidPacket(ErrorCode.XML_MALFORMED, "the document is empty")
    check_prolog(data)
    # Work per element grows with the namespaces in scope: bound both before anything is built.
    # A byte count over-counts ("xmlns" in text), which only makes the bound safer.
    declarations = data.count(b"xmlns")
    if declarations > limits.max_namespaces:
        raise InvalidPacket(
            ErrorCode.XML_TOO_MANY_NAMESPACES,
            f"the document declares up to {declarations} namespaces; the limit is "
            f"{limits.max_namespaces}",
            details={"max_namespaces": limits.max_namespaces},
        )
    resolver = _RefuseEverything()
    try:
        root = etree.fromstring(data, _parser(resolver, verbatim=verbatim))
    except etree.XMLSyntaxError as exc:
        _refuse_outside_resources(resolver)
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
    _refuse_outside_resources(resolver)
    _refuse_doctype(root.getroottree().docinfo)
    if _too_deep(limits.max_depth)(root):
        raise InvalidPacket(
            ErrorCode.XML_TOO_DEEP,
            f"elements are nested deeper than {limits.max_depth} levels",
            details={"max_depth": limits.max_depth},
        )
    elements = int(_COUNT_ELEMENTS(root))
    if elements > limits.max_elements:
        raise InvalidPacket(
            ErrorCode.XML_TOO_MANY_ELEMENTS,
            f"the document has {elements} elements; the limit is {limits.max_elements}",
            details={"elements": elements, "max_elements": limits.max_elements},
        )
    return root


_COUNT_ELEMENTS = etree.XPath("count(//*)")


def _refuse_outside_resources(resolver: _RefuseEverything) -> None:
    if resolver.asked:
        raise InvalidPacket(
            ErrorCode.XML_EXTERNAL_DTD,
            "the document asks for outside resources; nothing was read",
            details={"asked": resolver.asked[:5]},
        )


def _refuse_doctype(docinfo: etree.DocInfo) -> None:
    """Second line of defence: whatever DTD libxml2 still saw is refused the same way."""
    dtd = docinfo.internalDTD
    if not docinfo.doctype and dtd is None:
        return
    entities = list(dtd.iterentities()) if dtd is not None else []
    refuse_doctype(
        external_entity=any(entity.system_url for entity in entities),
        entities=bool(entities),
        external_dtd=bool(docinfo.system_url or docinfo.public_id),
    )


def verbatim_parser() -> etree.XMLParser:
    """A parser as safe as ``parse``'s that keeps comments and processing instructions: for a
    signature library that copies a tree we parsed (its copy must be what was signed)."""
    return _parser(_RefuseEverything(), verbatim=True)


def parse_fragment(xml: str) -> etree._Element:
    """Parse an element we stored ourselves (an unknown element kept from a packet)."""
    return etree.fromstring(xml.encode(), _parser(_RefuseEverything()))

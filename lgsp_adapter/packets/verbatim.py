"""Keeping an element exactly as received, and keeping an unknown element faithfully.

Two promises of the codec rest here. The XML-DSig ``Signature`` is kept *verbatim*: the bytes the
sender wrote, cut from the packet, but only when they mean, where we render them, exactly what
the parsed tree says (same structure and text, same namespace bindings in scope at every
element, so a prefix used inside an XPath transform cannot be rebound). Otherwise, and for
elements the standard does not define, the element is kept in canonical XML (C14N 1.0), which
declares every namespace in scope: its meaning survives being moved, whatever its text refers to.
"""

from __future__ import annotations

import re

from lxml import etree

from lgsp_adapter.packets import safe_xml

_MARKUP_TO_SKIP = rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
_ATTRIBUTES = rb"""(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*"""


def canonical(element: etree._Element) -> str:
    """The element in canonical XML, declaring all namespaces in scope, so it means the same
    wherever it is put. With no default namespace in scope it says ``xmlns=""``, or it would
    fall into the QCVN default namespace where we write it."""
    text = etree.tostring(element, method="c14n").decode()
    # C14N declares a default namespace in scope first of all on the element; none means none
    # is in scope (lxml's nsmap cannot tell: it ignores xmlns="").
    name_end = re.match(r"<[^\s/>]+", text)
    if name_end is not None and not text.startswith(' xmlns="', name_end.end()):
        text = f'{text[: name_end.end()]} xmlns=""{text[name_end.end() :]}'
    return text


def cut_from_source(
    source: bytes, element: etree._Element, context: dict[str | None, str]
) -> str | None:
    """The element's own bytes in ``source``, if they mean the same inside an element whose
    namespaces in scope are ``context``; None when they cannot be cut or would not."""
    qualified = (f"{element.prefix}:" if element.prefix else "") + etree.QName(element).localname
    span = _span(source, qualified.encode(), _ordinal(element, qualified))
    if span is None:
        return None
    try:
        text = source[span[0] : span[1]].decode("utf-8")
        declarations = "".join(
            f' xmlns:{prefix}="{uri}"' if prefix else f' xmlns="{uri}"'
            for prefix, uri in context.items()
        )
        probe = safe_xml.parse_fragment(f"<probe{declarations}>{text}</probe>")[0]
    except (UnicodeDecodeError, etree.XMLSyntaxError, IndexError):
        return None
    return text if _same_meaning(probe, element) else None


def _ordinal(element: etree._Element, qualified: str) -> int:
    """How many elements written with the same qualified name come before this one."""
    count = 0
    for other in element.getroottree().getroot().iter(etree.Element):
        if other is element:
            return count
        if (f"{other.prefix}:" if other.prefix else "") + etree.QName(other).localname == qualified:
            count += 1
    return count


def _span(source: bytes, name: bytes, ordinal: int) -> tuple[int, int] | None:
    """Where the ``ordinal``-th element named ``name`` starts and ends in ``source``, skipping
    comments, CDATA sections and processing instructions, which may hold look-alike markup."""
    name = re.escape(name)
    start_tag = re.compile(_MARKUP_TO_SKIP + rb"|<" + name + _ATTRIBUTES + rb"(/?)>", re.DOTALL)
    seen = 0
    for match in start_tag.finditer(source):
        if match.group(0).startswith((b"<!", b"<?")):
            continue
        if seen < ordinal:
            seen += 1
            continue
        if match.group(1):  # <name/>
            return match.start(), match.end()
        return _end_of(source, name, match.start(), match.end())
    return None


def _end_of(source: bytes, name: bytes, start: int, position: int) -> tuple[int, int] | None:
    tags = re.compile(
        _MARKUP_TO_SKIP + rb"|<" + name + _ATTRIBUTES + rb"(/?)>|(</" + name + rb"\s*>)",
        re.DOTALL,
    )
    depth = 1
    for match in tags.finditer(source, position):
        if match.group(2):
            depth -= 1
            if depth == 0:
                return start, match.end()
        elif not match.group(0).startswith((b"<!", b"<?")) and not match.group(1):
            depth += 1
    return None


def _same_meaning(probe: etree._Element, element: etree._Element) -> bool:
    if etree.tostring(probe, method="c14n", exclusive=True) != etree.tostring(
        element, method="c14n", exclusive=True
    ):
        return False
    # Exclusive C14N ignores prefixes used only in text (an XPath "p:x"): compare every binding.
    return all(
        a.nsmap == b.nsmap
        for a, b in zip(probe.iter(etree.Element), element.iter(etree.Element), strict=True)
    )

"""Writes an ``XmlModel`` into an lxml element, following the model's plan (see ``xml_binding``).

Large texts and verbatim elements never enter the tree: ``Slots`` splices them into the
serialised bytes, which is what keeps rendering a 20 MB packet cheap and a signature untouched.
"""

from __future__ import annotations

import secrets
from typing import BinaryIO

from lxml import etree

from lgsp_adapter.packets.xml_binding import (
    NS,
    PREFIX,
    FieldPlan,
    Kind,
    XmlModel,
    plan_of,
    qname,
)


class Slots:
    """Content kept out of the tree and spliced into the serialised output.

    Large texts (attachments) are spliced to save copying megabytes into libxml2 and back; verbatim
    elements (the signature) are spliced so that libxml2 cannot rewrite their namespace prefixes.
    Each slot is a marker text with a per-render random nonce, so no packet content can collide
    with it.
    """

    def __init__(self) -> None:
        self._marker = f"lgsp-slot-{secrets.token_hex(12)}-"
        self._slots: list[tuple[str, bool]] = []  # (content, replaces the whole element)

    def text(self, text: str) -> str:
        """Reserve a slot for an element's text; returns the marker to put in its place."""
        return self._add(text, whole_element=False)

    def element(self, xml: str) -> str:
        """Reserve a slot for a whole element; put the marker as the text of a placeholder."""
        return self._add(xml, whole_element=True)

    def _add(self, content: str, *, whole_element: bool) -> str:
        if not whole_element and any(c in content for c in "&<>\r"):
            # Escaped as lxml would: a raw CR would come back as LF (XML 1.0, 2.11).
            content = (
                content.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace("\r", "&#13;")
            )
        self._slots.append((content, whole_element))
        return f"{self._marker}{len(self._slots) - 1}-"

    def splice(self, serialised: bytes, out: BinaryIO, chunk_chars: int = 1 << 20) -> None:
        """Write ``serialised`` to ``out`` with every marker replaced by its content."""
        marker = self._marker.encode()
        position = 0
        start = serialised.find(marker)
        while start >= 0:
            number_end = serialised.index(b"-", start + len(marker))
            content, whole_element = self._slots[int(serialised[start + len(marker) : number_end])]
            end = number_end + 1
            if whole_element:  # drop the placeholder's own tags around the marker
                start = serialised.rindex(b"<", 0, start)
                end = serialised.index(b">", end) + 1
            out.write(serialised[position:start])
            for offset in range(0, len(content), chunk_chars):
                out.write(content[offset : offset + chunk_chars].encode())
            position = end
            start = serialised.find(marker, position)
        out.write(serialised[position:])


_PREFIXED = {PREFIX: NS}
_EXTENSION = qname("Extension")


def fill(model: XmlModel, element: etree._Element, slots: Slots) -> None:
    """Write ``model``'s attributes and children into ``element``."""
    plan = plan_of(type(model))
    for name, attr in plan.attrs:
        value = getattr(model, name)
        if value is not None:
            element.set(attr.name, str(value))
    for field in plan.fields:
        value = getattr(model, field.name)
        if value is None:
            continue
        kind = field.kind
        if kind is Kind.TEXT:
            _write_text(element, field, str(value), slots)
        elif kind is Kind.MODEL:
            _write_model(element, field, value, slots)
        elif kind is Kind.VERBATIM:
            placeholder = etree.SubElement(element, field.clark)
            placeholder.text = slots.element(value.xml)
        elif field.repeated:
            for item in value:
                _write_model(element, field, item, slots)
        elif value:
            wrapper = etree.SubElement(element, field.clark)
            for item in value:
                child = etree.SubElement(wrapper, field.item_clark)
                if kind is Kind.MODELS:
                    fill(item, child, slots)
                else:
                    child.text = str(item)
    for xml in model.extra:
        placeholder = etree.SubElement(element, _EXTENSION)
        placeholder.text = slots.element(xml)


def _write_model(parent: etree._Element, field: FieldPlan, model: XmlModel, slots: Slots) -> None:
    nsmap = _PREFIXED if field.tag.declare_prefix else None
    fill(model, etree.SubElement(parent, field.clark, nsmap=nsmap), slots)


def _write_text(parent: etree._Element, field: FieldPlan, text: str, slots: Slots) -> None:
    nsmap = _PREFIXED if field.tag.declare_prefix else None
    child = etree.SubElement(parent, field.clark, nsmap=nsmap)
    child.text = slots.text(text) if field.tag.stream else text

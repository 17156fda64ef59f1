"""An independent view of an XML document, for "nothing lost" checks.

It uses lxml directly, not our binding: every element's path of local names with its stripped
text and attributes, as a multiset. Two documents with the same facts carry the same data,
whatever their prefixes, indentation, or the order of fields inside one element.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from lxml import etree


def xml_facts(data: bytes) -> Counter[tuple[str, str]]:
    """The multiset of (path, text-and-attributes) facts of a document."""
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    facts: Counter[tuple[str, str]] = Counter()

    def walk(element: etree._Element, path: str) -> None:
        name = etree.QName(element).localname
        here = f"{path}/{name}"
        text = unicodedata.normalize("NFC", (element.text or "").strip())
        if name == "ContentTransferEncoded":
            text = "".join(text.split())  # base64 line breaks are not data
        attributes = ",".join(f"{k}={v}" for k, v in sorted(element.attrib.items()))
        facts[(here, f"{text}|{attributes}")] += 1
        for child in element:
            if isinstance(child.tag, str):
                walk(child, here)

    walk(root, "")
    return facts

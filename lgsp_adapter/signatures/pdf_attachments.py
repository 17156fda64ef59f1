"""Which attachments of an envelope are PDFs, read as the adapter's own reader reads them.

Only those whose content starts as a PDF does are decoded; the rest carry no PDF signature. An
attachment is read exactly once, from its one ``AttachmentName`` and its one
``ContentTransferEncoded`` (all the text of it: a comment may split it, and comments are not
signed). One with two of either, in whatever namespace, or with elements inside its content,
is ambiguous: the checker and the reader could each take a different one, so it is reported
malformed rather than read (found in review: a decoy placed first hid a revoked signer's PDF).
"""

from __future__ import annotations

import re
from base64 import b64decode
from dataclasses import dataclass

from lxml import etree

PDF_BASE64 = "JVBERi0"  # "%PDF-" in base64: a PDF is known without decoding the rest
# The same with line breaks anywhere in it (base64 may be wrapped at any width).
_PDF_BYTES = re.compile(rb"J\s*V\s*B\s*E\s*R\s*i\s*0")
_ATTACHMENTS = etree.XPath("/*/*[local-name()='AttachmentEncoded']/*[local-name()='Attachment']")


@dataclass(frozen=True, slots=True)
class Attached:
    """One PDF attachment: its name and bytes (``b""``: broken base64), or why it cannot be
    read unambiguously."""

    name: str
    pdf: bytes
    problem: str | None = None


def may_hold_pdf(payload: bytes) -> bool:
    """Whether base64 of a PDF might be in ``payload`` (a cheap test before any parse)."""
    return _PDF_BYTES.search(payload) is not None


def attachments(root: etree._Element) -> list[Attached]:
    """The envelope's PDF attachments, decoded, and the ambiguous ones (to report)."""
    found = _ATTACHMENTS(root)
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    result = []
    for attachment in found:
        if not isinstance(attachment, etree._Element):
            continue
        names, contents = (
            _named(attachment, "AttachmentName"),
            _named(attachment, "ContentTransferEncoded"),
        )
        # Every name it gives, when it gives several: the reader may take any of them.
        name = " | ".join(_text(n).strip() for n in names)[:200] or "(unnamed)"
        nested = any(next(c.iterchildren(etree.Element), None) is not None for c in contents)
        if len(names) > 1 or len(contents) > 1 or nested:
            if any(_starts_as_pdf(_text(c)) for c in contents):
                why = (
                    f"it has {len(names)} AttachmentName and {len(contents)} "
                    "ContentTransferEncoded elements, or elements inside its content: "
                    "which one is the attachment is ambiguous"
                )
                result.append(Attached(name, b"", why))
            continue
        content = _text(contents[0]) if contents else ""
        if _starts_as_pdf(content):
            result.append(Attached(name, _decoded(content)))
    return result  # others carry no PDF signature: not listed


def _named(parent: etree._Element, local: str) -> list[etree._Element]:
    return [
        child
        for child in parent
        if isinstance(child.tag, str) and etree.QName(child).localname == local
    ]


def _text(element: etree._Element) -> str:
    found = element.xpath(".//text()")
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    return "".join(str(part) for part in found)


def _starts_as_pdf(content: str) -> bool:
    return "".join(content.lstrip()[:64].split()).startswith(PDF_BASE64)


def _decoded(content: str) -> bytes:
    try:
        return b64decode("".join(content.split()), validate=True)
    except ValueError:
        return b""

"""Attachments of an edXML document: inline base64, often many megabytes.

An attachment keeps its base64 text exactly as the packet carried it (so a rendered packet is
the one received) and exposes the decoded size and SHA-256, computed once while reading. The
decoded bytes are produced on demand, chunk by chunk, so a 40 MB attachment never needs to be
held decoded, nor held twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from pydantic import Field, model_validator

from lgsp_adapter.packets.edxml_values import Text, Token
from lgsp_adapter.packets.xml_binding import Tag, XmlModel

# Multiple of 4 base64 characters, so every chunk decodes on its own.
CHUNK_CHARS = 4 * 256 * 1024
_WHITESPACE = str.maketrans("", "", " \t\r\n")


class AttachmentEncodingError(ValueError):
    """The base64 text of an attachment cannot be decoded."""


def _chunks(encoded: str) -> Iterator[bytes]:
    """Decode base64 text chunk by chunk; line breaks and blanks anywhere are allowed."""
    pending = ""
    for offset in range(0, len(encoded), CHUNK_CHARS):
        piece = encoded[offset : offset + CHUNK_CHARS]
        if not pending and len(piece) % 4 == 0:
            # Most senders write one unbroken line: decode it as is, no whitespace to strip.
            try:
                yield binascii.a2b_base64(piece, strict_mode=True)
                continue
            except binascii.Error:
                pass
        piece = pending + piece.translate(_WHITESPACE)
        usable = len(piece) - len(piece) % 4
        pending = piece[usable:]
        if usable:
            yield _decode(piece[:usable], offset)
    if pending:
        raise AttachmentEncodingError(
            f"base64 text ends with {len(pending)} stray characters; it is truncated"
        )


def _decode(piece: str, offset: int) -> bytes:
    try:
        return binascii.a2b_base64(piece, strict_mode=True)
    except binascii.Error as exc:
        raise AttachmentEncodingError(f"invalid base64 near character {offset}: {exc}") from exc


def digest(encoded: str) -> tuple[int, str]:
    """Decoded size and SHA-256 (hex) of base64 text, without holding the decoded bytes."""
    sha = hashlib.sha256()
    size = 0
    for chunk in _chunks(encoded):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


class Attachment(XmlModel):
    """One attachment: its metadata, its base64 text, and the decoded size and digest."""

    content_id: Annotated[Token, Tag("ContentId")]
    attachment_name: Annotated[Text | None, Tag("AttachmentName")] = None
    description: Annotated[Text | None, Tag("Description")] = None
    content_type: Annotated[Token | None, Tag("ContentType")] = None
    encoded: Annotated[
        str,
        Tag("ContentTransferEncoded", declare_prefix=True, stream=True),
        Field(exclude=True, repr=False),
    ]
    size_bytes: int = Field(description="Size of the decoded file.")
    sha256: str = Field(description="SHA-256 of the decoded file, in hex.")

    @model_validator(mode="before")
    @classmethod
    def _digest(cls, data: Any) -> Any:
        # Computed, never trusted from input: a digest must describe the bytes actually carried.
        if isinstance(data, dict) and "encoded" in data:
            size, sha = digest(data["encoded"])
            return {**data, "size_bytes": size, "sha256": sha}
        return data

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        content_id: str,
        name: str,
        content_type: str = "application/octet-stream",
        description: str | None = None,
    ) -> Attachment:
        """Make an attachment to send, base64-encoded as the standard carries it."""
        return cls.model_validate(
            {
                "content_id": content_id,
                "attachment_name": name,
                "description": description if description is not None else name,
                "content_type": content_type,
                "encoded": base64.b64encode(data).decode("ascii"),
            }
        )

    def iter_bytes(self) -> Iterator[bytes]:
        """The decoded file, a chunk (~768 KiB) at a time."""
        return _chunks(self.encoded)

    def read_bytes(self) -> bytes:
        """The whole decoded file; prefer ``iter_bytes`` or ``write_to`` for large ones."""
        return b"".join(self.iter_bytes())

    def write_to(self, out: BinaryIO) -> int:
        """Write the decoded file to ``out``; returns the number of bytes written."""
        written = 0
        for chunk in self.iter_bytes():
            out.write(chunk)
            written += len(chunk)
        return written

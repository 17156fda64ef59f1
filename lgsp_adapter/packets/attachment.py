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
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class AttachmentEncodingError(ValueError):
    """The base64 text of an attachment cannot be decoded."""


def _chunks(encoded: str) -> Iterator[bytes]:
    """Decode base64 text chunk by chunk; line breaks and blanks anywhere are allowed."""
    pending = ""
    decoded = 0  # base64 characters read so far, blanks not counted: where an error is
    for offset in range(0, len(encoded), CHUNK_CHARS):
        piece = encoded[offset : offset + CHUNK_CHARS]
        if not pending and len(piece) % 4 == 0:
            # Most senders write one unbroken line: decode it as is, no whitespace to strip.
            try:
                chunk = binascii.a2b_base64(piece, strict_mode=True)
            except (binascii.Error, ValueError):  # ValueError: a character beyond ASCII
                pass
            else:
                decoded += len(piece)
                yield chunk
                continue
        piece = pending + piece.translate(_WHITESPACE)
        usable = len(piece) - len(piece) % 4
        pending = piece[usable:]
        if usable:
            yield _decode(piece[:usable], decoded)
            decoded += usable
    if pending:
        raise AttachmentEncodingError(
            f"base64 text ends with {len(pending)} stray characters; it is truncated"
        )


def _decode(piece: str, start: int) -> bytes:
    try:
        return binascii.a2b_base64(piece, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        where, what = _first_fault(piece)
        raise AttachmentEncodingError(
            f"invalid base64 at character {start + where} (blanks not counted): {what or exc}"
        ) from exc


def _first_fault(piece: str) -> tuple[int, str | None]:
    """Where in ``piece`` (whole 4-character groups, blanks removed) decoding fails, and why
    when that can be said better than binascii does. Only on the error path."""
    for group in range(0, len(piece), 4):
        quantum = piece[group : group + 4]
        for place, character in enumerate(quantum):
            if character not in _ALPHABET:
                return group + place, f"{character!r} is not a base64 character"
        if "=" in quantum and group + 4 < len(piece):
            return group + quantum.index("="), "padding before the end of the text"
        try:
            binascii.a2b_base64(quantum, strict_mode=True)
        except binascii.Error as exc:
            return group, str(exc)
    return 0, None


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

"""Identifiers of the tax–transport exchange: tax codes (MST), citizen IDs and vehicle plates.

Records from two authorities are joined on these, so each is validated and written one way:
tax codes as ``NNNNNNNNNN`` or ``NNNNNNNNNN-NNN`` (a branch), checked by ``python-stdnum``;
plates upper case without separators (``36A12345``), keeping the province prefix.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.vn import mst

_CITIZEN_ID = re.compile(r"\d{12}")
_PLATE = re.compile(r"(\d{2})([A-Z]{1,2})(\d{4,6})")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def normalise_tax_code(value: str) -> str:
    """A tax code in its written form; raises ``ValueError`` saying what is wrong.

    Since 1 July 2025 individuals and household businesses use their 12-digit citizen ID as tax
    code; it has no check digit, so only its shape is checked.
    """
    compact = mst.compact(value)
    if _CITIZEN_ID.fullmatch(compact):
        return compact
    try:
        mst.validate(compact)
    except StdnumError as exc:
        raise ValueError(
            f"{value!r} is not a valid tax code (10 digits with a check digit, 13 for a branch "
            f"written NNNNNNNNNN-NNN, or a 12-digit citizen ID): {exc}"
        ) from exc
    return str(mst.format(compact))


def normalise_plate(value: str) -> str:
    """A plate as compared across systems: ``36A-123.45`` becomes ``36A12345``."""
    compact = _NOT_ALNUM.sub("", value.upper())
    if not _PLATE.fullmatch(compact):
        raise ValueError(
            f"{value!r} is not a Vietnamese vehicle plate (e.g. 36A-123.45, 29LD-123.45)"
        )
    return compact


def plate_province(plate: str) -> str:
    """The two-digit province prefix of a plate (36 is Thanh Hóa)."""
    return normalise_plate(plate)[:2]


TaxCode = Annotated[
    str,
    AfterValidator(normalise_tax_code),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d{10}|\d{10}-\d{3}|\d{12})$",
            "description": "Tax code (MST): 10 digits with a check digit, NNNNNNNNNN-NNN for a "
            "branch, or a 12-digit citizen ID for individuals and household businesses.",
            "examples": ["0100109106", "0100109106-001", "038085001234"],
        }
    ),
]

Plate = Annotated[
    str,
    AfterValidator(normalise_plate),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Vehicle plate; any punctuation is accepted and removed (36A-123.45 "
            "is stored as 36A12345). The first two digits are the province.",
            "examples": ["36A-123.45", "36B12345"],
        }
    ),
]

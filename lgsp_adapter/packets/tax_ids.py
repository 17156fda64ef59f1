"""Identifiers of the tax–transport exchange: tax codes (MST), citizen IDs and vehicle plates.

Records from two authorities are joined on these, so each is validated and stored one way. The
JSON packets are produced by software against our published schema, so input must already be in
one of the written forms the schema gives (same pattern in code and schema); only then are the
check digit (by ``python-stdnum``) and the canonical form applied.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.vn import mst

# ASCII digits only: \d would also take Arabic-Indic or full-width digits.
TAX_CODE_PATTERN = r"^([0-9]{10}(-[0-9]{3})?|[0-9]{12})$"
PLATE_PATTERN = r"^[1-9][0-9][A-Z]{1,2}[0-9]?-?([0-9]{4}|[0-9]{3}\.?[0-9]{2})$"
_TAX_CODE = re.compile(TAX_CODE_PATTERN)
_PLATE = re.compile(PLATE_PATTERN)


def normalise_tax_code(value: str) -> str:
    """A tax code in its written form; raises ``ValueError`` saying what is wrong.

    Since 1 July 2025 individuals and household businesses use their 12-digit citizen ID as tax
    code; it has no check digit, so only its shape is checked.
    """
    if not _TAX_CODE.match(value):
        raise ValueError(
            f"{value!r} is not written as a tax code: 10 digits, NNNNNNNNNN-NNN for a branch, "
            "or a 12-digit citizen ID"
        )
    if len(value) == 12:
        return value
    try:
        mst.validate(value)
    except StdnumError as exc:
        raise ValueError(f"{value!r} is not a valid tax code: {exc}") from exc
    return value


def normalise_plate(value: str) -> str:
    """A plate as compared across systems: ``36A-123.45`` is stored ``36A12345``."""
    if not _PLATE.match(value):
        raise ValueError(
            f"{value!r} is not a Vietnamese vehicle plate written like 36A-123.45, 36A12345 or "
            "29LD-123.45 (upper case, province 10–99)"
        )
    return value.replace("-", "").replace(".", "")


def plate_province(plate: str) -> str:
    """The two-digit province prefix of a plate (36 is Thanh Hóa)."""
    return normalise_plate(plate)[:2]


class PlateColour(StrEnum):
    """Plate colour: yellow plates are commercial transport vehicles."""

    WHITE = "white"
    YELLOW = "yellow"
    BLUE = "blue"
    RED = "red"


TaxCode = Annotated[
    str,
    AfterValidator(normalise_tax_code),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TAX_CODE_PATTERN,
            "description": "Tax code (MST): 10 digits whose last is a check digit, "
            "NNNNNNNNNN-NNN for a branch, or a 12-digit citizen ID for individuals and household "
            "businesses (since 1 July 2025). The check digit is verified by the adapter.",
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
            "pattern": PLATE_PATTERN,
            "description": "Vehicle plate, upper case, with or without its dash and dot "
            "(36A-123.45 or 36A12345); stored without them. The first two digits are the province.",
            "examples": ["36A-123.45", "36B12345", "29LD-123.45"],
        }
    ),
]

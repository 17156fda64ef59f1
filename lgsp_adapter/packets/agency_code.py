"""Agency identifiers (mã định danh điện tử, Decision 20/2020/QĐ-TTg): ``V1V2V3.Z1Z2.Y1Y2.MX1X2``.

The code is read right to left from the top of the hierarchy: ``MX1X2`` is the level-1 body (a
ministry ``G..``, a provincial People's Committee ``H..``, a provincial People's Council ``K..``),
``Y1Y2`` level 2, ``Z1Z2`` level 3 and ``V1V2V3`` level 4. A parent is found by zeroing the lowest
non-zero part, so the hierarchy needs no directory. We never hard-code which roots exist or what
they mean beyond the letter: the registry of endpoints decides what is routable.

We are strict about what we produce (``AgencyCode.parse``) and lenient about what we read
(``AgencyCode.read``): real traffic carries codes such as ``28.22.H17`` or ``vxp.saas.03``, which
are kept as text and reported, never silently "fixed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from lgsp_adapter.errors import ErrorCode, PermanentError

_SHAPE = re.compile(r"([0-9]{3})\.([0-9]{2})\.([0-9]{2})\.([A-Z][0-9]{2})")  # ASCII only

ROOT_KINDS = {
    "G": "ministry or government body",
    "H": "provincial People's Committee",
    "K": "provincial People's Council",
    "A": "Party body",
}


class Reading(NamedTuple):
    """What a lenient read found: the code when it has the standard shape, else why not."""

    code: AgencyCode | None
    problem: str | None


@dataclass(frozen=True, order=True, slots=True)
class AgencyCode:
    """A standard-shape agency code; ordering sorts a root before its descendants."""

    root: str  # MX1X2, e.g. "H56"
    level2: int  # Y1Y2
    level3: int  # Z1Z2
    level4: int  # V1V2V3

    @classmethod
    def parse(cls, text: str) -> AgencyCode:
        """Parse a code exactly as the standard writes it; anything else is an error."""
        match = _SHAPE.fullmatch(text)
        if match is None:
            raise PermanentError(
                ErrorCode.AGENCY_CODE_INVALID,
                f"{text!r} is not an agency code of the form 000.00.00.X00",
                details={"value": text},
            )
        v, z, y, root = match.groups()
        return cls(root=root, level2=int(y), level3=int(z), level4=int(v))

    @classmethod
    def read(cls, text: str) -> Reading:
        """Read a code from a packet: tolerate surrounding blanks and a lower-case root letter,
        and describe (not raise) anything that cannot be understood."""
        cleaned = text.strip()
        cleaned = cleaned[:-3] + cleaned[-3:].upper()
        match = _SHAPE.fullmatch(cleaned)
        if match is None:
            return Reading(None, f"{text!r} is not an agency code of the form 000.00.00.X00")
        code = cls.parse(cleaned)
        if cleaned != text:
            return Reading(code, f"{text!r} read as {code}")
        return Reading(code, None)

    def __str__(self) -> str:
        return f"{self.level4:03d}.{self.level3:02d}.{self.level2:02d}.{self.root}"

    @property
    def level(self) -> int:
        """1 for a root body, 2 for a unit directly under it, down to 4."""
        if self.level4:
            return 4
        if self.level3:
            return 3
        if self.level2:
            return 2
        return 1

    @property
    def root_kind(self) -> str:
        """What the root letter says about the top body; 'unknown' for letters we have not seen."""
        return ROOT_KINDS.get(self.root[0], "unknown")

    @property
    def parent(self) -> AgencyCode | None:
        """The body one level up, or None for a root."""
        if self.level4:
            return AgencyCode(self.root, self.level2, self.level3, 0)
        if self.level3:
            return AgencyCode(self.root, self.level2, 0, 0)
        if self.level2:
            return AgencyCode(self.root, 0, 0, 0)
        return None

    @property
    def top(self) -> AgencyCode:
        """The province or ministry this body belongs to (``000.00.00.MX1X2``)."""
        return AgencyCode(self.root, 0, 0, 0)

    def ancestors(self) -> list[AgencyCode]:
        """Parents from the nearest up to the root."""
        chain: list[AgencyCode] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    def is_ancestor_of(self, other: AgencyCode) -> bool:
        """True when ``other`` lies somewhere below this body."""
        return self in other.ancestors()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Models take and give the canonical text; validation is strict (we produce these)."""

        def from_text(value: str) -> AgencyCode:
            try:
                return cls.parse(value)
            except PermanentError as exc:
                raise PydanticCustomError("agency_code", exc.message) from exc

        from_str = core_schema.no_info_after_validator_function(from_text, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": "^[0-9]{3}\\.[0-9]{2}\\.[0-9]{2}\\.[A-Z][0-9]{2}$",
            "description": "Agency identifier (mã định danh), e.g. 000.00.00.H56",
            "examples": ["000.00.00.H56", "000.00.12.H56"],
        }

"""Maps pydantic models to XML and back, from ``Tag`` metadata on their fields.

Declaring the element names once, on the model, keeps reading and writing from drifting apart
and lets one generic walker handle every part of an edXML packet. Reading is lenient: unknown
elements are kept verbatim in the model's ``extra`` (and rendered back), and each deviation is
reported to a ``Diagnostics`` with the element's path and source line.

A field's annotation decides how it maps:
- ``str``-like (str, enums, ``EdxmlDate``): the element's text;
- an ``XmlModel``: a nested element;
- ``list[XmlModel]``: repeated elements, or the items of a wrapper when ``Tag(item=...)`` is set;
- ``list[str]``: the items of a wrapper (``Tag(item=...)`` is required);
- ``Verbatim``: an element kept as XML text, untouched (the XML-DSig ``Signature``);
- ``Attr``: an attribute of the element instead of a child.

This module declares the mapping and works out each model's plan; ``xml_reading`` and
``xml_writing`` walk it.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass
from enum import Enum, auto
from typing import Annotated, Any, Union

from lxml import etree
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lgsp_adapter.packets.edxml_values import Check
from lgsp_adapter.packets.safe_xml import parse_fragment

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
PREFIX = "edXML"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


def qname(tag: str) -> str:
    """The Clark name of an element of the QCVN namespace."""
    return f"{{{NS}}}{tag}"


@dataclass(frozen=True, slots=True)
class Tag:
    """Field metadata: the element the field maps to.

    ``aliases`` are other spellings accepted on reading (reported as warnings); ``item`` makes the
    element a wrapper of repeated ``item`` elements; ``check`` runs on the text while reading;
    ``declare_prefix`` writes the element as ``edXML:tag`` with its own ``xmlns:edXML``, as the
    standard's samples do; ``stream`` splices large text into the output instead of copying it
    through the tree; ``namespaces`` are other namespaces the element may come in.
    """

    tag: str
    aliases: tuple[str, ...] = ()
    item: str | None = None
    check: Check | None = None
    declare_prefix: bool = False
    stream: bool = False
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attr:
    """Field metadata: the field is an attribute of the model's element."""

    name: str


def one_element(xml: str) -> str:
    """Refuse XML text that is not exactly one well-formed element, as it appears where we
    write it (the QCVN namespace as default and as ``edXML:``): what is spliced into a packet
    must not be able to close or open elements around it."""
    try:
        probe = parse_fragment(f'<probe xmlns="{NS}" xmlns:{PREFIX}="{NS}">{xml}</probe>')
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not one well-formed element: {exc.msg}") from exc
    if len(probe) != 1 or (probe.text or "").strip() or (probe[0].tail or "").strip():
        raise ValueError("not exactly one element")
    return xml


class XmlModel(BaseModel):
    """A model bound to an element; ``extra`` holds unknown child elements as XML text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    extra: list[Annotated[str, AfterValidator(one_element)]] = Field(default_factory=list)


class Verbatim(BaseModel):
    """An element kept exactly as received, as XML text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    xml: Annotated[str, AfterValidator(one_element)]


class Kind(Enum):
    TEXT = auto()
    MODEL = auto()
    MODELS = auto()
    TEXTS = auto()
    VERBATIM = auto()


@dataclass(frozen=True, slots=True)
class FieldPlan:
    name: str
    tag: Tag
    kind: Kind
    model: type[XmlModel] | None
    required: bool
    clark: str  # the element's name with its namespace, as lxml wants it
    item_clark: str  # likewise for the items of a wrapper
    repeated: bool  # repeated elements directly in the parent (not items of a wrapper)


@dataclass(frozen=True, slots=True)
class Plan:
    fields: tuple[FieldPlan, ...]
    by_tag: dict[str, FieldPlan]
    attrs: tuple[tuple[str, Attr], ...]


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _classify(annotation: Any) -> tuple[Kind, type[XmlModel] | None]:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        item = _strip_optional(item)
        if isinstance(item, type) and issubclass(item, XmlModel):
            return Kind.MODELS, item
        return Kind.TEXTS, None
    if isinstance(annotation, type) and issubclass(annotation, XmlModel):
        return Kind.MODEL, annotation
    if annotation is Verbatim:
        return Kind.VERBATIM, None
    return Kind.TEXT, None


@functools.cache
def plan_of(cls: type[XmlModel]) -> Plan:
    """The field-to-element plan of a model class, worked out once."""
    fields: list[FieldPlan] = []
    attrs: list[tuple[str, Attr]] = []
    for name, info in cls.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, Attr):
                attrs.append((name, meta))
            elif isinstance(meta, Tag):
                kind, model = _classify(info.annotation)
                if kind is Kind.TEXTS and meta.item is None:
                    raise TypeError(f"{cls.__name__}.{name}: a list of text needs Tag(item=...)")
                fields.append(
                    FieldPlan(
                        name,
                        meta,
                        kind,
                        model,
                        info.is_required(),
                        qname(meta.tag),
                        qname(meta.item or meta.tag),
                        kind is Kind.MODELS and meta.item is None,
                    )
                )
    by_tag = {tag: f for f in fields for tag in (f.tag.tag, *f.tag.aliases)}
    return Plan(tuple(fields), by_tag, tuple(attrs))


def local_name(element: etree._Element) -> tuple[str | None, str]:
    """Split an element's Clark name into namespace and local name."""
    tag: str = element.tag  # type: ignore[assignment]  # an element's tag is text
    # A plain split: etree.QName costs a third of reading a packet.
    if tag[0] == "{":
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag

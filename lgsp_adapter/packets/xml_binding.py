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
"""

from __future__ import annotations

import copy
import functools
import secrets
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, auto
from typing import Annotated, Any, BinaryIO, Union

from lxml import etree
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lgsp_adapter.packets.diagnostics import Diagnostics, WarningCode
from lgsp_adapter.packets.edxml_values import Check, to_nfc
from lgsp_adapter.packets.safe_xml import parse_fragment
from lgsp_adapter.packets.verbatim import canonical, cut_from_source

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


class _Kind(Enum):
    TEXT = auto()
    MODEL = auto()
    MODELS = auto()
    TEXTS = auto()
    VERBATIM = auto()


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    tag: Tag
    kind: _Kind
    model: type[XmlModel] | None
    required: bool
    clark: str  # the element's name with its namespace, as lxml wants it
    item_clark: str  # likewise for the items of a wrapper
    repeated: bool  # repeated elements directly in the parent (not items of a wrapper)


@dataclass(frozen=True, slots=True)
class _Plan:
    fields: tuple[_Field, ...]
    by_tag: dict[str, _Field]
    attrs: tuple[tuple[str, Attr], ...]


_NO_ATTRIBUTES = _Plan((), {}, ())
# The namespaces in scope where a verbatim element (the signature, in the header) is written.
_RENDER_CONTEXT: dict[str | None, str] = {None: NS, PREFIX: NS}


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _classify(annotation: Any) -> tuple[_Kind, type[XmlModel] | None]:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        item = _strip_optional(item)
        if isinstance(item, type) and issubclass(item, XmlModel):
            return _Kind.MODELS, item
        return _Kind.TEXTS, None
    if isinstance(annotation, type) and issubclass(annotation, XmlModel):
        return _Kind.MODEL, annotation
    if annotation is Verbatim:
        return _Kind.VERBATIM, None
    return _Kind.TEXT, None


@functools.cache
def plan_of(cls: type[XmlModel]) -> _Plan:
    """The field-to-element plan of a model class, worked out once."""
    fields: list[_Field] = []
    attrs: list[tuple[str, Attr]] = []
    for name, info in cls.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, Attr):
                attrs.append((name, meta))
            elif isinstance(meta, Tag):
                kind, model = _classify(info.annotation)
                if kind is _Kind.TEXTS and meta.item is None:
                    raise TypeError(f"{cls.__name__}.{name}: a list of text needs Tag(item=...)")
                fields.append(
                    _Field(
                        name,
                        meta,
                        kind,
                        model,
                        info.is_required(),
                        qname(meta.tag),
                        qname(meta.item or meta.tag),
                        kind is _Kind.MODELS and meta.item is None,
                    )
                )
    by_tag = {tag: f for f in fields for tag in (f.tag.tag, *f.tag.aliases)}
    return _Plan(tuple(fields), by_tag, tuple(attrs))


# --- reading -------------------------------------------------------------------------------


def local_name(element: etree._Element) -> tuple[str | None, str]:
    """Split an element's Clark name into namespace and local name."""
    tag: str = element.tag  # type: ignore[assignment]  # an element's tag is text
    # A plain split: etree.QName costs a third of reading a packet.
    if tag[0] == "{":
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


@dataclass(slots=True)
class Reader:
    """Reads one packet's elements into plain data for ``model_validate``, noting deviations.

    ``source`` is the packet as received (UTF-8), from which verbatim elements are cut exactly.
    """

    diagnostics: Diagnostics
    source: bytes | None = None

    def read(self, cls: type[XmlModel], element: etree._Element, path: str) -> dict[str, Any]:
        """Read ``element`` as ``cls``; raises ``MissingElement`` for an absent required field."""
        plan = plan_of(cls)
        data: dict[str, Any] = {}
        extra: list[str] = []
        self._read_attributes(plan, element, data, path)
        self._note_stray_text(element.text, element, path)
        seen: dict[str, int] = {}
        for child in element.iterchildren(etree.Element):  # not comments nor PIs
            tail = child.tail
            if tail and not tail.isspace():
                self._note_stray_text(tail, element, path)
            tag: str = child.tag  # type: ignore[assignment]  # an element's tag is text
            namespace, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
            field = plan.by_tag.get(name)
            child_path = f"{path}/{name}"
            if field is None or (
                namespace != NS
                and not self._namespace_ok(field, namespace or None, child, child_path)
            ):
                self._keep_unknown(child, extra, child_path, WarningCode.UNKNOWN_ELEMENT)
                continue
            if field.repeated:  # numbered among the elements read as this field only
                seen[name] = count = seen.get(name, 0) + 1
                child_path = f"{child_path}[{count}]"
            if name != field.tag.tag:
                self.diagnostics.warn(
                    WarningCode.SPELLING,
                    f"<{name}> read as the standard <{field.tag.tag}>",
                    child_path,
                    child.sourceline,
                )
            self._read_field(field, child, child_path, data, extra)
        for f in plan.fields:
            if f.required and f.name not in data:
                raise MissingElement(f"{path}/{f.tag.tag}", element.sourceline)
        if extra:
            data["extra"] = extra
        return data

    def _read_field(
        self,
        field: _Field,
        child: etree._Element,
        path: str,
        data: dict[str, Any],
        extra: list[str],
    ) -> None:
        kind = field.kind
        if field.repeated:
            assert field.model is not None  # noqa: S101  # _classify sets it for MODELS
            data.setdefault(field.name, []).append(self.read(field.model, child, path))
            return
        if field.name in data:
            self._keep_unknown(child, extra, path, WarningCode.DUPLICATE_ELEMENT)
            return
        if kind is _Kind.TEXT:
            if len(child):
                self._keep_unknown(child, extra, path, WarningCode.UNEXPECTED_STRUCTURE)
                return
            data[field.name] = self._text(field.tag, child, path)
        elif kind is _Kind.MODEL:
            assert field.model is not None  # noqa: S101  # _classify sets it for MODEL
            data[field.name] = self.read(field.model, child, path)
        elif kind is _Kind.VERBATIM:
            cut = cut_from_source(self.source, child, _RENDER_CONTEXT) if self.source else None
            data[field.name] = {"xml": cut or canonical(child)}
        else:
            data[field.name] = self._read_items(field, child, path, extra)

    def _read_items(
        self, field: _Field, wrapper: etree._Element, path: str, extra: list[str]
    ) -> list[Any]:
        items: list[Any] = []
        strays: etree._Element | None = None  # made only when needed: copies cost
        self._read_attributes(_NO_ATTRIBUTES, wrapper, {}, path)
        self._note_stray_text(wrapper.text, wrapper, path)
        seen: dict[str, int] = {}
        for item in _elements(wrapper):
            self._note_stray_text(item.tail, wrapper, path)
            _, name = local_name(item)
            seen[name] = index = seen.get(name, 0) + 1
            item_path = f"{path}/{name}[{index}]"
            if name != field.tag.item:
                self.diagnostics.warn(
                    WarningCode.UNKNOWN_ELEMENT,
                    f"unexpected <{name}> inside <{field.tag.tag}>, kept as it is",
                    item_path,
                    item.sourceline,
                )
                if strays is None:
                    strays = etree.Element(wrapper.tag)
                strays.append(copy.deepcopy(item))
            elif field.kind is _Kind.MODELS:
                assert field.model is not None  # noqa: S101  # _classify sets it for MODELS
                items.append(self.read(field.model, item, item_path))
            else:
                items.append(self._text(field.tag, item, item_path))
        if strays is not None:
            extra.append(canonical(strays))
        return items

    def _text(self, tag: Tag, element: etree._Element, path: str) -> str:
        text = element.text or ""
        if len(element.attrib):
            self._read_attributes(_NO_ATTRIBUTES, element, {}, path)
        if tag.stream:
            return text
        normalised = to_nfc(text)
        if normalised is not text and normalised != text:
            self.diagnostics.warn(
                WarningCode.TEXT_NOT_NFC,
                "text is not in Unicode NFC (composed) form; stored composed",
                path,
                element.sourceline,
            )
        if tag.check is not None:
            for code, message in tag.check(text):
                self.diagnostics.warn(code, message, path, element.sourceline)
        return normalised

    def _read_attributes(
        self, plan: _Plan, element: etree._Element, data: dict[str, Any], path: str
    ) -> None:
        for name, attr in plan.attrs:
            # Absent stays absent (None), so a default never invents what the sender did not say.
            data[name] = element.get(attr.name)
        if len(element.attrib) == len(plan.attrs):  # the common case: nothing unknown
            return
        known = {attr.name for _, attr in plan.attrs}
        # Names only: lxml's items() looks each value up by name, quadratic in their number.
        unknown = [name for name in element.keys() if name not in known]  # noqa: SIM118  # iterating an element gives its children
        if unknown:
            shown = ", ".join(f"{k}={(element.get(k) or '')[:40]!r}" for k in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            self.diagnostics.warn(
                WarningCode.IGNORED_ATTRIBUTE,
                f"attributes not part of edXML, ignored: {shown}{more}",
                path,
                element.sourceline,
            )

    def _namespace_ok(
        self, field: _Field, namespace: str | None, child: etree._Element, path: str
    ) -> bool:
        if namespace == NS or namespace in field.tag.namespaces:
            return True
        if namespace is None:
            self.diagnostics.warn(
                WarningCode.FOREIGN_NAMESPACE,
                f"<{field.tag.tag}> has no namespace; read as an edXML element",
                path,
                child.sourceline,
            )
            return True
        return False

    def _note_stray_text(self, text: str | None, element: etree._Element, path: str) -> None:
        if text and not text.isspace():
            self.diagnostics.warn(
                WarningCode.STRAY_TEXT,
                f"text {text.strip()[:40]!r} between elements is not part of edXML; ignored",
                path,
                element.sourceline,
            )

    def _keep_unknown(
        self, child: etree._Element, extra: list[str], path: str, code: WarningCode
    ) -> None:
        what = {
            WarningCode.UNKNOWN_ELEMENT: "element not in QCVN 102:2016",
            WarningCode.DUPLICATE_ELEMENT: "element repeated where one is expected",
            WarningCode.UNEXPECTED_STRUCTURE: "element has children where text is expected",
        }[code]
        self.diagnostics.warn(code, f"{what}; kept as it is", path, child.sourceline)
        extra.append(canonical(child))


class MissingElement(Exception):
    """A required element is absent; the codec turns this into an ``InvalidPacket``."""

    def __init__(self, path: str, line: int | None) -> None:
        super().__init__(path)
        self.path = path
        self.line = line


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    return (child for child in parent if isinstance(child.tag, str))


# --- writing -------------------------------------------------------------------------------


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
        if kind is _Kind.TEXT:
            _write_text(element, field, str(value), slots)
        elif kind is _Kind.MODEL:
            _write_model(element, field, value, slots)
        elif kind is _Kind.VERBATIM:
            placeholder = etree.SubElement(element, field.clark)
            placeholder.text = slots.element(value.xml)
        elif field.repeated:
            for item in value:
                _write_model(element, field, item, slots)
        elif value:
            wrapper = etree.SubElement(element, field.clark)
            for item in value:
                child = etree.SubElement(wrapper, field.item_clark)
                if kind is _Kind.MODELS:
                    fill(item, child, slots)
                else:
                    child.text = str(item)
    for xml in model.extra:
        placeholder = etree.SubElement(element, _EXTENSION)
        placeholder.text = slots.element(xml)


def _write_model(parent: etree._Element, field: _Field, model: XmlModel, slots: Slots) -> None:
    nsmap = _PREFIXED if field.tag.declare_prefix else None
    fill(model, etree.SubElement(parent, field.clark, nsmap=nsmap), slots)


def _write_text(parent: etree._Element, field: _Field, text: str, slots: Slots) -> None:
    nsmap = _PREFIXED if field.tag.declare_prefix else None
    child = etree.SubElement(parent, field.clark, nsmap=nsmap)
    child.text = slots.text(text) if field.tag.stream else text

"""Reads an lxml element into an ``XmlModel``, following the model's plan (see ``xml_binding``).

Lenient by design: agency systems send what they send, so unknown and repeated elements are kept
verbatim and reported to ``Diagnostics``, and only a missing required element stops the read.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from lgsp_adapter.packets.diagnostics import Diagnostics, WarningCode
from lgsp_adapter.packets.edxml_values import to_nfc
from lgsp_adapter.packets.verbatim import canonical, cut_from_source
from lgsp_adapter.packets.xml_binding import (
    NS,
    PREFIX,
    FieldPlan,
    Kind,
    Plan,
    Tag,
    XmlModel,
    local_name,
    plan_of,
)

_NO_ATTRIBUTES = Plan((), {}, ())
# The namespaces in scope where a verbatim element (the signature, in the header) is written.
_RENDER_CONTEXT: dict[str | None, str] = {None: NS, PREFIX: NS}


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
        field: FieldPlan,
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
        if kind is Kind.TEXT:
            if len(child):
                self._keep_unknown(child, extra, path, WarningCode.UNEXPECTED_STRUCTURE)
                return
            data[field.name] = self._text(field.tag, child, path)
        elif kind is Kind.MODEL:
            assert field.model is not None  # noqa: S101  # _classify sets it for MODEL
            data[field.name] = self.read(field.model, child, path)
        elif kind is Kind.VERBATIM:
            cut = cut_from_source(self.source, child, _RENDER_CONTEXT) if self.source else None
            data[field.name] = {"xml": cut or canonical(child)}
        else:
            data[field.name] = self._read_items(field, child, path, extra)

    def _read_items(
        self, field: FieldPlan, wrapper: etree._Element, path: str, extra: list[str]
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
            elif field.kind is Kind.MODELS:
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
        self, plan: Plan, element: etree._Element, data: dict[str, Any], path: str
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
        self, field: FieldPlan, namespace: str | None, child: etree._Element, path: str
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

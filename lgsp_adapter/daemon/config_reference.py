"""docs/configuration.md, generated from the settings model (``make config-reference``), so the
reference cannot drift from what the daemon validates: every key, its type, default,
environment variable and meaning. A test checks the file is current.
"""

from __future__ import annotations

import json
import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lgsp_adapter.daemon.config import BusSettings, DeliverySettings, Settings
from lgsp_adapter.registry.agencies import Client, Contact, Endpoint, KnownAgency, ServedAgency
from lgsp_adapter.registry.routes import BusSenders, Route

_HEADER = """# Configuration reference

Generated from the settings model by `make config-reference`: do not edit by hand. One TOML file
(`lgsp-adapter serve --config FILE`; [config/lgsp-adapter.toml](../config/lgsp-adapter.toml) is
a commented example), every key optional; any key of a section can be set by the environment
variable shown, which wins over the file. Settings are validated before anything starts: a wrong
key or value stops the command with `config.invalid` naming it.
"""

# The tables of records, and the models their rows are.
_LISTS: dict[str, type[BaseModel]] = {
    "agencies": ServedAgency,
    "known_agencies": KnownAgency,
    "clients": Client,
    "routes": Route,
    "bus_senders": BusSenders,
}
# Meanings of the keys whose model says none (the rest come from the model's descriptions).
_SAID = {
    (BusSettings, "exchange"): "The topic exchange packets are published to (docs/bus.md).",
    (DeliverySettings, "quick_retry_delay_s"): "Seconds between the immediate retries.",
    (ServedAgency, "code"): "Its agency code (mã định danh), e.g. 000.21.00.H56.",
    (ServedAgency, "name"): "Its name, as senders see it in the agency list.",
    (ServedAgency, "endpoint"): "Where and how its packets are delivered (below).",
    (ServedAgency, "contact"): "Who to call when its system misbehaves (below).",
    (Endpoint, "mode"): "push: the daemon POSTs each packet; pull: the system fetches them; "
    "axis: sent to a national axis, as an agency system would (docs/national-axis.md).",
    (Endpoint, "auth"): "Credentials towards the endpoint: a table with kind = none, bearer "
    "(token), basic (username, password), hmac (key_id, secret) or mtls (certificate, "
    "private_key); docs/registry.md.",
    (Contact, "name"): "A person's name.",
    (Contact, "email"): "Their e-mail.",
    (Contact, "phone"): "Their phone.",
    (KnownAgency, "code"): "Its agency code.",
    (KnownAgency, "name"): "Its name.",
    (Client, "name"): "Who calls, as the audit log names it.",
    (Client, "role"): "agency (submit for its agencies), integrator (the registry), auditor "
    "(the audit log), operator (dead letters).",
    (Client, "agencies"): "For an agency system: the agencies it may send as.",
    (Route, "endpoint"): "Where and how packets for every code of the range are delivered, as "
    "an agency's endpoint (push or axis).",
    (Route, "enabled"): "Disabled: packets to its codes are refused, as to a disabled agency.",
}
_TYPES = {"Path": "file path", "AgencyCode": "agency code", "AnyHttpUrl": "URL"}
_NESTED: dict[str, type[BaseModel]] = {
    "agencies.endpoint": Endpoint,
    "agencies.contact": Contact,
    "routes.endpoint": Endpoint,
}


def _type(annotation: Any) -> str:
    """A type as an operator reads it."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type(typing.get_args(annotation)[0])
    if origin in (types.UnionType, typing.Union):
        parts = [_type(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))  # five kinds of auth: one "table"
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return " or ".join(json.dumps(m.value) for m in annotation)
        if issubclass(annotation, SecretStr):
            return "secret text"
        if issubclass(annotation, BaseModel):
            return "table"
        names = {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}
        return names.get(annotation.__name__, _TYPES.get(annotation.__name__, annotation.__name__))
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        made = field.default_factory()  # type: ignore[call-arg]
        return "" if made in ([], {}) else f"`{json.dumps(made, default=str)}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return ""
    value = field.default.value if isinstance(field.default, Enum) else field.default
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value, default=str, ensure_ascii=False)}`"


def _limits(field: FieldInfo) -> str:
    said = []
    for rule in field.metadata:
        for name, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(rule, name, None) is not None:
                said.append(f"{word} {getattr(rule, name)}")
    return f" ({', '.join(said)})" if said else ""


def _table(model: type[BaseModel], env_prefix: str | None) -> list[str]:
    head = (
        "| key | type | default | environment | meaning |"
        if env_prefix
        else ("| key | type | default | meaning |")
    )
    rows = [head, "|---" * (5 if env_prefix else 4) + "|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or _SAID.get((model, name), "")).replace("|", "\\|")
        cells = [f"`{name}`", _type(field.annotation) + _limits(field), _default(field)]
        if env_prefix:
            cells.append(f"`{env_prefix}{name.upper()}`")
        rows.append("| " + " | ".join([*cells, meaning]) + " |")
    return rows


def reference() -> str:
    """The whole reference, as Markdown."""
    lines = [_HEADER]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if section in _LISTS or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        lines += [f"## [{section}]", "", (model.__doc__ or "").strip().split("\n")[0], ""]
        lines += [*_table(model, f"LGSP_{section.upper()}__"), ""]
    for section, model in _LISTS.items():
        about = Settings.model_fields[section].description or ""
        lines += [f"## [[{section}]]", "", f"{about} One table per record.", ""]
        lines += [*_table(model, None), ""]
        for nested, inner in _NESTED.items():
            if nested.startswith(f"{section}."):
                doc = (inner.__doc__ or "").strip().split("\n")[0]
                lines += [f"### [{section}.{nested.split('.', 1)[1]}]", "", doc, ""]
                lines += [*_table(inner, None), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # make config-reference
    print(reference(), end="")  # noqa: T201

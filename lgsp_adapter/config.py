"""The daemon's settings: one TOML file, overridable by ``LGSP_…`` environment variables.

Settings are validated before anything connects, so a typo stops the process at start with the
field named, not an hour later. Nested keys map to environment variables with a double
underscore: ``[limits] max_bytes`` is ``LGSP_LIMITS__MAX_BYTES``. Every key is documented in
``config/lgsp-adapter.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.safe_xml import XmlLimits


class Settings(BaseSettings):
    """Everything an operator can set."""

    model_config = SettingsConfigDict(
        env_prefix="LGSP_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    limits: XmlLimits = XmlLimits()


def load_settings(path: Path | None = None) -> Settings:
    """Settings from ``path`` (when given) with environment overrides; ``FatalError`` if invalid."""
    if path is not None and not path.is_file():
        raise FatalError(ErrorCode.CONFIG_INVALID, f"config file {path} does not exist")

    class FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The environment wins over the file: operators override one key without editing it.
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        return FromFile()
    except tomllib.TOMLDecodeError as exc:
        raise FatalError(
            ErrorCode.CONFIG_INVALID, f"config file {path} is not valid TOML: {exc}"
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise FatalError(
            ErrorCode.CONFIG_INVALID, f"invalid settings ({problems})", details=str(path)
        ) from exc

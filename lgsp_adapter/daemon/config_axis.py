"""The ``[axis]`` section: the national axis' protocol, served at ``/axis`` and spoken to
upstream axes (``docs/national-axis.md``). Its own module, as the largest section of the
settings that only one part of the daemon reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AxisSettings(_Section):
    """The national axis' protocol: served at ``/axis`` to agency software that speaks it, and
    spoken to upstream axes (agencies whose endpoint mode is ``axis``)."""

    secret_key: Path | None = Field(
        None,
        description="Key file that seals the axis systems' secrets in the store; made at "
        "first start, readable by its owner only. Default: axis-secrets.key beside the store.",
    )
    timestamp_window_s: float | None = Field(
        None,
        gt=0,
        le=7 * 86_400,
        description="Refuse a request whose timestamp is further than this from now (a "
        "replay). Off by default: the vendors' SDK fixes the timestamp when its client is "
        "made, so a long-running system sends old ones.",
    )

    max_file_mb: int = Field(
        40,
        ge=1,
        le=1024,
        description="Largest sendEdoc file, in MB (and never above [limits] max_bytes): "
        "agency software reads a document whole into memory, and an axis larger than what "
        "its receivers take only moves the failure to them.",
    )

    poll_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often each upstream axis (agencies in mode axis) is asked what it "
        "holds for us.",
    )
    sync_agencies_s: float = Field(
        3600.0,
        gt=0,
        le=7 * 86_400,
        description="How often each upstream axis' agency list (getSynchronizeUnit) is merged "
        "into ours.",
    )

    hold_s: float = Field(
        86_400.0,
        gt=0,
        le=30 * 86_400,
        description="How long a packet an upstream axis holds for us waits there when the "
        "registry here refuses it (its sender or recipient disabled, not registered), tried "
        "again meanwhile, before the axis is told fail and its sender hears.",
    )

    def key_path(self, store: Path) -> Path:
        """Where the secret box's key lives."""
        return self.secret_key or store.with_name("axis-secrets.key")

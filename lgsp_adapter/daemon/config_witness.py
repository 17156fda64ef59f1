"""The witnesses' settings: who cosigns this log's checkpoints (``[[audit.witnesses]]``), and
whose logs this daemon cosigns as a witness (``[witness]``), as in ``docs/inter-level.md``.

A province's daemon typically has its peers and the ministry or national hub above it as
witnesses, and witnesses theirs in turn: no operator can then rewrite its own log unseen.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from lgsp_adapter.audit.cosignature import WitnessVerifier
from lgsp_adapter.audit.signing import NoteError, Verifier


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LogWitness(_Section):
    """A daemon that cosigns this log's checkpoints."""

    url: AnyHttpUrl = Field(
        description="Its witness prefix, e.g. `https://lgsp.bo-y-te.gov.vn/witness`: "
        "add-checkpoint and <origin hash>/checkpoint are below it."
    )
    verifier_key: str = Field(
        description="Its cosignature key, `name+id+base64` (`lgsp-adapter witness public-key` "
        "on its machine prints it)."
    )

    @field_validator("verifier_key")
    @classmethod
    def _key(cls, text: str) -> str:
        try:
            WitnessVerifier.parse(text)
        except NoteError as exc:
            raise ValueError(str(exc)) from exc
        return text

    @property
    def verifier(self) -> WitnessVerifier:
        """Its parsed key."""
        return WitnessVerifier.parse(self.verifier_key)


class WitnessedLog(_Section):
    """A log this daemon cosigns, named by its verifier keys (their name is its origin)."""

    verifier_keys: list[str] = Field(
        min_length=1,
        max_length=20,
        description="The log's verifier keys over its life (`lgsp-adapter audit public-key` "
        "on its machine), oldest first: a rotated log keeps its place.",
    )

    @field_validator("verifier_keys")
    @classmethod
    def _keys(cls, texts: list[str]) -> list[str]:
        try:
            names = {Verifier.parse(text).name for text in texts}
        except NoteError as exc:
            raise ValueError(str(exc)) from exc
        if len(names) != 1:
            raise ValueError("a log's keys all carry its one origin as their name")
        return texts

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """Its parsed keys."""
        return tuple(Verifier.parse(text) for text in self.verifier_keys)


class WitnessSettings(_Section):
    """This daemon as a witness of other daemons' logs, at `/witness`."""

    logs: list[WitnessedLog] = Field(
        [],
        max_length=500,
        description="The logs this daemon cosigns; none: it is no witness (`/witness` "
        "answers 404 to every log).",
    )
    signing_key: Path | None = Field(
        None,
        description="Ed25519 key (PEM) it cosigns with, never the log's own; made at first "
        "start. Default: witness-signing.key beside the store.",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\s+]+$",
        description="Its name in cosignatures. Default: lgsp-adapter-witness/ and 16 hex digits "
        "of its key's fingerprint.",
    )

    def key_path(self, store: Path) -> Path:
        """Where the cosigning key lives."""
        return self.signing_key or store.with_name("witness-signing.key")

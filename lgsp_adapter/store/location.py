"""Where a store is: a SQLite file, or a PostgreSQL URL (told apart by the scheme)."""

from __future__ import annotations

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(POSTGRES_SCHEMES)

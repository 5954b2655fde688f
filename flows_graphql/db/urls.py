"""Database URLs: what users write (libpq style) and what the drivers want."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def async_url(url: str) -> URL:
    """`postgresql://…` (or `postgres://…`) as a SQLAlchemy asyncpg URL."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg")


def asyncpg_dsn(url: str) -> str:
    """A DSN that asyncpg.connect() accepts (the plain libpq form)."""
    return async_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

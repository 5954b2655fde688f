"""Declarative base and the column patterns every table shares.

The database is the system of record, so everything the domain promises that
PostgreSQL can enforce is declared here (and in the migrations, which a test keeps
identical to these models): CHECKs, enums, composite tenant keys, triggers.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    DDL,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    MetaData,
    Table,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ENUM, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


def table_of(model: type[Base]) -> Table:
    """A model's Table, typed as such (for Core statements)."""
    return cast(Table, model.__table__)


def pg_enum(py_enum: type[enum.Enum], name: str) -> ENUM:
    """A PostgreSQL enum storing the Python enum's *values* (lower-case words)."""
    return ENUM(
        py_enum,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        create_type=True,
    )


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def esco_fk(**kw: Any) -> Mapped[uuid.UUID]:
    """The tenant column: every tenant-owned row names its ESCO."""
    return mapped_column(UUID(as_uuid=True), ForeignKey("escos.id"), nullable=False, **kw)


def tenant_fk(
    columns: list[str], target: str, target_columns: list[str] | None = None, **kw: Any
) -> ForeignKeyConstraint:
    """A foreign key between tenant-owned tables: `(x_id, esco_id)` → `(id, esco_id)`.

    Carrying `esco_id` in the key makes it impossible for the database to link one
    ESCO's row to another ESCO's, whatever the API does.
    """
    refs = target_columns or ["id", "esco_id"]
    return ForeignKeyConstraint([*columns, "esco_id"], [f"{target}.{c}" for c in refs], **kw)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class CreatedAt:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


# Shared database objects. The migrations create the same ones from the same text.
SUPPORT_SQL = [
    # btree_gist is not available in every PostgreSQL (the embedded one lacks it), so
    # equality on the account in the occupancy exclusion constraint uses a uuid range
    # type, which GiST's built-in range_ops handles: [a, a] && [b, b] exactly when a = b.
    "CREATE TYPE uuid_range AS RANGE (subtype = uuid)",
    """CREATE FUNCTION flows_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$""",
    """CREATE FUNCTION flows_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$""",
]
# Row-level security: the second wall between tenants. The API runs as role
# `flows_api` (not the owner, so it cannot bypass policies) and sets, per transaction,
# `flows.esco_ids` to the viewer's ESCO ids, comma-separated, or `*` for all.
API_ROLE = "flows_api"
RLS_SQL = [
    """CREATE FUNCTION flows_esco_visible(esco uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE current_setting('flows.esco_ids', true)
        WHEN '*' THEN true
        ELSE esco = ANY (string_to_array(
                 nullif(current_setting('flows.esco_ids', true), ''), ',')::uuid[])
    END
$$""",
    f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{API_ROLE}') THEN
        CREATE ROLE {API_ROLE} NOLOGIN;
    END IF;
END $$""",
    f"GRANT {API_ROLE} TO CURRENT_USER",
    f"GRANT USAGE ON SCHEMA public TO {API_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {API_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {API_ROLE}",
]
# Tables without a tenant: global reference data.
GLOBAL_TABLES = frozenset({"regions", "benchmark_tariffs", "contract_terms"})


def rls_sql(table: str, column: str = "esco_id") -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (flows_esco_visible({column})) WITH CHECK (flows_esco_visible({column}))",
    ]


def grant_sql(table: str, append_only: bool) -> list[str]:
    rights = "SELECT, INSERT" if append_only else "SELECT, INSERT, UPDATE, DELETE"
    return [f"GRANT {rights} ON {table} TO {API_ROLE}"]


SUPPORT_DROP_SQL = [
    "DROP FUNCTION IF EXISTS flows_esco_visible(uuid)",
    "DROP FUNCTION IF EXISTS flows_append_only()",
    "DROP FUNCTION IF EXISTS flows_touch_updated_at()",
    "DROP TYPE IF EXISTS uuid_range",
]


def touch_trigger_sql(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_touch_updated_at BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION flows_touch_updated_at()"
    )


def append_only_trigger_sql(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION flows_append_only()"
    )


for _sql in [*SUPPORT_SQL, *RLS_SQL]:
    # DDL() %-formats its text: a literal % is written %%.
    event.listen(metadata, "before_create", DDL(_sql.replace("%", "%%")))
for _sql in SUPPORT_DROP_SQL:
    event.listen(metadata, "after_drop", DDL(_sql))


def _install_table_triggers(target: Table, connection: Any, **kw: Any) -> None:
    if "updated_at" in target.c:
        connection.execute(text(touch_trigger_sql(target.name)))
    if target.info.get("append_only"):
        connection.execute(text(append_only_trigger_sql(target.name)))
    insert_only = target.info.get("append_only") or target.info.get("insert_only")
    for sql in grant_sql(target.name, bool(insert_only)):
        connection.execute(text(sql))
    if target.name not in GLOBAL_TABLES:
        for sql in rls_sql(target.name, "esco_id" if "esco_id" in target.c else "id"):
            connection.execute(text(sql))


@event.listens_for(Table, "after_create")
def _after_create(target: Table, connection: Any, **kw: Any) -> None:
    if target.metadata is metadata:
        _install_table_triggers(target, connection)

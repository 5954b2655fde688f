"""The migrations and the models describe the same schema.

Three checks: alembic's own autogenerate comparison; a stricter comparison of the
PostgreSQL catalogs of a migrated database and one built by `metadata.create_all`
(which also covers what alembic cannot see: triggers, functions, the range type,
sequence options, exclusion constraints, expression indexes); and a full
downgrade/upgrade round trip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from flows_graphql.db.models import metadata
from tests.support.db import connect, direct_dsn, scratch_database

# --------------------------------------------------------------------------------------
# Scratch databases


# --------------------------------------------------------------------------------------
# a. alembic autogenerate finds nothing to do


def _autogenerate_diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        # The same comparison options as flows_graphql/db/migrations/env.py.
        opts={"compare_type": True, "compare_server_default": True},
    )
    return compare_metadata(context, metadata)


async def test_autogenerate_finds_no_differences(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diffs = await conn.run_sync(_autogenerate_diffs)
    assert diffs == [], "models and migrations differ:\n" + "\n".join(map(repr, diffs))


# --------------------------------------------------------------------------------------
# b. the catalogs of a migrated and a create_all database are identical

# Every query yields (key, value) rows; a section maps key -> value. Only the public
# schema, and never alembic's bookkeeping table. Column order (attnum) is left out on
# purpose: a later migration's ADD COLUMN appends, wherever the model declares it.
NOT_ALEMBIC = "c.relname <> 'alembic_version'"
CATALOG_QUERIES: dict[str, str] = {
    "tables": f"""
        SELECT c.relname AS key,
               concat_ws(' ', c.relkind::text || c.relpersistence::text,
                         array_to_string(c.reloptions, ',')) AS value
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND {NOT_ALEMBIC}""",
    "columns": f"""
        SELECT c.relname || '.' || a.attname AS key,
               concat_ws(' | ', format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'NULL' END,
                         'default ' || pg_get_expr(d.adbin, d.adrelid),
                         nullif(a.attidentity, ''), nullif(a.attgenerated, '')) AS value
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND {NOT_ALEMBIC}
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "information_schema.columns": """
        SELECT table_name || '.' || column_name AS key,
               concat_ws(' | ', data_type, udt_name, character_maximum_length,
                         numeric_precision, numeric_scale, is_nullable,
                         column_default) AS value
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'alembic_version'""",
    "constraints": f"""
        SELECT c.relname || '.' || k.conname AS key,
               k.contype::text || ' ' || pg_get_constraintdef(k.oid, true) AS value
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND {NOT_ALEMBIC}""",
    "indexes": """
        SELECT tablename || '.' || indexname AS key, indexdef AS value
        FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'""",
    "triggers": f"""
        SELECT c.relname || '.' || t.tgname AS key,
               pg_get_triggerdef(t.oid, true) || ' [' || t.tgenabled::text || ']' AS value
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal AND {NOT_ALEMBIC}""",
    "enums": """
        SELECT t.typname AS key,
               array_to_string(array_agg(e.enumlabel ORDER BY e.enumsortorder), ', ') AS value
        FROM pg_type t
        JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public'
        GROUP BY t.typname""",
    "other types": """
        SELECT t.typname AS key,
               concat_ws(' | ', t.typtype, format_type(r.rngsubtype, NULL),
                         opc.opcname, r.rngmultitypid::regtype::text,
                         format_type(t.typbasetype, t.typtypmod)) AS value
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_range r ON r.rngtypid = t.oid
        LEFT JOIN pg_opclass opc ON opc.oid = r.rngsubopc
        WHERE n.nspname = 'public' AND t.typtype IN ('r', 'm', 'd')""",
    "sequences": """
        SELECT s.sequencename AS key,
               concat_ws(' | ', s.data_type, 'start ' || s.start_value,
                         'min ' || s.min_value, 'max ' || s.max_value,
                         'increment ' || s.increment_by, 'cache ' || s.cache_size,
                         CASE WHEN s.cycle THEN 'cycle' END,
                         (SELECT 'owned by ' || d.refobjid::regclass::text || '.' || a.attname
                          FROM pg_depend d
                          JOIN pg_attribute a
                            ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                          WHERE d.classid = 'pg_class'::regclass
                            AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
                            AND d.deptype IN ('a', 'i'))) AS value
        FROM pg_sequences s
        WHERE s.schemaname = 'public'""",
    "functions": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS key,
               concat_ws(' | ', p.prokind, pg_get_function_result(p.oid), l.lanname,
                         p.provolatile, p.prosrc) AS value
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        JOIN pg_language l ON l.oid = p.prolang
        WHERE n.nspname = 'public'""",
    "extensions": """
        SELECT extname AS key, extversion AS value FROM pg_extension""",
}


async def catalog(url: str) -> dict[str, dict[str, str]]:
    async with connect(url) as conn:
        return {
            section: {row["key"]: row["value"] for row in await conn.fetch(query)}
            for section, query in CATALOG_QUERIES.items()
        }


def catalog_diff(
    migrated: dict[str, dict[str, str]], created: dict[str, dict[str, str]]
) -> list[str]:
    lines: list[str] = []
    for section in CATALOG_QUERIES:
        left, right = migrated[section], created[section]
        for key in sorted(left.keys() | right.keys()):
            if key not in right:
                lines.append(f"[{section}] {key}: only in migrations: {left[key]}")
            elif key not in left:
                lines.append(f"[{section}] {key}: only in models: {right[key]}")
            elif left[key] != right[key]:
                lines.append(
                    f"[{section}] {key}:\n    migrations: {left[key]}\n    models:     {right[key]}"
                )
    return lines


async def test_migrated_catalog_equals_create_all_catalog(
    engine: AsyncEngine, database_url: str, settings: Settings
) -> None:
    migrated = await catalog(database_url)
    async with scratch_database(database_url, "create_all") as url:
        created_engine = create_engine(settings, url)
        try:
            async with created_engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        finally:
            await created_engine.dispose()
        created = await catalog(url)

    # The comparison is only worth something if it saw the whole schema.
    assert len(migrated["tables"]) == len(metadata.tables) >= 29
    assert migrated["enums"]["customer_status"] == "active, inactive, suspended"
    assert "customers.customers_touch_updated_at" in migrated["triggers"]
    assert "audit_log.audit_log_append_only" in migrated["triggers"]
    assert "flows_append_only()" in migrated["functions"]
    assert "account_number_seq" in migrated["sequences"]
    assert "customer_accounts.ex_customer_accounts_one_occupier" in migrated["constraints"]
    assert "customers.uq_customers_esco_id_lower_email" in migrated["indexes"]

    diff = catalog_diff(migrated, created)
    assert not diff, "migrated schema != create_all schema:\n" + "\n".join(diff)


# --------------------------------------------------------------------------------------
# c. downgrade to base and back up again

USER_OBJECTS = """
    SELECT 'relation ' || c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'
    UNION ALL
    SELECT 'type ' || t.typname FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typname NOT LIKE '%alembic_version'
    UNION ALL
    SELECT 'function ' || p.proname FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public'
    ORDER BY 1"""


VERSIONS = Path(__file__).resolve().parent.parent / "flows_graphql/db/migrations/versions"


async def test_downgrade_to_base_and_upgrade_again(
    engine: AsyncEngine, database_url: str, settings: Settings
) -> None:
    head = head_revision()
    # One linear history through every migration file (branches landing side by side
    # must be chained, whatever their numbers).
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head]
    chain = [revision.revision for revision in script.walk_revisions()]
    assert len(chain) == len(list(VERSIONS.glob("0*.py")))
    async with scratch_database(database_url, "roundtrip") as url:
        scratch = create_engine(settings, url)
        try:
            await upgrade(scratch)
            assert await current_revision(scratch) == head

            await downgrade(scratch, "base")
            assert await current_revision(scratch) is None
            async with connect(url) as conn:
                leftovers = [row[0] for row in await conn.fetch(USER_OBJECTS)]
            assert leftovers == [], "downgrade to base left objects behind"

            await upgrade(scratch)
            assert await current_revision(scratch) == head
            async with connect(url) as conn:
                codes = {row["code"] for row in await conn.fetch("SELECT code FROM regions")}
                names = await conn.fetchval("SELECT count(DISTINCT name) FROM regions")
        finally:
            await scratch.dispose()
        # The round trip rebuilt the same schema as a single upgrade did.
        assert catalog_diff(await catalog(database_url), await catalog(url)) == []

    assert len(codes) == 14 and names == 14
    assert {"south_west", "north_wales_mersey", "london", "south_scotland"} <= codes


# --------------------------------------------------------------------------------------
# d. 0004 carries today's data into the supply history and names link events' customers


async def test_0004_migrates_supply_meters_and_link_events(
    engine: AsyncEngine, database_url: str, settings: Settings
) -> None:
    async with scratch_database(database_url, "m0004") as url:
        scratch = create_engine(settings, url)
        try:
            await upgrade(scratch, "0003")
            async with connect(url) as conn:
                esco = await conn.fetchval(
                    "INSERT INTO escos (code, name, region_code) VALUES ('mig', 'M', 'london') "
                    "RETURNING id"
                )
                meter = await conn.fetchval(
                    "INSERT INTO meters (esco_id, serial) VALUES ($1, 'M-1') RETURNING id", esco
                )
                supplied = await conn.fetchval(
                    "INSERT INTO properties (esco_id, plot, supply_meter_id) "
                    "VALUES ($1, '1', $2) RETURNING id",
                    esco,
                    meter,
                )
                await conn.execute("INSERT INTO properties (esco_id, plot) VALUES ($1, '2')", esco)
                account = await conn.fetchval(
                    "INSERT INTO accounts (esco_id, property_id, opened_on) "
                    "VALUES ($1, $2, '2024-01-01') RETURNING id",
                    esco,
                    supplied,
                )
                customer = await conn.fetchval(
                    "INSERT INTO customers (esco_id, email) VALUES ($1, 'a@b.example') "
                    "RETURNING id",
                    esco,
                )
                for notes in (f"Customer {customer}: occupier from 2024-01-01", None, "Hello"):
                    await conn.execute(
                        "INSERT INTO account_events (esco_id, account_id, event_type, notes, "
                        "actor) VALUES ($1, $2, 'opened', $3, 'system')",
                        esco,
                        account,
                        notes,
                    )
            await upgrade(scratch)
            async with connect(url) as conn:
                history = await conn.fetch(
                    "SELECT property_id, meter_id, first_month, last_month "
                    "FROM property_supply_meters"
                )
                events = await conn.fetch(
                    "SELECT notes, customer_id FROM account_events ORDER BY notes NULLS FIRST"
                )
                # The append-only trigger is back on.
                with pytest.raises(asyncpg.PostgresError):
                    await conn.execute("UPDATE account_events SET notes = 'x'")
        finally:
            await scratch.dispose()
    assert [tuple(r) for r in history] == [(supplied, meter, None, None)]
    assert [r["customer_id"] for r in events] == [None, customer, None]  # null, Customer…, Hello


async def test_migrations_are_not_cut_by_the_api_statement_timeout(
    database_url: str, settings: Settings
) -> None:
    # A read may take 100 ms here; a migration (a big database's backfill, or waiting
    # for another process's migration) is not a read.
    tiny = dataclasses.replace(settings, statement_timeout_ms=100)
    async with scratch_database(database_url, "timeout") as url:
        scratch = create_engine(tiny, url)
        try:
            async with scratch.connect() as conn:
                with pytest.raises(Exception, match="statement timeout"):
                    await conn.exec_driver_sql("SELECT pg_sleep(1)")
            await upgrade(scratch)
            await downgrade(scratch, "0003")
            await upgrade(scratch)
        finally:
            await scratch.dispose()
        check = await asyncpg.connect(direct_dsn(url))
        try:
            assert await check.fetchval("SELECT version_num FROM alembic_version") == "0011"
        finally:
            await check.close()

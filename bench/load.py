"""A fresh bench database: drop, create, migrate, COPY the generated rows.

    python -m bench.load --scale 10000 [--seed 1] [--anchor YYYY-MM]

The database is BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/flows_bench).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date

import asyncpg

from flows_graphql.rules.clock import london_today

from .datagen import COLUMNS, FIRST_ACCOUNT_NUMBER, TABLES, Generator, Record, Shape
from .settings import BenchSettings

CHUNK = 50_000

# What pg_restore also takes off before loading data and puts back after it: foreign
# keys, then primary/unique/exclusion constraints, then the other indexes.
FOREIGN_KEYS_SQL = """
SELECT conrelid::regclass::text AS table_name, conname AS name,
       pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE contype = 'f' AND connamespace = 'public'::regnamespace
 ORDER BY 1, 2
"""
KEYS_SQL = """
SELECT conrelid::regclass::text AS table_name, conname AS name,
       pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE contype IN ('p', 'u', 'x') AND connamespace = 'public'::regnamespace
   AND conrelid::regclass::text = ANY($1::text[])
 ORDER BY 1, 2
"""
INDEXES_SQL = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
 WHERE i.indrelid::regclass::text = ANY($1::text[])
   AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
 ORDER BY 1
"""


async def recreate_database(settings: BenchSettings) -> None:
    conn = await asyncpg.connect(settings.maintenance_url)
    try:
        name = settings.database_name
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def migrate(settings: BenchSettings) -> None:
    """The product's own migrations, as an operator runs them."""
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    subprocess.run(
        [sys.executable, "-m", "flows_graphql.cli", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def copy_rows(conn: asyncpg.Connection, rows: dict[str, list[Record]]) -> None:
    """COPY every table with its constraints and indexes taken off and put back.

    Checked and indexed row by row, the keys cost 3/4 of the load. Put back after the
    COPY, each index is built by one sort and each foreign key validated by one join
    over the whole table, with the same names and definitions as the migrations made:
    a row that breaks a key fails the transaction as it would have failed the COPY.
    """
    loaded = [name for name in TABLES if rows[name]]
    foreign_keys = await conn.fetch(FOREIGN_KEYS_SQL)
    keys = await conn.fetch(KEYS_SQL, loaded)
    indexes = await conn.fetch(INDEXES_SQL, loaded)
    for fk in foreign_keys:
        await conn.execute(f'ALTER TABLE {fk["table_name"]} DROP CONSTRAINT "{fk["name"]}"')
    for key in keys:
        await conn.execute(f'ALTER TABLE {key["table_name"]} DROP CONSTRAINT "{key["name"]}"')
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')
    for name in loaded:
        table = month_major(name, rows[name])
        for i in range(0, len(table), CHUNK):
            await conn.copy_records_to_table(
                name, records=table[i : i + CHUNK], columns=list(COLUMNS[name])
            )
    for index in indexes:
        await conn.execute(index["definition"])
    for key in keys:
        await conn.execute(
            f'ALTER TABLE {key["table_name"]} ADD CONSTRAINT "{key["name"]}" {key["definition"]}'
        )
    for fk in foreign_keys:
        await conn.execute(
            f'ALTER TABLE {fk["table_name"]} ADD CONSTRAINT "{fk["name"]}" {fk["definition"]}'
        )


# Tables the product writes a month at a time: usage imported for a month, costs and
# credits written by the month's run. Loaded the same way, a month's rows lie side by
# side as in production, not a meter's twelve months (which made a run of one month
# read and dirty every page of these tables; docs/billing-runs.md).
MONTH_KEYED = ("monthly_usage", "monthly_costs", "monthly_solar_credits")


def month_major(name: str, table: list[Record]) -> list[Record]:
    """The rows in the order the product writes them: by month (stable, so a month's
    rows keep the generator's order)."""
    if name not in MONTH_KEYED:
        return table
    month = COLUMNS[name].index("month")
    return sorted(table, key=lambda record: record[month])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def load(settings: BenchSettings, rows: dict[str, list[Record]], label: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await copy_rows(conn, rows)
            last = FIRST_ACCOUNT_NUMBER + len(rows["accounts"]) - 1
            await conn.execute(f"SELECT setval('account_number_seq', {last})")
            # The shape's label marks the database, so a later run can reuse it.
            await conn.execute(
                f'COMMENT ON DATABASE "{settings.database_name}" IS {_literal(label)}'
            )
        # As after pg_restore: VACUUM sets the loaded rows' hint bits and visibility
        # map once, instead of the first run that reads each page (a billing run after
        # a load dirtied and wrote back every page of the month's 12-month tables).
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def current_label(settings: BenchSettings) -> str | None:
    """The label of the data set in the bench database, if there is one."""
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (asyncpg.InvalidCatalogNameError, OSError):
        return None
    try:
        label: str | None = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = current_database()"
        )
        return label
    finally:
        await conn.close()


async def generate(
    settings: BenchSettings, shape: Shape, log: Callable[[str], None] = print
) -> dict[str, int]:
    """Fresh database, migrations, data; returns the rows per table."""
    started = time.perf_counter()
    await recreate_database(settings)
    migrate(settings)
    migrated = time.perf_counter()
    rows = Generator(shape).build()
    built = time.perf_counter()
    await load(settings, rows, shape.label)
    loaded = time.perf_counter()
    counts = {name: len(rows[name]) for name in TABLES}
    log(
        f"data: {shape.label}: {sum(counts.values()):,} rows in {loaded - started:.1f}s "
        f"(migrate {migrated - started:.1f}s, generate {built - migrated:.1f}s, "
        f"COPY with keys and VACUUM ANALYZE {loaded - built:.1f}s)"
    )
    return counts


def this_month() -> date:
    today = london_today()
    return date(today.year, today.month, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Load the benchmark data set.")
    parser.add_argument("--scale", type=int, default=10_000, help="customers (default 10,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--anchor", help="current month, YYYY-MM (default: this month)")
    args = parser.parse_args()
    if not 10 <= args.scale <= 100_000:
        raise SystemExit("--scale must be between 10 and 100,000")
    anchor = date.fromisoformat(args.anchor + "-01") if args.anchor else this_month()
    counts = asyncio.run(generate(BenchSettings.from_env(), Shape(args.scale, args.seed, anchor)))
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"  {name:<{width}} {count:>10,}")


if __name__ == "__main__":
    main()

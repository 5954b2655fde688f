"""The raw-SQL floor: the nested data of scenarios (a) and (b) built by ONE hand-written
statement (json_build_object / json_agg) and fetched through asyncpg.

Its connections run as the API's role with the same tenant setting as the servers'
requests, set once per connection (not per request), so row-level security costs the
floor what it costs the servers, and a request stays one statement.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from .dataset import DataSet
from .settings import BenchSettings

# Same rows, order and figures as queries.OUR_DASHBOARD; numerics as strings, like the
# API's Decimal scalar.
DASHBOARD_SQL = """
SELECT json_build_object(
  'code', e.code,
  'name', e.name,
  'customers', (
    SELECT coalesce(json_agg(c.doc ORDER BY c.sort_key, c.id), '[]')
      FROM (
        SELECT lower(c.email) AS sort_key, c.id, json_build_object(
          'id', c.id,
          'email', c.email,
          'fullName', c.full_name,
          'accounts', (
            SELECT coalesce(json_agg(json_build_object(
              'role', ca.role,
              'account', json_build_object(
                'accountNumber', a.account_number::text,
                'property', json_build_object(
                  'plot', p.plot,
                  'supplyMeter', (
                    SELECT json_build_object(
                      'serial', m.serial,
                      'circuits', (
                        SELECT coalesce(json_agg(json_build_object('type', ci.type)), '[]')
                          FROM circuit_meter cm
                          JOIN circuits ci ON ci.id = cm.circuit_id
                         WHERE cm.meter_id = m.id),
                      'monthlyUsage', (
                        SELECT coalesce(json_agg(json_build_object(
                          'month', u.month,
                          'powerKwh', u.power_kwh::text,
                          'heatKwh', u.heat_kwh::text,
                          'costs', (
                            SELECT json_build_object(
                              'total', mc.total::text,
                              'savings', (mc.benchmark_total - mc.total)::text)
                              FROM monthly_costs mc
                             WHERE mc.monthly_usage_id = u.id)
                        ) ORDER BY u.month), '[]')
                          FROM monthly_usage u
                         WHERE u.meter_id = m.id AND u.month BETWEEN $2 AND $3))
                      FROM meters m
                     WHERE m.id = p.supply_meter_id)))
            ) ORDER BY ca.start_date DESC, ca.role), '[]')
              FROM customer_accounts ca
              JOIN accounts a ON a.id = ca.account_id
              JOIN properties p ON p.id = a.property_id
             WHERE ca.customer_id = c.id)
        ) AS doc
          FROM customers c
         WHERE c.esco_id = e.id
         ORDER BY lower(c.email), c.id
         LIMIT 50) c))
  FROM escos e
 WHERE e.code = $1
"""

# Same rows, order and figures as queries.OUR_APP.
APP_SQL = """
SELECT json_build_object(
  'email', c.email,
  'fullName', c.full_name,
  'currentTariff', (
    SELECT json_build_object(
      'periodStart', t.period_start,
      'discountPercent', t.discount_percent,
      'unitRate', t.unit_rate::text,
      'standingCharge', t.standing_charge::text)
      FROM customer_tariffs t
     WHERE t.customer_id = c.id AND t.period_start <= $4
     ORDER BY t.period_start DESC
     LIMIT 1),
  'monthlyCosts', (
    SELECT coalesce(json_agg(json_build_object(
      'month', m.month,
      'power', m.power::text,
      'heat', m.heat::text,
      'standingCharge', m.standing_charge::text,
      'total', m.total::text,
      'savings', (m.benchmark_total - m.total)::text) ORDER BY m.month, m.id), '[]')
      FROM monthly_costs m
     WHERE m.customer_id = c.id AND m.month BETWEEN $2 AND $3),
  'payments', (
    SELECT coalesce(json_agg(p.doc ORDER BY p.created_at DESC, p.id DESC), '[]')
      FROM (
        SELECT p.created_at, p.id, json_build_object(
          'amountPence', p.amount_pence,
          'currency', p.currency,
          'status', p.status,
          'description', p.description,
          'createdAt', p.created_at) AS doc
          FROM payments p
         WHERE p.customer_id = c.id
         ORDER BY p.created_at DESC, p.id DESC
         LIMIT 10) p))
  FROM customers c
 WHERE c.id = $1
"""


async def pool(settings: BenchSettings, data: DataSet, size: int) -> asyncpg.Pool:
    # Startup settings, not SET: they are what the pool's RESET ALL on release returns
    # a connection to, and they cost no statement per request.
    made: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=size,
        max_size=size,
        server_settings={
            "role": "flows_api",
            "flows.esco_ids": str(data.esco_id),
            "jit": "off",  # as the API's connections
        },
    )
    return made


async def fetch(pool: asyncpg.Pool, sql: str, *args: Any) -> Any:
    """One statement; its JSON parsed, as a client parses a server's response."""
    text = await pool.fetchval(sql, *args)
    if text is None:
        raise LookupError("no row")
    return json.loads(text)

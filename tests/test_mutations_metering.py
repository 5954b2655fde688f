"""Property and metering mutations through the GraphQL API: createMeter, updateMeter,
createProperty, updateProperty, createCircuit, connectCircuit, disconnectCircuit,
setSolarInstallation.

One app and one connection for the module (tables emptied once); each test makes its
own meters, plots and certificates in two ESCOs made by the fixture.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import count
from typing import Any

import asyncpg
import pytest

from flows_graphql.config import Settings
from flows_graphql.types.node import to_global_id
from tests.support import api
from tests.support.api import ACTOR, error_set, refusal, unchanged
from tests.support.factories import World, module_world
from tests.support.seed import audit_rows, changes, counts, one_audit

TABLES = (
    "meters",
    "properties",
    "circuits",
    "circuit_meter",
    "solar_installation",
    "audit_log",
)
METER_FIELDS = "id uuid serial name hardware mode esco { code }"
PROPERTY_FIELDS = "id uuid plot address esco { code } site { code } supplyMeter { serial }"
SOLAR_FIELDS = "id mcsCertificate declaredNetCapacityKw commissioningDate property { plot }"

_n = count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_n):04d}"


@dataclass
class Env:
    world: World
    esco: uuid.UUID  # "home"
    other: uuid.UUID  # "away", another ESCO
    site: uuid.UUID  # a site of home, code H1
    other_site: uuid.UUID  # a site of away

    @property
    def conn(self) -> asyncpg.Connection:
        return self.world.conn


@pytest.fixture(scope="module")
async def env(settings: Settings, database_url: str) -> AsyncIterator[Env]:
    async with module_world(settings, database_url) as world:
        conn = world.conn
        esco = await conn.fetchval(
            "INSERT INTO escos (code, name, region_code) VALUES ('home', 'Home', 'london') "
            "RETURNING id"
        )
        other = await conn.fetchval(
            "INSERT INTO escos (code, name, region_code) VALUES ('away', 'Away', 'london') "
            "RETURNING id"
        )
        site = await conn.fetchval(
            "INSERT INTO sites (esco_id, code, name) VALUES ($1, 'H1', 'Home 1') RETURNING id",
            esco,
        )
        other_site = await conn.fetchval(
            "INSERT INTO sites (esco_id, code, name) VALUES ($1, 'A1', 'Away 1') RETURNING id",
            other,
        )
        yield Env(world, esco, other, site, other_site)


# --- helpers ------------------------------------------------------------------------


async def mutate(env: Env, name: str, input: dict[str, Any], fields: str) -> dict[str, Any]:
    input_type = "CircuitMeterInput" if name.endswith("onnectCircuit") else None
    return await api.mutate(env.world.client, name, input, fields, input_type=input_type)


async def ok(env: Env, name: str, input: dict[str, Any], fields: str) -> dict[str, Any]:
    return api.ok(await mutate(env, name, input, fields))


async def table_snapshot(conn: asyncpg.Connection) -> list[Any]:
    """Every row of the tables a metering mutation updates (counts miss updates)."""
    return [
        [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")]
        for t in ("meters", "properties", "solar_installation", "circuit_meter")
    ]


async def refused(
    env: Env, name: str, input: dict[str, Any], fields: str
) -> set[tuple[tuple[str, ...] | None, str]]:
    """Run a mutation that must be refused: nothing written or changed, the entities
    null. Returns the (field path, code) of its user errors."""
    async with unchanged(lambda: state(env.conn)):
        payload = await mutate(env, name, input, fields)
    return error_set(refusal(payload))


async def state(conn: asyncpg.Connection) -> Any:
    return await counts(conn, TABLES), await table_snapshot(conn)


async def audited(env: Env, action: str, entity: str, entity_id: object, esco_id: uuid.UUID) -> Any:
    """The one audit row of `action` on `entity_id`; returns its changes."""
    row = await one_audit(env.conn, action, entity_id)
    assert (row["entity"], row["esco_id"]) == (entity, esco_id)
    return changes(row)


async def new_meter(env: Env, esco: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
    payload = await ok(
        env,
        "createMeter",
        {"escoId": str(esco or env.esco), "serial": unique("SN"), **extra},
        f"meter {{ {METER_FIELDS} }}",
    )
    meter: dict[str, Any] = payload["meter"]
    return meter


async def new_property(env: Env, **extra: Any) -> dict[str, Any]:
    payload = await ok(
        env,
        "createProperty",
        {"escoId": str(env.esco), "plot": unique("P"), **extra},
        f"property {{ {PROPERTY_FIELDS} }}",
    )
    prop: dict[str, Any] = payload["property"]
    return prop


async def new_circuit(env: Env, esco: uuid.UUID | None = None) -> dict[str, Any]:
    payload = await ok(
        env,
        "createCircuit",
        {"escoId": str(esco or env.esco), "type": "HEAT"},
        "circuit { id uuid }",
    )
    circuit: dict[str, Any] = payload["circuit"]
    return circuit


async def decommissioned_meter(env: Env) -> dict[str, Any]:
    return await new_meter(env, mode="DECOMMISSIONED")


# --- createMeter --------------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_create_meter(env: Env, by: str) -> None:
    serial = unique("SER")
    esco_ref = to_global_id("Esco", env.esco) if by == "global" else str(env.esco)
    payload = await ok(
        env,
        "createMeter",
        {"escoId": esco_ref, "serial": serial, "name": " Kitchen ", "hardware": "EM-100"},
        f"meter {{ {METER_FIELDS} }}",
    )
    meter = payload["meter"]
    meter_id = uuid.UUID(meter["uuid"])
    assert meter == {
        "id": to_global_id("Meter", meter_id),
        "uuid": str(meter_id),
        "serial": serial,
        "name": "Kitchen",
        "hardware": "EM-100",
        "mode": "ACTIVE",
        "esco": {"code": "home"},
    }
    row = await env.conn.fetchrow("SELECT * FROM meters WHERE id = $1", meter_id)
    assert (row["esco_id"], row["serial"], row["name"], row["hardware"], row["mode"]) == (
        env.esco,
        serial,
        "Kitchen",
        "EM-100",
        "active",
    )
    assert await audited(env, "createMeter", "meter", meter_id, env.esco) == {
        "created": {
            "esco_id": str(env.esco),
            "serial": serial,
            "name": "Kitchen",
            "hardware": "EM-100",
            "mode": "active",
        }
    }


async def test_create_passive_meter(env: Env) -> None:
    meter = await new_meter(env, mode="PASSIVE")
    assert meter["mode"] == "PASSIVE" and meter["name"] is None and meter["hardware"] is None
    mode = await env.conn.fetchval(
        "SELECT mode FROM meters WHERE id = $1", uuid.UUID(meter["uuid"])
    )
    assert mode == "passive"


async def test_create_meter_serial_is_unique_across_escos(env: Env) -> None:
    meter = await new_meter(env, env.other)
    errors = await refused(
        env, "createMeter", {"escoId": str(env.esco), "serial": meter["serial"]}, "meter { id }"
    )
    assert errors == {(("serial",), "DUPLICATE")}


async def test_create_meter_bad_input(env: Env) -> None:
    errors = await refused(
        env,
        "createMeter",
        {"escoId": to_global_id("Meter", env.esco), "serial": "  ", "name": "x\x00"},
        "meter { id }",
    )
    assert errors == {
        (("escoId",), "NOT_FOUND"),
        (("serial",), "INVALID"),
        (("name",), "INVALID"),
    }


# --- updateMeter --------------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_update_meter(env: Env, by: str) -> None:
    meter = await new_meter(env, name="Old", hardware="HW-1")
    meter_id = uuid.UUID(meter["uuid"])
    payload = await ok(
        env,
        "updateMeter",
        {
            "meterId": meter["id"] if by == "global" else meter["uuid"],
            "name": "New",
            "hardware": None,
            "mode": "PASSIVE",
        },
        f"meter {{ {METER_FIELDS} }}",
    )
    assert payload["meter"] == {**meter, "name": "New", "hardware": None, "mode": "PASSIVE"}
    row = await env.conn.fetchrow("SELECT * FROM meters WHERE id = $1", meter_id)
    assert (row["name"], row["hardware"], row["mode"]) == ("New", None, "passive")
    assert await audited(env, "updateMeter", "meter", meter_id, env.esco) == {
        "changed": {
            "name": {"old": "Old", "new": "New"},
            "hardware": {"old": "HW-1", "new": None},
            "mode": {"old": "active", "new": "passive"},
        }
    }


async def test_update_meter_keeps_what_is_left_out(env: Env) -> None:
    meter = await new_meter(env, name="Keep", hardware="HW")
    payload = await ok(
        env,
        "updateMeter",
        {"meterId": meter["id"], "mode": "DECOMMISSIONED"},
        f"meter {{ {METER_FIELDS} }}",
    )
    assert payload["meter"] == {**meter, "mode": "DECOMMISSIONED"}
    changes = await audited(env, "updateMeter", "meter", meter["uuid"], env.esco)
    assert changes == {"changed": {"mode": {"old": "active", "new": "decommissioned"}}}


async def test_decommissioning_a_supply_meter_is_refused(env: Env) -> None:
    meter = await new_meter(env)
    prop = await new_property(env, supplyMeterId=meter["id"])
    errors = await refused(
        env, "updateMeter", {"meterId": meter["id"], "mode": "DECOMMISSIONED"}, "meter { id }"
    )
    assert errors == {(("mode",), "INVALID")}
    # Once the property has another supply meter (or none), it can be decommissioned
    # — and brought back.
    await ok(
        env, "updateProperty", {"propertyId": prop["id"], "supplyMeterId": None}, "property { id }"
    )
    fields = "meter { mode property { id } }"
    payload = await ok(
        env, "updateMeter", {"meterId": meter["id"], "mode": "DECOMMISSIONED"}, fields
    )
    assert payload["meter"] == {"mode": "DECOMMISSIONED", "property": None}
    payload = await ok(env, "updateMeter", {"meterId": meter["id"], "mode": "ACTIVE"}, fields)
    assert payload["meter"]["mode"] == "ACTIVE"


async def test_update_meter_bad_input(env: Env) -> None:
    errors = await refused(
        env,
        "updateMeter",
        {"meterId": str(uuid.uuid4()), "mode": None, "hardware": "x" * 201},
        "meter { id }",
    )
    assert errors == {
        (("meterId",), "NOT_FOUND"),
        (("mode",), "INVALID"),
        (("hardware",), "INVALID"),
    }


# --- createProperty -----------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_create_property(env: Env, by: str) -> None:
    meter = await new_meter(env)
    plot = unique("PLOT")

    def ref(type_name: str, value: uuid.UUID | str) -> str:
        return to_global_id(type_name, value) if by == "global" else str(value)

    payload = await ok(
        env,
        "createProperty",
        {
            "escoId": ref("Esco", env.esco),
            "plot": plot,
            "address": "1 Hill Road",
            "siteId": ref("Site", env.site),
            "supplyMeterId": ref("Meter", meter["uuid"]),
        },
        f"property {{ {PROPERTY_FIELDS} }}",
    )
    prop = payload["property"]
    prop_id = uuid.UUID(prop["uuid"])
    assert prop == {
        "id": to_global_id("Property", prop_id),
        "uuid": str(prop_id),
        "plot": plot,
        "address": "1 Hill Road",
        "esco": {"code": "home"},
        "site": {"code": "H1"},
        "supplyMeter": {"serial": meter["serial"]},
    }
    row = await env.conn.fetchrow("SELECT * FROM properties WHERE id = $1", prop_id)
    meter_id = uuid.UUID(meter["uuid"])
    assert (row["esco_id"], row["plot"], row["address"]) == (env.esco, plot, "1 Hill Road")
    assert (row["site_id"], row["supply_meter_id"]) == (env.site, meter_id)
    assert await audited(env, "createProperty", "property", prop_id, env.esco) == {
        "created": {
            "esco_id": str(env.esco),
            "plot": plot,
            "address": "1 Hill Road",
            "site_id": str(env.site),
            "supply_meter_id": str(meter_id),
        }
    }


async def test_create_property_minimal(env: Env) -> None:
    prop = await new_property(env)
    assert (prop["address"], prop["site"], prop["supplyMeter"]) == (None, None, None)


async def test_create_property_duplicate_plot_per_esco(env: Env) -> None:
    prop = await new_property(env)
    errors = await refused(
        env,
        "createProperty",
        {"escoId": str(env.esco), "plot": prop["plot"]},
        "property { id }",
    )
    assert errors == {(("plot",), "DUPLICATE")}
    # Another ESCO may use the same plot.
    await ok(
        env, "createProperty", {"escoId": str(env.other), "plot": prop["plot"]}, "property { id }"
    )


async def test_create_property_references_of_another_esco_are_not_found(env: Env) -> None:
    away_meter = await new_meter(env, env.other)
    errors = await refused(
        env,
        "createProperty",
        {
            "escoId": str(env.esco),
            "plot": unique("P"),
            "siteId": str(env.other_site),
            "supplyMeterId": away_meter["id"],
        },
        "property { id }",
    )
    assert errors == {(("siteId",), "NOT_FOUND"), (("supplyMeterId",), "NOT_FOUND")}


async def test_create_property_bad_ids_are_not_found(env: Env) -> None:
    errors = await refused(
        env,
        "createProperty",
        {
            "escoId": str(env.esco),
            "plot": unique("P"),
            "siteId": "garbage",
            "supplyMeterId": to_global_id("Site", env.site),
        },
        "property { id }",
    )
    assert errors == {(("siteId",), "NOT_FOUND"), (("supplyMeterId",), "NOT_FOUND")}


async def test_create_property_decommissioned_meter(env: Env) -> None:
    meter = await decommissioned_meter(env)
    errors = await refused(
        env,
        "createProperty",
        {"escoId": str(env.esco), "plot": unique("P"), "supplyMeterId": meter["id"]},
        "property { id }",
    )
    assert errors == {(("supplyMeterId",), "METER_DECOMMISSIONED")}


async def test_create_property_meter_already_supplying(env: Env) -> None:
    meter = await new_meter(env)
    taken = await new_property(env, supplyMeterId=meter["id"])
    errors = await refused(
        env,
        "createProperty",
        {"escoId": str(env.esco), "plot": taken["plot"], "supplyMeterId": meter["uuid"]},
        "property { id }",
    )
    assert errors == {(("plot",), "DUPLICATE"), (("supplyMeterId",), "DUPLICATE")}


async def test_create_property_unknown_esco(env: Env) -> None:
    errors = await refused(
        env,
        "createProperty",
        {"escoId": str(uuid.uuid4()), "plot": "", "siteId": str(env.site)},
        "property { id }",
    )
    assert errors == {(("escoId",), "NOT_FOUND"), (("plot",), "INVALID")}


# --- updateProperty -----------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_update_property_changes_and_clears(env: Env, by: str) -> None:
    old_meter = await new_meter(env)
    new = await new_meter(env)
    prop = await new_property(
        env, address="Old Road", siteId=str(env.site), supplyMeterId=old_meter["id"]
    )
    prop_id = uuid.UUID(prop["uuid"])
    plot = unique("RENAMED")
    payload = await ok(
        env,
        "updateProperty",
        {
            "propertyId": prop["id"] if by == "global" else prop["uuid"],
            "plot": plot,
            "address": None,
            "siteId": None,
            "supplyMeterId": new["uuid"] if by == "uuid" else new["id"],
        },
        f"property {{ {PROPERTY_FIELDS} }}",
    )
    assert payload["property"] == {
        **prop,
        "plot": plot,
        "address": None,
        "site": None,
        "supplyMeter": {"serial": new["serial"]},
    }
    row = await env.conn.fetchrow("SELECT * FROM properties WHERE id = $1", prop_id)
    new_id, old_id = uuid.UUID(new["uuid"]), uuid.UUID(old_meter["uuid"])
    assert (row["plot"], row["address"], row["site_id"], row["supply_meter_id"]) == (
        plot,
        None,
        None,
        new_id,
    )
    assert await audited(env, "updateProperty", "property", prop_id, env.esco) == {
        "changed": {
            "plot": {"old": prop["plot"], "new": plot},
            "address": {"old": "Old Road", "new": None},
            "site_id": {"old": str(env.site), "new": None},
            "supply_meter_id": {"old": str(old_id), "new": str(new_id)},
        }
    }
    # The old meter is free again: another property may take it.
    await new_property(env, supplyMeterId=old_meter["id"])


async def test_update_property_keeps_what_is_left_out(env: Env) -> None:
    meter = await new_meter(env)
    prop = await new_property(env, siteId=str(env.site), supplyMeterId=meter["id"])
    payload = await ok(
        env,
        "updateProperty",
        {"propertyId": prop["id"], "address": "2 New Street", "supplyMeterId": meter["id"]},
        f"property {{ {PROPERTY_FIELDS} }}",
    )
    assert payload["property"] == {**prop, "address": "2 New Street"}
    changes = await audited(env, "updateProperty", "property", prop["uuid"], env.esco)
    assert changes == {"changed": {"address": {"old": None, "new": "2 New Street"}}}


async def test_update_property_set_site_and_meter(env: Env) -> None:
    meter = await new_meter(env)
    prop = await new_property(env)
    payload = await ok(
        env,
        "updateProperty",
        {"propertyId": prop["uuid"], "siteId": str(env.site), "supplyMeterId": meter["uuid"]},
        "property { site { code } supplyMeter { serial property { uuid } } }",
    )
    assert payload["property"] == {
        "site": {"code": "H1"},
        "supplyMeter": {"serial": meter["serial"], "property": {"uuid": prop["uuid"]}},
    }


async def test_update_property_refusals(env: Env) -> None:
    taken_meter = await new_meter(env)
    other = await new_property(env, supplyMeterId=taken_meter["id"])
    prop = await new_property(env)
    fields = "property { id }"
    errors = await refused(
        env,
        "updateProperty",
        {"propertyId": prop["id"], "plot": other["plot"], "supplyMeterId": taken_meter["id"]},
        fields,
    )
    assert errors == {(("plot",), "DUPLICATE"), (("supplyMeterId",), "DUPLICATE")}

    dead = await decommissioned_meter(env)
    errors = await refused(
        env,
        "updateProperty",
        {"propertyId": prop["id"], "supplyMeterId": dead["id"], "siteId": str(env.other_site)},
        fields,
    )
    assert errors == {(("supplyMeterId",), "METER_DECOMMISSIONED"), (("siteId",), "NOT_FOUND")}

    errors = await refused(env, "updateProperty", {"propertyId": prop["id"], "plot": None}, fields)
    assert errors == {(("plot",), "INVALID")}

    errors = await refused(
        env, "updateProperty", {"propertyId": str(env.site), "address": "x"}, fields
    )
    assert errors == {(("propertyId",), "NOT_FOUND")}


# --- circuits -----------------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_create_circuit(env: Env, by: str) -> None:
    esco_ref = to_global_id("Esco", env.esco) if by == "global" else str(env.esco)
    payload = await ok(
        env,
        "createCircuit",
        {"escoId": esco_ref, "type": "SOLAR", "name": "Roof array"},
        "circuit { id uuid type name meters { id } }",
    )
    circuit = payload["circuit"]
    circuit_id = uuid.UUID(circuit["uuid"])
    assert circuit == {
        "id": to_global_id("Circuit", circuit_id),
        "uuid": str(circuit_id),
        "type": "SOLAR",
        "name": "Roof array",
        "meters": [],
    }
    row = await env.conn.fetchrow("SELECT * FROM circuits WHERE id = $1", circuit_id)
    assert (row["esco_id"], row["type"], row["name"]) == (env.esco, "solar", "Roof array")
    assert await audited(env, "createCircuit", "circuit", circuit_id, env.esco) == {
        "created": {"esco_id": str(env.esco), "type": "solar", "name": "Roof array"}
    }


async def test_create_circuit_unknown_esco(env: Env) -> None:
    errors = await refused(
        env, "createCircuit", {"escoId": "nope", "type": "POWER"}, "circuit { id }"
    )
    assert errors == {(("escoId",), "NOT_FOUND")}


LINK_FIELDS = "circuit { uuid meters { serial } } meter { serial circuits { uuid } }"


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_connect_and_disconnect_circuit(env: Env, by: str) -> None:
    circuit = await new_circuit(env)
    meter = await new_meter(env)
    circuit_id, meter_id = uuid.UUID(circuit["uuid"]), uuid.UUID(meter["uuid"])
    key = "id" if by == "global" else "uuid"
    input = {"circuitId": circuit[key], "meterId": meter[key]}
    link_key = f"{circuit_id}|{meter_id}"

    connected = {
        "circuit": {"uuid": str(circuit_id), "meters": [{"serial": meter["serial"]}]},
        "meter": {"serial": meter["serial"], "circuits": [{"uuid": str(circuit_id)}]},
        "userErrors": [],
    }
    assert await ok(env, "connectCircuit", input, LINK_FIELDS) == connected
    # Connecting again changes nothing.
    assert await ok(env, "connectCircuit", input, LINK_FIELDS) == connected
    links = await env.conn.fetch(
        "SELECT esco_id FROM circuit_meter WHERE circuit_id = $1 AND meter_id = $2",
        circuit_id,
        meter_id,
    )
    assert [r["esco_id"] for r in links] == [env.esco]
    audits = await audit_rows(env.conn, "connectCircuit", link_key)
    assert [(a["actor"], a["entity"], a["esco_id"]) for a in audits] == [
        (ACTOR, "circuit_meter", env.esco)
    ] * 2
    assert [json.loads(a["changes"]) for a in audits] == [
        {
            "created": {
                "circuit_id": str(circuit_id),
                "meter_id": str(meter_id),
                "esco_id": str(env.esco),
            }
        },
        {"changed": {}},
    ]

    disconnected = {
        "circuit": {"uuid": str(circuit_id), "meters": []},
        "meter": {"serial": meter["serial"], "circuits": []},
        "userErrors": [],
    }
    assert await ok(env, "disconnectCircuit", input, LINK_FIELDS) == disconnected
    assert (
        await env.conn.fetchval(
            "SELECT count(*) FROM circuit_meter WHERE circuit_id = $1", circuit_id
        )
        == 0
    )
    assert await audited(env, "disconnectCircuit", "circuit_meter", link_key, env.esco) == {
        "removed": {"circuit_id": str(circuit_id), "meter_id": str(meter_id)}
    }
    # Disconnecting what is not connected.
    errors = await refused(env, "disconnectCircuit", input, LINK_FIELDS)
    assert errors == {(("meterId",), "NOT_FOUND")}


async def test_connect_circuit_refusals(env: Env) -> None:
    circuit = await new_circuit(env)
    away_meter = await new_meter(env, env.other)
    errors = await refused(
        env,
        "connectCircuit",
        {"circuitId": circuit["id"], "meterId": away_meter["id"]},
        LINK_FIELDS,
    )
    assert errors == {(("meterId",), "NOT_FOUND")}

    dead = await decommissioned_meter(env)
    errors = await refused(
        env, "connectCircuit", {"circuitId": circuit["id"], "meterId": dead["id"]}, LINK_FIELDS
    )
    assert errors == {(("meterId",), "METER_DECOMMISSIONED")}

    errors = await refused(
        env,
        "connectCircuit",
        {"circuitId": dead["id"], "meterId": str(uuid.uuid4())},
        LINK_FIELDS,
    )
    assert errors == {(("circuitId",), "NOT_FOUND"), (("meterId",), "NOT_FOUND")}

    errors = await refused(
        env,
        "disconnectCircuit",
        {"circuitId": str(uuid.uuid4()), "meterId": away_meter["id"]},
        LINK_FIELDS,
    )
    assert errors == {(("circuitId",), "NOT_FOUND")}


# --- setSolarInstallation -----------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_set_solar_installation_creates_then_updates(env: Env, by: str) -> None:
    prop = await new_property(env)
    prop_id = uuid.UUID(prop["uuid"])
    mcs = unique("MCS")
    input = {
        "propertyId": prop["id"] if by == "global" else prop["uuid"],
        "mcsCertificate": mcs,
        "declaredNetCapacityKw": "4.2",
        "commissioningDate": "2024-06-01",
    }
    payload = await ok(
        env, "setSolarInstallation", input, f"solarInstallation {{ {SOLAR_FIELDS} }}"
    )
    assert payload["solarInstallation"] == {
        "id": to_global_id("SolarInstallation", prop_id),
        "mcsCertificate": mcs,
        "declaredNetCapacityKw": "4.2",
        "commissioningDate": "2024-06-01",
        "property": {"plot": prop["plot"]},
    }
    row = await env.conn.fetchrow(
        "SELECT * FROM solar_installation WHERE property_id = $1", prop_id
    )
    assert (row["esco_id"], row["mcs_certificate"]) == (env.esco, mcs)
    assert (row["declared_net_capacity_kw"], row["commissioning_date"]) == (
        Decimal("4.2"),
        date(2024, 6, 1),
    )
    created = await audited(env, "setSolarInstallation", "solar_installation", prop_id, env.esco)
    assert created == {
        "created": {
            "property_id": str(prop_id),
            "mcs_certificate": mcs,
            "declared_net_capacity_kw": "4.2",
            "commissioning_date": "2024-06-01",
        }
    }

    # Again: the same installation changes; the date left out is kept.
    payload = await ok(
        env,
        "setSolarInstallation",
        {"propertyId": prop["uuid"], "mcsCertificate": mcs, "declaredNetCapacityKw": "3.95"},
        f"solarInstallation {{ {SOLAR_FIELDS} }}",
    )
    assert payload["solarInstallation"]["declaredNetCapacityKw"] == "3.95"
    assert payload["solarInstallation"]["commissioningDate"] == "2024-06-01"
    assert (
        await env.conn.fetchval(
            "SELECT count(*) FROM solar_installation WHERE property_id = $1", prop_id
        )
        == 1
    )
    audits = await audit_rows(env.conn, "setSolarInstallation", prop_id)
    assert json.loads(audits[-1]["changes"]) == {
        "changed": {"declared_net_capacity_kw": {"old": "4.2", "new": "3.95"}}
    }

    # null clears; the property shows it.
    payload = await ok(
        env,
        "setSolarInstallation",
        {"propertyId": prop["id"], "mcsCertificate": mcs, "commissioningDate": None},
        "solarInstallation { property { solarInstallation { commissioningDate "
        "declaredNetCapacityKw } } }",
    )
    assert payload["solarInstallation"]["property"]["solarInstallation"] == {
        "commissioningDate": None,
        "declaredNetCapacityKw": "3.95",
    }


async def test_set_solar_installation_duplicate_certificate(env: Env) -> None:
    one, two = await new_property(env), await new_property(env)
    mcs = unique("MCS")
    fields = "solarInstallation { mcsCertificate }"
    await ok(env, "setSolarInstallation", {"propertyId": one["id"], "mcsCertificate": mcs}, fields)
    errors = await refused(
        env, "setSolarInstallation", {"propertyId": two["id"], "mcsCertificate": mcs}, fields
    )
    assert errors == {(("mcsCertificate",), "DUPLICATE")}


@pytest.mark.parametrize("capacity", ["-0.1", "1000.001", "4.2001"])
async def test_set_solar_installation_bad_capacity(env: Env, capacity: str) -> None:
    prop = await new_property(env)
    errors = await refused(
        env,
        "setSolarInstallation",
        {
            "propertyId": prop["id"],
            "mcsCertificate": unique("MCS"),
            "declaredNetCapacityKw": capacity,
        },
        "solarInstallation { mcsCertificate }",
    )
    assert errors == {(("declaredNetCapacityKw",), "INVALID")}


@pytest.mark.parametrize("capacity", ["NaN", "Infinity", "-Infinity", 4.2])
async def test_non_finite_or_float_decimals_are_refused_by_the_scalar(
    env: Env, capacity: object
) -> None:
    prop = await new_property(env)
    response = await env.world.client.post(
        "/graphql",
        json={
            "query": "mutation($input: SetSolarInstallationInput!) { setSolarInstallation("
            "input: $input) { solarInstallation { mcsCertificate } } }",
            "variables": {
                "input": {
                    "propertyId": prop["id"],
                    "mcsCertificate": unique("MCS"),
                    "declaredNetCapacityKw": capacity,
                }
            },
        },
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "declaredNetCapacityKw" in error["message"]


async def test_set_solar_installation_zero_capacity(env: Env) -> None:
    prop = await new_property(env)
    payload = await ok(
        env,
        "setSolarInstallation",
        {"propertyId": prop["id"], "mcsCertificate": unique("MCS"), "declaredNetCapacityKw": "0"},
        "solarInstallation { declaredNetCapacityKw commissioningDate }",
    )
    assert payload["solarInstallation"] == {"declaredNetCapacityKw": "0", "commissioningDate": None}


async def test_set_solar_installation_unknown_property(env: Env) -> None:
    errors = await refused(
        env,
        "setSolarInstallation",
        {"propertyId": to_global_id("Property", uuid.uuid4()), "mcsCertificate": " "},
        "solarInstallation { mcsCertificate }",
    )
    assert errors == {(("propertyId",), "NOT_FOUND"), (("mcsCertificate",), "INVALID")}


async def test_text_the_database_cannot_hold_is_invalid(env: Env) -> None:
    """NUL or a lone surrogate in text is a user error, never a 500 — including in the
    fields looked up for duplicates."""
    prop = await new_property(env)
    cases = [
        ("createMeter", {"escoId": str(env.esco), "serial": "S\x00"}, "meter { id }", "serial"),
        ("createProperty", {"escoId": str(env.esco), "plot": "P\ud800"}, "property { id }", "plot"),
        (
            "updateProperty",
            {"propertyId": prop["id"], "plot": "P\x00"},
            "property { id }",
            "plot",
        ),
        (
            "setSolarInstallation",
            {"propertyId": prop["id"], "mcsCertificate": "M\x00"},
            "solarInstallation { mcsCertificate }",
            "mcsCertificate",
        ),
    ]
    for name, input, fields, field in cases:
        assert await refused(env, name, input, fields) == {((field,), "INVALID")}, name

"""Statuses and kinds of the domain, stored as PostgreSQL enums (their values)."""

from __future__ import annotations

import enum


class TariffGeneration(enum.Enum):
    AUTO = "auto"
    FROZEN = "frozen"


class ContractTermsType(enum.Enum):
    SUPPLY = "supply"
    SOLAR = "solar"


class MeterMode(enum.Enum):
    ACTIVE = "active"
    PASSIVE = "passive"
    DECOMMISSIONED = "decommissioned"


class CircuitType(enum.Enum):
    HEAT = "heat"
    POWER = "power"
    SOLAR = "solar"


class CustomerStatus(enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class AccountStatus(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"


class CustomerAccountRole(enum.Enum):
    OWNER = "owner"
    OCCUPIER = "occupier"


class UsageSource(enum.Enum):
    METER = "meter"
    ESTIMATE = "estimate"
    MANUAL = "manual"


class BillingRunStatus(enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    FINALIZED = "finalized"


class PaymentStatus(enum.Enum):
    CREATED = "created"
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AccountEventType(enum.Enum):
    OPENED = "opened"
    CLOSED = "closed"
    OCCUPANCY_STARTED = "occupancy_started"
    OCCUPANCY_ENDED = "occupancy_ended"
    OWNER_ADDED = "owner_added"
    OWNER_REMOVED = "owner_removed"

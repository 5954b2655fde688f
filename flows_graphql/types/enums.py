"""The domain's enums as GraphQL enums (SCREAMING_CASE names, lower-case values in SQL).

strawberry.enum registers the model enums themselves, so a row's value is returned as
it comes from the database, without a translation table.
"""

from __future__ import annotations

import strawberry

from ..db.models import enums as m

TariffGeneration = strawberry.enum(
    m.TariffGeneration,
    description="`AUTO`: a new quarter's benchmark generates the ESCO's tariffs; "
    "`FROZEN`: its current tariffs are kept.",
)
ContractTermsType = strawberry.enum(m.ContractTermsType, description="What contract terms cover.")
MeterMode = strawberry.enum(
    m.MeterMode,
    description="`ACTIVE` meters report; `PASSIVE` ones are digital twins fed from another "
    "system; `DECOMMISSIONED` is the soft delete (no new usage).",
)
CircuitType = strawberry.enum(m.CircuitType, description="What a circuit carries.")
CustomerStatus = strawberry.enum(
    m.CustomerStatus,
    description="`INACTIVE` is the soft delete; `SUSPENDED` blocks payments and new tariffs.",
)
AccountStatus = strawberry.enum(m.AccountStatus, description="Whether an account is open.")
CustomerAccountRole = strawberry.enum(
    m.CustomerAccountRole, description="`OCCUPIER` is billed; `OWNER` owns the property."
)
UsageSource = strawberry.enum(m.UsageSource, description="Where a month's usage came from.")
BillingRunStatus = strawberry.enum(
    m.BillingRunStatus, description="`FINALIZED` freezes the month's costs."
)
PaymentStatus = strawberry.enum(
    m.PaymentStatus,
    description="Moves only forward: CREATED → PENDING | CANCELLED; PENDING → PROCESSING | "
    "FAILED | CANCELLED; PROCESSING → SUCCEEDED | FAILED.",
)
AccountEventType = strawberry.enum(m.AccountEventType, description="What happened to an account.")

"""Root look-ups by the keys partner systems hold (docs/money.md, "Partner sync").

Each answers null when nothing matches or the match is out of the viewer's scope
(exactly alike), and malformed keys are simply keys that match nothing.
"""

from __future__ import annotations

from typing import Annotated, cast

import strawberry

from ..context import Context
from ..fields import projection
from ..loaders import lookups as loaders
from ..types.billing import Payment
from ..types.customers import Account, Customer
from ..types.metering import Meter
from ..types.node import parse_id

Info = strawberry.Info[Context, None]

# account_number is a bigint: a larger "number" names nothing.
MAX_ACCOUNT_NUMBER = 2**63 - 1


@strawberry.type
class LookupsQuery:
    @strawberry.field(description="A meter by its serial (unique across ESCOs).")
    async def meter(
        self, info: Info, serial: Annotated[str, strawberry.argument(description="Serial.")]
    ) -> Meter | None:
        loader = info.context.loaders.get(loaders.MeterBySerial, columns=projection(info))
        return cast(Meter | None, await loader.load(serial))

    @strawberry.field(description="An account by the number shown to its customers.")
    async def account(
        self,
        info: Info,
        account_number: Annotated[
            strawberry.ID, strawberry.argument(description="The account number.")
        ],
    ) -> Account | None:
        text = account_number.strip()
        if not text.isascii() or not text.isdigit() or int(text) > MAX_ACCOUNT_NUMBER:
            return None
        loader = info.context.loaders.get(loaders.AccountByNumber, columns=projection(info))
        return cast(Account | None, await loader.load(int(text)))

    @strawberry.field(description="A customer of an ESCO by e-mail (any case).")
    async def customer(
        self,
        info: Info,
        esco_id: Annotated[
            strawberry.ID, strawberry.argument(description="The ESCO (global id or uuid).")
        ],
        email: Annotated[str, strawberry.argument(description="The e-mail address.")],
    ) -> Customer | None:
        esco = parse_id(esco_id, "Esco")
        if esco is None:
            return None
        loader = info.context.loaders.get(loaders.CustomerByEmail, columns=projection(info))
        return cast(Customer | None, await loader.load(f"{esco}|{email.strip().lower()}"))

    @strawberry.field(
        description="A payment by the card processor's reference (the newest, should "
        "several carry it)."
    )
    async def payment(
        self,
        info: Info,
        provider_reference: Annotated[
            str, strawberry.argument(description="The processor's payment id.")
        ],
    ) -> Payment | None:
        loader = info.context.loaders.get(
            loaders.PaymentByProviderReference, columns=projection(info)
        )
        return cast(Payment | None, await loader.load(provider_reference))

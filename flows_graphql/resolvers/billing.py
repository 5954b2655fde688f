"""Root queries over billing runs."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

import strawberry

from ..context import Context
from ..loaders.billing import RUN_SPEC, RUNS
from ..services import billing as service
from ..services.problems import Rejected
from ..types.billing import BillingRun
from ..types.errors import UserError
from ..types.filters import BillingRunFilter, BillingRunOrder, run_filter
from ..types.node import parse_id
from .lists import esco_rows
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.type
class BillingQuery:
    billing_runs = esco_rows(
        BillingRun,
        RUN_SPEC,
        RUNS,
        BillingRunFilter,
        run_filter,
        BillingRunOrder,
        description="Billing runs the viewer may see, newest month first.",
        filter_description="Only the runs that meet all of these conditions.",
        order_description="Default NEWEST_MONTH.",
    )


@strawberry.input(description="Bill one ESCO for one month.")
class RunBillingInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    month: date = strawberry.field(
        description="The month, as its 1st; the current month bills month-to-date."
    )
    background: bool = strawberry.field(
        default=False,
        description="True: answer at once with the run RUNNING and carry it on in the "
        "server (follow it by `node(id:)` or `billingRuns`: `status`, `progress`). "
        "False: answer when the run has completed or failed.",
    )


@strawberry.type(description="The result of runBilling.")
class RunBillingPayload:
    billing_run: BillingRun | None = strawberry.field(
        description="The run: COMPLETED with its totals and skipped meters, FAILED with "
        "its `error`, or RUNNING when started in the background."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Freeze a month's costs.")
class FinalizeBillingRunInput:
    billing_run_id: strawberry.ID = strawberry.field(
        description="The month's latest completed run (global id or uuid)."
    )


@strawberry.type(description="The result of finalizeBillingRun.")
class FinalizeBillingRunPayload:
    billing_run: BillingRun | None = strawberry.field(description="The finalized run.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Compute a month's costs and solar credits for an ESCO, replacing any "
        "earlier run of that month (refused once the month is finalized)."
    )
    async def run_billing(
        self,
        info: Info,
        input: Annotated[
            RunBillingInput,
            strawberry.argument(
                description="The ESCO and the month to bill, and whether to wait for the run."
            ),
        ],
    ) -> RunBillingPayload:
        context = info.context
        assert context.billing_jobs is not None, "the app gives every request its jobs"
        try:
            job = await context.billing_jobs.start(
                context.viewer, parse_id(input.esco_id, "Esco"), input.month, context.today
            )
        except Rejected as rejected:
            return RunBillingPayload(
                billing_run=None, user_errors=[UserError.of(p) for p in rejected.problems]
            )
        row = job.run
        if not input.background:
            # The answer waits for the run, which its own bound stops, whatever the size
            # of the ESCO; then a second for the payload.
            context.cutoff.extend(context.billing_jobs.timeout_s + 1.0)
            # Shielded: a caller who goes away does not stop the run; it completes
            # (or fails) as a background one would.
            row = await asyncio.shield(job.task)
        # What the payload reads next comes after the run's own commits.
        await context.db.end_snapshot()
        return RunBillingPayload(billing_run=row, user_errors=[])

    @strawberry.mutation(description="Freeze a month: its costs never change again.")
    async def finalize_billing_run(
        self,
        info: Info,
        input: Annotated[
            FinalizeBillingRunInput,
            strawberry.argument(description="The run whose month is frozen."),
        ],
    ) -> FinalizeBillingRunPayload:
        row, errors = await run(
            info,
            lambda tx: service.finalize_run(tx, parse_id(input.billing_run_id, "BillingRun")),
        )
        return FinalizeBillingRunPayload(billing_run=row, user_errors=errors)

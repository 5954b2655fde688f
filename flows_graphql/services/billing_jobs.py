"""Billing runs as jobs: started by a request, carried on by the server.

A run (services/billing.py) is checked and locked in ITS OWN transaction, T, on a
connection of its own; the run's row is then committed as `running` on a second,
short-lived-transaction connection, S, so that anyone can see it at once. T prices and
writes the month and marks the run completed — one transaction, all or nothing — while
S records the progress after every batch (a separate commit, so it is visible outside
T). T holds the ESCO-month's advisory lock from its first statement to its end: a
second run is `RUN_IN_PROGRESS`, and a row left `running` whose lock nobody holds
belongs to a run that died with its process (`recover`).

A failure rolls T back and records `failed` with an error in a transaction of its
own. T runs with its own statement timeout, `FLOWS_BILLING_TIMEOUT_S`, which also
bounds the whole run; the read path keeps `FLOWS_STATEMENT_TIMEOUT_MS`.
Decisions and what users see: docs/billing-runs.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.viewer import SYSTEM, Viewer
from ..config import Settings
from ..db.engine import SET_TENANT, tenant_setting
from ..db.models.enums import BillingRunStatus
from ..metrics import timed_job
from ..rules.clock import Today
from . import billing
from .problems import sqlstate
from .tx import Row, Tx

log = logging.getLogger("flows_graphql.billing")

# Told (meters done, meters to bill) after each batch, in the process running the job
# (the CLI's progress bar); the API reads the same figures from the run's row.
Listener = Callable[[int, int], None]

TIMED_OUT = (
    "The run took longer than its bound of {seconds:g} s (FLOWS_BILLING_TIMEOUT_S) and "
    "was rolled back; nothing of it was written."
)
STOPPED = (
    "The server stopped before the run finished; it was rolled back and nothing of it "
    "was written. Run the month again."
)
UNEXPECTED = (
    "The run failed unexpectedly and was rolled back; nothing of it was written. The "
    "server's log has the details under this run's id."
)
QUERY_CANCELED = "57014"

# The run's transaction: the viewer's ESCOs (row-level security), the run's own
# statement timeout (and idle bound: it prices between statements), and a server that
# looks for its client every second — else a statement of a process that died goes on
# to its end, holding the month's lock. Its work_mem: billing.WORK_MEM says why.
RUN_SETTINGS = text(
    "SELECT set_config('flows.esco_ids', :esco_ids, true),"
    " set_config('statement_timeout', :timeout_ms, true),"
    " set_config('idle_in_transaction_session_timeout', :timeout_ms, true),"
    " set_config('client_connection_check_interval', '1000', true),"
    f" set_config('work_mem', '{billing.WORK_MEM}', true)"
)


@dataclass
class Job:
    """A started run: its row as committed (`running`) and the task carrying it on,
    which ends with the run's final row (completed, or failed with its error)."""

    run: Row
    task: asyncio.Task[Row]


@dataclass
class Recovery:
    """What `recover` found: runs it marked failed, runs whose lock is held."""

    marked: list[uuid.UUID] = field(default_factory=list)
    busy: list[uuid.UUID] = field(default_factory=list)


class BillingJobs:
    """The billing runs of one process: started, tracked, waited for on shutdown."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.timeout_s = settings.billing_timeout_s
        self.grace_s = settings.billing_shutdown_grace_s
        self._tasks: dict[uuid.UUID, asyncio.Task[Row]] = {}

    @property
    def running(self) -> list[uuid.UUID]:
        """The ids of the runs this process is carrying on now."""
        return list(self._tasks)

    async def start(
        self,
        viewer: Viewer,
        esco_id: uuid.UUID | None,
        month: date,
        today: Today,
        listener: Listener | None = None,
    ) -> Job:
        """Check, lock and record the run, then carry it on in a task. Refusals
        (`Rejected`: FORBIDDEN, NOT_FOUND, FUTURE_MONTH, RUN_IN_PROGRESS,
        MONTH_FINALIZED, …) are raised here, before anything is written."""
        tenant = {"esco_ids": tenant_setting(viewer.esco_scope)}
        work = await self.engine.connect()
        status: AsyncConnection | None = None
        try:
            await work.begin()
            await work.execute(
                RUN_SETTINGS,
                {**tenant, "timeout_ms": str(max(1, round(self.timeout_s * 1000)))},
            )
            tx = Tx(work, viewer, today)
            plan = await billing.prepare_run(tx, esco_id, month)
            # Taken now, not per report: a run never waits for the pool while it
            # holds a connection (runs filling the pool would wait for each other).
            status = await self.engine.connect()
            async with status.begin():
                await status.execute(SET_TENANT, tenant)
                run = await billing.insert_run(status, plan, viewer.actor)
        except BaseException:
            await _discard(work)
            if status is not None:
                await _discard(status)
            raise
        task = asyncio.create_task(
            timed_job("billing_run", self._carry_on(work, status, tx, plan, run, tenant, listener)),
            name=f"billing-run-{run.id}",
        )
        self._tasks[run.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run.id, None))
        log.info(
            "billing run started",
            extra={"run_id": str(run.id), "esco_id": str(plan.esco_id), "month": str(month)},
        )
        return Job(run, task)

    async def _carry_on(
        self,
        work: AsyncConnection,
        status: AsyncConnection,
        tx: Tx,
        plan: billing.Plan,
        run: Row,
        tenant: dict[str, str],
        listener: Listener | None,
    ) -> Row:
        async def progress(done: int, total: int) -> None:
            async with status.begin():
                await status.execute(SET_TENANT, tenant)
                await status.execute(
                    update(billing.RUNS)
                    .where(billing.RUNS.c.id == run.id)
                    .values(progress_billed=done, progress_total=total)
                )
            if listener is not None:
                listener(done, total)

        try:
            async with asyncio.timeout(self.timeout_s):
                result = await billing.bill(tx, plan, run.id, progress)
                await work.commit()
        except BaseException as exc:
            message = self._error_of(exc, run.id)
            # T ends before the failure is recorded: its locks (the run's row, the
            # ESCO-month) go with it.
            await _discard(work)
            await _discard(status)
            failed = await self._record_failure(tx.viewer, plan, run, message)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            return failed
        await _discard(status)
        await work.close()
        log.info(
            "billing run completed",
            extra={"run_id": str(run.id), "customers_billed": result.run.customers_billed},
        )
        return result.run

    def _error_of(self, exc: BaseException, run_id: uuid.UUID) -> str:
        """What the run's `error` says: why, never SQL or a stack trace (those go to
        the log, under the run's id)."""
        if isinstance(exc, TimeoutError) or (
            isinstance(exc, DBAPIError) and sqlstate(exc) == QUERY_CANCELED
        ):
            log.warning("billing run timed out", extra={"run_id": str(run_id)})
            return TIMED_OUT.format(seconds=self.timeout_s)
        if isinstance(exc, asyncio.CancelledError):
            log.warning("billing run cancelled", extra={"run_id": str(run_id)})
            return STOPPED
        log.error(
            "billing run failed",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"run_id": str(run_id)},
        )
        return UNEXPECTED

    async def _record_failure(
        self, viewer: Viewer, plan: billing.Plan, run: Row, message: str
    ) -> Row:
        """`failed` and the error, in a transaction of their own (the run's was rolled
        back). Only a row still `running` changes: a commit that got through just
        before a cancellation stays completed. If even this fails (the database is
        gone), the row stays `running` and start-up marks it (`recover`)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(SET_TENANT, {"esco_ids": tenant_setting(viewer.esco_scope)})
                failed = await _mark_failed(conn, run.id, message)
                if failed is not None:
                    await Tx(conn, viewer).audit(
                        "runBilling",
                        "billing_run",
                        run.id,
                        {"month": plan.month, "failed": message},
                        plan.esco_id,
                    )
                    return failed
                current = (
                    await conn.execute(select(billing.RUNS).where(billing.RUNS.c.id == run.id))
                ).one()
                return current
        except Exception:
            log.exception("could not record a failed billing run", extra={"run_id": str(run.id)})
            return run

    async def recover(self) -> Recovery:
        """Mark failed every run left `running` that no transaction carries on any
        more (its ESCO-month's lock is free): a crash or a restart interrupted it,
        and its month is as it was before. Runs whose lock is held (another live
        process's, or a dead one's statement still finishing) are left alone and
        reported busy, to be looked at again."""
        everyone = {"esco_ids": tenant_setting(None)}
        async with self.engine.begin() as conn:
            await conn.execute(SET_TENANT, everyone)
            stale = (
                await conn.execute(
                    select(billing.RUNS.c.id, billing.RUNS.c.esco_id, billing.RUNS.c.month)
                    .where(billing.RUNS.c.status == BillingRunStatus.RUNNING)
                    .order_by(billing.RUNS.c.started_at)
                )
            ).all()
        recovery = Recovery()
        for row in stale:
            if row.id in self._tasks:
                continue
            async with self.engine.begin() as conn:
                await conn.execute(SET_TENANT, everyone)
                # Held until this transaction ends: no run of the month can start
                # while its stale row is being marked.
                if not await conn.scalar(select(billing.run_lock(row.esco_id, row.month))):
                    recovery.busy.append(row.id)
                    continue
                if await _mark_failed(conn, row.id, billing.INTERRUPTED) is None:
                    continue
                await Tx(conn, SYSTEM).audit(
                    "billingRunInterrupted",
                    "billing_run",
                    row.id,
                    {"month": row.month, "failed": billing.INTERRUPTED},
                    row.esco_id,
                )
            recovery.marked.append(row.id)
            log.warning("interrupted billing run marked failed", extra={"run_id": str(row.id)})
        return recovery

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Wait up to the grace period for the runs in progress, then cancel the
        rest: each is rolled back and recorded failed (`STOPPED`)."""
        grace = self.grace_s if grace_s is None else grace_s
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("waiting for billing runs", extra={"runs": len(tasks), "grace_s": grace})
        _, pending = await asyncio.wait(tasks, timeout=grace) if grace > 0 else (set(), tasks)
        for task in pending:
            task.cancel()
        if pending:
            # Their rollback and failure record; a run stuck beyond this is marked by
            # the next start-up.
            await asyncio.wait(pending, timeout=10)


async def _mark_failed(conn: AsyncConnection, run_id: uuid.UUID, message: str) -> Row | None:
    return (
        await conn.execute(
            update(billing.RUNS)
            .where(
                billing.RUNS.c.id == run_id,
                billing.RUNS.c.status == BillingRunStatus.RUNNING,
            )
            .values(
                status=BillingRunStatus.FAILED,
                error=message,
                finished_at=func.clock_timestamp(),
            )
            .returning(billing.RUNS)
        )
    ).first()


async def _discard(conn: AsyncConnection) -> None:
    """End a job's connection whatever state it is in: rolled back and pooled when it
    can be, otherwise invalidated (closing it ends its transaction and locks)."""
    try:
        await conn.rollback()
        await conn.close()
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

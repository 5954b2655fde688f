"""`flows-graphql`: serve, migrate, seed, export the schema, issue tokens.

A failure a person can fix (a setting, an unreachable database, a port in use) is one
line on stderr naming what to change, and a non-zero exit; `--debug` shows the
traceback as well."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from . import logs
from .config import ConfigError, Settings


class Unusable(Exception):
    """A failure the user can act on: its message says what to change."""


def money(amount: Decimal) -> str:
    """An amount as shown to people: 2 decimals, half up (the stored value is exact)."""
    return str(Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def check_port_free(host: str, port: int, what: str) -> None:
    """Refuse early, before anything is printed, when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As uvicorn binds: a port in TIME_WAIT is free, one listened on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Unusable(
                    f"port {port} on {host} is in use: stop what listens there or choose "
                    f"another {what}"
                ) from exc
            if exc.errno == errno.EACCES:
                raise Unusable(
                    f"port {port} on {host} needs privileges: choose one above 1023 ({what})"
                ) from exc
            raise Unusable(
                f"cannot listen on {host}:{port} ({exc.strerror}): check {what}"
            ) from exc


def _engine(settings: Settings, url: str) -> AsyncEngine:
    from .db.engine import create_engine

    return create_engine(settings, url)


async def _migrate(settings: Settings, url: str) -> None:
    from .db.migrate import upgrade

    # On the server itself: a long migration does not hold a pooled server connection
    # (nor meet the pooler's own timeouts).
    engine = _engine(settings, settings.direct_url(url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _seed_demo(settings: Settings, url: str, *, only_if_empty: bool) -> bool:
    """Seed the demo data; returns False when data was already there."""
    from .db.engine import create_sessionmaker
    from .db.models import Esco
    from .demo import bill_demo, seed_demo
    from .rules.clock import london_today

    engine = _engine(settings, url)
    today = london_today()
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if only_if_empty and await session.scalar(select(func.count()).select_from(Esco)):
                return False
            await seed_demo(session, today=today)
        # The demo's months are billed by the real billing service, like any month.
        await bill_demo(engine, today=today)
        return True
    finally:
        await engine.dispose()


async def _demo_tokens(settings: Settings, url: str) -> dict[str, str]:
    from .auth.tokens import issue_token, jwt_secret
    from .db.models import Account, Customer, CustomerAccount, Esco
    from .demo import DEMO_ESCO

    engine = _engine(settings, url)
    try:
        async with engine.connect() as conn:
            # The demo's first ESCO (the README's examples use it), else the first one.
            esco = (
                await conn.execute(
                    select(Esco.id, Esco.code).order_by(Esco.code != DEMO_ESCO, Esco.code)
                )
            ).first()
            customer = (
                await conn.execute(
                    select(Customer.id, Customer.email)
                    .join(CustomerAccount, CustomerAccount.customer_id == Customer.id)
                    .join(Account, Account.id == CustomerAccount.account_id)
                    .where(
                        CustomerAccount.role == "occupier",
                        CustomerAccount.end_date.is_(None),
                        Customer.status == "active",
                        Account.esco_id == (esco.id if esco else None),
                    )
                    .order_by(Customer.email)
                    .limit(1)
                )
            ).first()
    finally:
        await engine.dispose()
    secret = jwt_secret(settings)
    ttl = timedelta(seconds=settings.max_token_lifetime_s)  # the longest the server takes
    tokens = {"admin": issue_token(secret, sub="demo-admin", role="admin", ttl=ttl)}
    if esco is not None:
        tokens[f"operator ({esco.code})"] = issue_token(
            secret,
            sub=f"demo-operator-{esco.code}",
            role="operator",
            escos=[str(esco.id)],
            ttl=ttl,
        )
    if customer is not None:
        tokens[f"customer ({customer.email})"] = issue_token(
            secret, sub=customer.email, role="customer", customer_id=str(customer.id), ttl=ttl
        )
    return tokens


WORKER_HEALTHCHECK_S = 30


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .db.embedded import database_url
    from .http_protocol import OneWriteProtocol

    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers < 1:
        raise Unusable("--workers must be at least 1")
    check_port_free(host, port, "with --port or FLOWS_PORT")
    if settings.metrics_port is not None:
        check_port_free(host, settings.metrics_port, "with FLOWS_METRICS_PORT")
    url = database_url(settings)
    asyncio.run(_migrate(settings, url))
    if args.demo and asyncio.run(_seed_demo(settings, url, only_if_empty=True)):
        print("Seeded the demo data.", flush=True)
    print(f"\nflows-graphql: GraphQL at http://{host}:{port}/graphql", flush=True)
    if args.demo:
        print("\nDemo tokens (header `Authorization: Bearer <token>`):", flush=True)
        for who, token in asyncio.run(_demo_tokens(settings, url)).items():
            print(f"  {who}:\n    {token}", flush=True)
    print(flush=True)
    # Workers (and the single-process server) build the app from the environment.
    os.environ["DATABASE_URL"] = url
    _metrics_for_all_workers(host, settings)
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again; with
    # this handler that ends in a normal exit, so the embedded PostgreSQL is stopped
    # by its exit hook instead of being left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "flows_graphql.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_config=None,
        server_header=False,  # no "server: uvicorn" (docs/limits.md)
        # A response's head and body in one write (http_protocol.py).
        http=OneWriteProtocol,
        # In-flight requests may finish within it; the app answers those that do not
        # just before it ends (app._drain_on_exit_signals).
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        # A worker must answer the supervisor's ping within this, or it is killed and
        # started again: on a busy host a new worker's start-up (a fresh interpreter
        # importing the app) takes longer than uvicorn's 5 s, and workers were killed
        # over and over before they served anything.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
    return 0


def _metrics_for_all_workers(host: str, settings: Settings) -> None:
    """Every worker writes its metrics into one directory, summed by any scrape; it is
    set before anything imports prometheus_client (metrics.py)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Samples of an earlier run would be summed into this one's.
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="flows-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        import atexit

        atexit.register(shutil.rmtree, directory, True)
    if settings.metrics_port is not None:
        from .metrics import start_metrics_server

        start_metrics_server(host, settings.metrics_port)
        print(
            f"flows-graphql: metrics at http://{host}:{settings.metrics_port}/metrics", flush=True
        )


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .db.embedded import database_url

    asyncio.run(_migrate(settings, database_url(settings)))
    print("database is at the latest migration")
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from .db.embedded import database_url

    if not args.demo:
        print("nothing to seed: pass --demo", file=sys.stderr)
        return 2
    url = database_url(settings)
    asyncio.run(_migrate(settings, url))
    if asyncio.run(_seed_demo(settings, url, only_if_empty=True)):
        print("seeded the demo data")
    else:
        print("the database already holds ESCOs; demo data not seeded")
    return 0


def cmd_export_schema(args: argparse.Namespace, settings: Settings) -> int:
    from .schema import schema

    text = schema.as_str() + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from .auth.tokens import issue_token, jwt_secret
    from .db.embedded import database_url
    from .db.models import Customer, Esco

    async def lookup() -> tuple[list[str] | None, str | None, str]:
        engine = _engine(settings, database_url(settings))
        try:
            async with engine.connect() as conn:
                escos: list[str] | None = None
                customer_id: str | None = None
                sub = args.sub or f"cli-{args.role}"
                if args.esco:
                    esco_id = (
                        await conn.execute(select(Esco.id).where(Esco.code == args.esco))
                    ).scalar()
                    if esco_id is None:
                        raise SystemExit(f"no ESCO with code {args.esco!r}")
                    escos = [str(esco_id)]
                if args.customer:
                    stmt = select(Customer.id).where(
                        func.lower(Customer.email) == args.customer.lower()
                    )
                    if escos:
                        stmt = stmt.where(Customer.esco_id == escos[0])
                    found = (await conn.execute(stmt)).scalars().all()
                    if len(found) != 1:
                        raise SystemExit(
                            f"{len(found)} customers with email {args.customer!r}; "
                            "name the ESCO with --esco"
                        )
                    customer_id = str(found[0])
                    sub = args.sub or args.customer.lower()
                return escos, customer_id, sub
        finally:
            await engine.dispose()

    if args.role == "operator" and not args.esco:
        print("an operator token needs --esco CODE", file=sys.stderr)
        return 2
    # The server refuses tokens living longer than its maximum: default to it.
    hours = settings.max_token_lifetime_s / 3600 if args.hours is None else args.hours
    if not 0 < hours * 3600 <= settings.max_token_lifetime_s:
        print(
            f"--hours must be more than 0 and at most {settings.max_token_lifetime_s / 3600:g} "
            "(FLOWS_MAX_TOKEN_LIFETIME_S)",
            file=sys.stderr,
        )
        return 2
    if args.role == "customer" and not args.customer:
        print("a customer token needs --customer EMAIL", file=sys.stderr)
        return 2
    escos, customer_id, sub = asyncio.run(lookup())
    token = issue_token(
        jwt_secret(settings),
        sub=sub,
        role=args.role,
        escos=escos if args.role == "operator" else None,
        customer_id=customer_id if args.role == "customer" else None,
        ttl=timedelta(hours=hours),
    )
    print(token)
    return 0


class PlainProgress:
    """Progress as plain lines (stderr is a file or a pipe): one per batch."""

    def __call__(self, done: int, total: int) -> None:
        sys.stderr.write(f"billed {done}/{total} meters\n")
        sys.stderr.flush()

    def close(self) -> None:
        return None


class ProgressBar:
    """A one-line progress bar on stderr, redrawn in place (on a terminal only): the
    meters done of the meters to bill, the figures the API shows as
    `BillingRun.progress`."""

    WIDTH = 30

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{total} meters   ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def cmd_billing_run(args: argparse.Namespace, settings: Settings) -> int:
    from .auth.viewer import SYSTEM
    from .db.embedded import database_url
    from .db.models import Esco
    from .db.models.enums import BillingRunStatus
    from .rules.clock import london_today
    from .services.billing_jobs import BillingJobs
    from .services.problems import Rejected

    try:
        month = date.fromisoformat(args.month + "-01")
    except ValueError:
        print(f"--month must be YYYY-MM, not {args.month!r}", file=sys.stderr)
        return 2

    async def bill() -> int:
        engine = _engine(settings, database_url(settings))
        # The API's path: the same checks, lock, bound (FLOWS_BILLING_TIMEOUT_S) and
        # progress; Ctrl-C rolls the run back and records it failed.
        jobs = BillingJobs(engine, settings)
        bar: ProgressBar | PlainProgress = ProgressBar() if sys.stderr.isatty() else PlainProgress()
        try:
            async with engine.connect() as conn:
                esco_id = await conn.scalar(select(Esco.id).where(Esco.code == args.esco))
            if esco_id is None:
                print(f"no ESCO with code {args.esco!r}", file=sys.stderr)
                return 1
            try:
                job = await jobs.start(SYSTEM, esco_id, month, london_today, listener=bar)
            except Rejected as rejected:
                for problem in rejected.problems:
                    print(f"{problem.code.value}: {problem.message}", file=sys.stderr)
                return 1
            print(f"billing {args.esco} {args.month}: run {job.run.id}", file=sys.stderr)
            run = await job.task
            bar.close()
            if run.status != BillingRunStatus.COMPLETED:
                print(f"run {run.id} {run.status.value}: {run.error}", file=sys.stderr)
                return 1
            skipped = run.skipped_meters
            print(
                f"billed {args.esco} {args.month}: {run.customers_billed} customers, "
                f"total {money(run.total)} GBP, {len(skipped)} meters skipped (run {run.id})"
            )
            for entry in skipped:
                print(f"  skipped meter {entry['meter_id']}: {entry['reason']}")
            return 0
        finally:
            await jobs.shutdown(grace_s=0)
            await engine.dispose()

    return asyncio.run(bill())


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    import contextlib

    from .auth.viewer import SYSTEM
    from .db.embedded import database_url
    from .exports import ExportRefused, export_csv
    from .rules.clock import london_today

    async def work(out: Any) -> int:
        engine = _engine(settings, database_url(settings))
        lines = 0
        try:
            chunks = await export_csv(
                engine, SYSTEM, args.kind, args.esco, args.month, london_today
            )
            async for chunk in chunks:
                out.write(chunk)
                lines += chunk.count(b"\n")
            out.flush()
        except ExportRefused as refused:
            print(f"{refused.code}: {refused.message}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        if args.output:
            print(f"wrote {lines - 1} rows to {args.output}", file=sys.stderr)
        return 0

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
        return asyncio.run(work(out))


def cmd_apikey(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from .auth.apikeys import create_key, list_keys, revoke_key
    from .db.embedded import database_url
    from .db.models import Esco

    async def work() -> int:
        engine = _engine(settings, database_url(settings))
        try:
            async with engine.begin() as conn:
                esco_id = None
                if getattr(args, "esco", None):
                    esco_id = await conn.scalar(select(Esco.id).where(Esco.code == args.esco))
                    if esco_id is None:
                        print(f"no ESCO with code {args.esco!r}", file=sys.stderr)
                        return 1
                if args.apikey_command == "create":
                    assert esco_id is not None  # --esco is required for create
                    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
                    try:
                        issued = await create_key(conn, esco_id, scopes, args.name)
                    except ValueError as exc:
                        print(str(exc), file=sys.stderr)
                        return 2
                    print(f"key id {issued.id} for {args.esco} ({', '.join(sorted(scopes))})")
                    print("Keep this key now; it is not shown again:")
                    print(issued.key)
                elif args.apikey_command == "list":
                    for row in await list_keys(conn, esco_id):
                        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                        print(
                            f"{row.id}  {row.name}  {','.join(row.scopes)}  "
                            f"created {row.created_at:%Y-%m-%d}  {state}"
                        )
                else:
                    try:
                        key_id = uuid.UUID(args.key_id)
                    except ValueError:
                        print(f"not a key id: {args.key_id!r}", file=sys.stderr)
                        return 2
                    if not await revoke_key(conn, key_id):
                        print("no active key with this id", file=sys.stderr)
                        return 1
                    print(f"revoked {key_id} (it stops working within a minute)")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(work())


def cmd_webhooks_work(args: argparse.Namespace, settings: Settings) -> int:
    from .db.embedded import database_url
    from .db.models.events import EVENTS_CHANNEL
    from .db.urls import asyncpg_dsn
    from .live.broker import Broker
    from .live.webhooks import WebhookWorker

    async def work() -> int:
        dsn = asyncpg_dsn(database_url(settings))
        # The process's one listening connection wakes the worker when events commit;
        # the worker polls as well (a notification lost with a connection).
        broker = Broker(dsn, retention=timedelta(days=settings.event_retention_days))
        worker = WebhookWorker(dsn, settings)
        broker.listen(EVENTS_CHANNEL, worker.wake)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await broker.start()
        await worker.start()
        print("flows-graphql: delivering webhooks (SIGTERM or Ctrl-C stops)", flush=True)
        try:
            await stop.wait()
        finally:
            await worker.stop()
            await broker.stop()
        return 0

    return asyncio.run(work())


def _positive_hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of hours, not {text!r}") from None
    if not hours > 0:  # the most is FLOWS_MAX_TOKEN_LIFETIME_S (cmd_token)
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return hours


def _version() -> str:
    try:
        return version("flows-graphql")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flows-graphql", description=__doc__)
    parser.add_argument("--version", action="version", version=f"flows-graphql {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure as well"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then run the HTTP server")
    serve.add_argument("--demo", action="store_true", help="seed demo data when empty")
    serve.add_argument("--host", help="bind address (FLOWS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (FLOWS_PORT, default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the schema to the latest migration")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="load data")
    seed.add_argument("--demo", action="store_true", help="the demo data set")
    seed.set_defaults(func=cmd_seed)

    export = sub.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.set_defaults(func=cmd_export_schema)

    token = sub.add_parser("token", help="issue a JWT for a role")
    token.add_argument("--role", required=True, choices=["admin", "operator", "customer"])
    token.add_argument("--esco", help="ESCO code (operators; narrows --customer)")
    token.add_argument("--customer", help="customer email (customers)")
    token.add_argument("--sub", help="subject claim (default: derived)")
    token.add_argument(
        "--hours",
        type=_positive_hours,
        help="lifetime, > 0 (default and maximum: FLOWS_MAX_TOKEN_LIFETIME_S)",
    )
    token.set_defaults(func=cmd_token)

    billing = sub.add_parser("billing", help="billing runs").add_subparsers(
        dest="billing_command", required=True
    )
    billing_run = billing.add_parser("run", help="bill one ESCO for one month")
    billing_run.add_argument("--esco", required=True, help="ESCO code")
    billing_run.add_argument("--month", required=True, help="YYYY-MM")
    billing_run.set_defaults(func=cmd_billing_run)

    csv_export = sub.add_parser("export", help="one ESCO's month as CSV (costs, payments, usage)")
    csv_export.add_argument("kind", choices=["costs", "payments", "usage"])
    csv_export.add_argument("--esco", required=True, help="ESCO code")
    csv_export.add_argument("--month", required=True, help="YYYY-MM")
    csv_export.add_argument("-o", "--output", help="file to write (default: standard output)")
    csv_export.set_defaults(func=cmd_export)

    apikey = sub.add_parser("apikey", help="partner API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    create = apikey.add_parser("create", help="issue a key (shown once)")
    create.add_argument("--esco", required=True, help="ESCO code the key is bound to")
    create.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: read, usage:write, payments:write, webhooks:write",
    )
    create.add_argument("--name", default="partner", help="what the key is for")
    create.set_defaults(func=cmd_apikey)
    listing = apikey.add_parser("list", help="list keys")
    listing.add_argument("--esco", help="only this ESCO's keys")
    listing.set_defaults(func=cmd_apikey)
    revoke = apikey.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", help="the key id printed by create or list")
    revoke.set_defaults(func=cmd_apikey)
    webhooks = sub.add_parser("webhooks", help="partner webhooks").add_subparsers(
        dest="webhooks_command", required=True
    )
    work = webhooks.add_parser(
        "work", help="deliver webhooks in this process (as serve does), until stopped"
    )
    work.set_defaults(func=cmd_webhooks_work)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()
    try:
        try:
            settings = Settings.from_env()
        except ValueError as exc:  # each setting's refusal names its variable
            return _fail(args, exc, str(exc), 2)
        result: int = args.func(args, settings)
        return result
    except (ConfigError, Unusable) as exc:
        return _fail(args, exc, str(exc), 2)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .db.failures import explain

        reason = explain(exc)
        if reason is not None:
            return _fail(args, exc, reason, 1)
        return _fail(
            args,
            exc,
            f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            1,
        )


def _fail(args: argparse.Namespace, exc: BaseException, message: str, code: int) -> int:
    if args.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"flows-graphql: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

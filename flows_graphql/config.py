"""Settings, read once from the environment (see README "Configuration").

A bad value is refused with a `ConfigError` naming the variable and what it may be, so
the command line can print one line a person can act on."""

from __future__ import annotations

import ipaddress
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, on/off), not {value!r}")


def _int(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name} must be {bounds}, not {number}")
    return number


def _optional_int(name: str, *, minimum: int = 1, maximum: int | None = None) -> int | None:
    if not (os.environ.get(name) or "").strip():
        return None
    return _int(name, 0, minimum=minimum, maximum=maximum)


# Budgets are GraphQL Ints (32-bit) in `rateLimit`.
MAX_BUDGET = 2**31 - 1
PG_SCHEMES = ("postgresql", "postgres")


def check_database_url(url: str, name: str = "DATABASE_URL", *, database: bool = True) -> str:
    """The URL when it names a PostgreSQL database (or, without `database`, a server);
    a ConfigError saying why not."""
    example = "postgresql://user:password@host:5432/database"
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise ConfigError(f"{name} is not a database URL; write it as {example}") from None
    scheme = parsed.drivername.split("+", 1)[0]
    if scheme not in PG_SCHEMES:
        raise ConfigError(
            f"{name} names a {scheme!r} database; flows-graphql runs on PostgreSQL only: {example}"
        )
    if database and not parsed.database:
        raise ConfigError(f"{name} names no database; add it after the host: {example}")
    return url.strip()


# Connection poolers the server knows how to work through (docs/pooling.md).
POOLERS = ("none", "pgbouncer")


def _rate_limit_keys(name: str) -> dict[str, int]:
    """`<key id>=<points>,…`: budgets of single partner keys, over their tier's."""
    value = (os.environ.get(name) or "").strip()
    budgets: dict[str, int] = {}
    if not value:
        return budgets
    for item in value.split(","):
        key, _, points = item.partition("=")
        try:
            key_id = str(uuid.UUID(key.strip()))
            budget = int(points.strip())
        except ValueError:
            raise ConfigError(
                f"{name} must be `<key id>=<points>` pairs separated by commas, not {item!r}"
            ) from None
        if not 1 <= budget <= MAX_BUDGET:
            raise ConfigError(f"{name}: the budget of {key_id} must be from 1 to {MAX_BUDGET}")
        budgets[key_id] = budget
    return budgets


@dataclass(frozen=True)
class RateLimits:
    """Cost points each principal may spend per window (flows_graphql/ratelimit.py)."""

    window_s: int = 60
    customer: int = 50_000
    operator: int = 250_000
    partner: int = 100_000
    admin: int = 1_000_000
    # Partner key id → its own budget (FLOWS_RATE_LIMIT_KEYS).
    keys: dict[str, int] = field(default_factory=dict)
    enabled: bool = True

    def budget(self, role: str, sub: str) -> int:
        if role == "partner" and sub in self.keys:
            return self.keys[sub]
        return int(getattr(self, role, self.customer))


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{name} must be more than 0 seconds, not {value.strip()}")
    return seconds


def _positive_seconds(name: str, default: float) -> float:
    seconds = _seconds(name, default)
    if not 0 < seconds < 10**6:
        raise ValueError(f"{name} must be a number of seconds above 0, not {seconds!r}")
    return seconds


# Asymmetric algorithms an identity provider may sign with. Never `none`, never HS*:
# a provider's public keys are public, so an HMAC "signed" with one proves nothing.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ISSUER_KEYS = frozenset({"issuer", "audience", "jwks_uri", "algorithms"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(url: object, what: str) -> str:
    """An https URL, or http on a loopback host (development and tests)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"{what} must be a URL")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return url
    raise ValueError(f"{what} must be https:// (http:// only on a loopback host): {url!r}")


@dataclass(frozen=True)
class OidcIssuer:
    """One identity provider whose tokens the API accepts (FLOWS_OIDC_ISSUERS)."""

    issuer: str
    audience: str
    # None: found through `<issuer>/.well-known/openid-configuration`.
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS

    @classmethod
    def parse(cls, item: object) -> OidcIssuer:
        if not isinstance(item, dict):
            raise ValueError("each FLOWS_OIDC_ISSUERS entry must be an object")
        unknown = sorted(set(item) - ISSUER_KEYS)
        if unknown:
            raise ValueError(f"FLOWS_OIDC_ISSUERS: unknown keys {unknown}")
        issuer = checked_url(item.get("issuer"), "issuer")
        audience = item.get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ValueError(f"FLOWS_OIDC_ISSUERS: {issuer} needs an `audience`")
        jwks_uri = item.get("jwks_uri")
        if jwks_uri is not None:
            jwks_uri = checked_url(jwks_uri, "jwks_uri")
        algorithms = item.get("algorithms", list(DEFAULT_ALGORITHMS))
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or not set(algorithms) <= ASYMMETRIC_ALGORITHMS
        ):
            raise ValueError(
                f"FLOWS_OIDC_ISSUERS: {issuer}'s algorithms must be among "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
        return cls(issuer, audience, jwks_uri, tuple(algorithms))


def parse_issuers(text: str | None) -> tuple[OidcIssuer, ...]:
    if not text or not text.strip():
        return ()
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"FLOWS_OIDC_ISSUERS is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError("FLOWS_OIDC_ISSUERS must be a JSON list")
    issuers = tuple(OidcIssuer.parse(i) for i in items)
    if len({i.issuer for i in issuers}) != len(issuers):
        raise ValueError("FLOWS_OIDC_ISSUERS names an issuer twice")
    return issuers


def parse_origins(text: str) -> tuple[str, ...]:
    """Exact origins (`scheme://host[:port]`), comma- or space-separated; no wildcard."""
    out = []
    for origin in text.replace(",", " ").split():
        parts = urlsplit(origin)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or "*" in origin
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"FLOWS_CORS_ORIGINS: {origin!r} is not an exact origin like https://app.example"
            )
        out.append(origin)
    return tuple(out)


# Seconds after each failed webhook attempt before the next (docs/webhooks.md): eight
# tries over about a day.
WEBHOOK_RETRIES = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def _schedule(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = (os.environ.get(name) or "").strip()
    if not value:
        return default
    try:
        delays = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise ConfigError(
            f"{name} must be seconds separated by commas (e.g. 5,300,1800), not {value!r}"
        ) from None
    if not all(0 < d <= 7 * 86400 for d in delays) or len(delays) > 50:
        raise ConfigError(f"{name}: at most 50 delays, each above 0 and at most a week")
    return delays


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    # The server itself, for what needs a session of its own (LISTEN, migrations) when
    # DATABASE_URL is a transaction pooler; None: DATABASE_URL (docs/pooling.md).
    database_direct_url: str | None = None
    # `pgbouncer`: DATABASE_URL is a transaction pooler (no prepared statements kept,
    # no settings in the startup packet).
    database_pooler: str = "none"
    data_dir: Path = Path(".flows")
    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    debug_sql: bool = False
    jwt_secret: str | None = None
    graphiql: bool = True
    default_page_size: int = 20
    max_page_size: int = 100
    statement_timeout_ms: int = 5000
    db_pool_size: int = 10
    # Input rows the mutations of one request may carry, aliases counted.
    max_input_rows: int = 10_000
    # A JWT whose `exp` is further ahead than this is refused (docs/limits.md).
    max_token_lifetime_s: int = 24 * 3600
    # Client-side bounds on the database (docs/failures.md): a server that stops
    # answering costs a request seconds, not as long as it is frozen.
    lock_timeout_ms: int = 0  # 0: lock waits end at the statement timeout
    # A transaction of the API left idle this long is ended by the server (a request
    # that lost its way must not hold locks or a snapshot); 0: never.
    idle_in_transaction_timeout_ms: int = 60_000
    db_connect_timeout_s: float = 5.0
    db_command_timeout_s: float | None = None  # None: the statement timeout + 1 s
    db_pool_timeout_s: float = 5.0
    request_timeout_s: float = 15.0
    # A CSV export's whole time, streaming included: a client that stops reading holds
    # the export's snapshot (a connection) at most this long.
    export_timeout_s: float = 300.0
    readyz_timeout_s: float = 2.0
    shutdown_grace_s: float = 10.0
    # Queries walk breadth-first (breadth_first.py); off = graphql-core's walk only.
    breadth_first: bool = True
    # Queries whose every field compiles run as one SQL statement (compiled.py); only
    # with breadth_first (off = graphql-core's walk only).
    compiled: bool = True
    # Live updates (docs/live-updates.md).
    event_retention_days: int = 30
    ws_max_subscriptions: int = 20
    ws_max_connections: int = 10
    ws_ping_seconds: float = 15.0
    ws_idle_seconds: float = 60.0
    ws_recheck_seconds: float = 30.0
    # Partner webhooks (docs/webhooks.md). Loopback and http:// targets only where this
    # is on (development and tests; refused in production).
    webhooks_allow_loopback: bool = False
    webhooks_retry_schedule: tuple[float, ...] = WEBHOOK_RETRIES
    webhooks_disable_after_s: float = 5 * 86400.0
    webhooks_timeout_s: float = 10.0
    webhooks_poll_s: float = 5.0
    webhooks_concurrency: int = 8
    # The delivery worker runs inside `serve` unless this is off.
    webhooks_worker: bool = True
    # Identity providers whose RS256/ES256/EdDSA tokens are accepted (docs/identity.md).
    oidc_issuers: tuple[OidcIssuer, ...] = ()
    # Browser origins allowed by CORS; None: localhost origins in development, none in
    # production.
    cors_origins: tuple[str, ...] | None = None
    # How long a JWKS or discovery fetch may take before the request is answered 503.
    oidc_timeout_s: float = 5.0
    # Rate-limit budgets, shared by all processes through Redis when it is named.
    redis_url: str | None = None
    # Prefix of every Redis key the server writes (several deployments, one Redis).
    redis_prefix: str = "flows:rl:"
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # /metrics: behind this bearer token, or on a port of its own (flows_graphql/metrics.py).
    metrics_token: str | None = None
    metrics_port: int | None = None
    # A billing run's bound: its statement timeout and the longest it may take in all
    # (docs/billing-runs.md). Not the read path's statement_timeout_ms.
    billing_timeout_s: float = 600.0
    # On shutdown, how long running billing runs are waited for before they are
    # cancelled (rolled back and marked failed).
    billing_shutdown_grace_s: float = 15.0
    # The manifest of trusted documents (docs/trusted-documents.md), and whether the
    # app's users (customer and unlinked tokens) may run only those.
    trusted_documents: Path | None = None
    require_trusted_documents: bool = False
    # A streaming standby for queries (docs/scaling.md, flows_graphql/db/replica.py):
    # past max_lag_s behind, reads go to the primary; a client's read after its own
    # write waits up to wait_ms for the standby, then reads from the primary.
    database_replica_url: str | None = None
    replica_max_lag_s: float = 5.0
    replica_wait_ms: int = 200
    replica_check_interval_s: float = 1.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def behind_pooler(self) -> bool:
        return self.database_pooler != "none"

    def direct_url(self, url: str) -> str:
        """The URL of `url`'s database on the server itself (FLOWS_DATABASE_DIRECT_URL;
        one naming no database takes `url`'s)."""
        if self.database_direct_url is None:
            return url
        direct = make_url(self.database_direct_url)
        if not direct.database:
            direct = direct.set(database=make_url(url).database)
        return direct.render_as_string(hide_password=False)

    @property
    def command_timeout_s(self) -> float:
        """asyncpg's timeout of one statement: past the server's own statement timeout,
        so a server that answers reports it (TIMEOUT) and one that does not is given up."""
        if self.db_command_timeout_s is not None:
            return self.db_command_timeout_s
        return self.statement_timeout_ms / 1000 + 1.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get("FLOWS_ENV", "development").strip() or "development"
        if env not in {"development", "production"}:
            raise ConfigError(f"FLOWS_ENV must be development or production, not {env!r}")
        url = (os.environ.get("DATABASE_URL") or "").strip() or None
        if url is not None:
            check_database_url(url)
        direct_url = (os.environ.get("FLOWS_DATABASE_DIRECT_URL") or "").strip() or None
        if direct_url is not None:
            check_database_url(direct_url, "FLOWS_DATABASE_DIRECT_URL", database=False)
        pooler = (os.environ.get("FLOWS_DATABASE_POOLER") or "none").strip().lower()
        if pooler not in POOLERS:
            raise ConfigError(
                f"FLOWS_DATABASE_POOLER must be one of {', '.join(POOLERS)}, not {pooler!r}"
            )
        replica_url = (os.environ.get("FLOWS_DATABASE_REPLICA_URL") or "").strip() or None
        if replica_url is not None:
            check_database_url(replica_url, "FLOWS_DATABASE_REPLICA_URL")
        redis_url = (os.environ.get("FLOWS_REDIS_URL") or "").strip() or None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"FLOWS_REDIS_URL must be a redis:// (or rediss://) URL, not {redis_url!r}"
            )
        default_page = _int("FLOWS_DEFAULT_PAGE_SIZE", 20)
        max_page = _int("FLOWS_MAX_PAGE_SIZE", 100)
        if default_page > max_page:
            raise ConfigError(
                f"FLOWS_DEFAULT_PAGE_SIZE ({default_page}) must not be over "
                f"FLOWS_MAX_PAGE_SIZE ({max_page})"
            )
        allow_loopback = _flag("FLOWS_WEBHOOKS_ALLOW_LOOPBACK")
        if allow_loopback and env == "production":
            raise ConfigError(
                "FLOWS_WEBHOOKS_ALLOW_LOOPBACK is for development and tests; in production "
                "webhooks go to public https:// addresses only (unset it)"
            )
        manifest = (os.environ.get("FLOWS_TRUSTED_DOCUMENTS") or "").strip() or None
        require_trusted = _flag("FLOWS_REQUIRE_TRUSTED_DOCUMENTS")
        if require_trusted and manifest is None:
            raise ConfigError(
                "FLOWS_REQUIRE_TRUSTED_DOCUMENTS needs the manifest: set FLOWS_TRUSTED_DOCUMENTS"
            )
        return cls(
            database_url=url,
            database_direct_url=direct_url,
            database_pooler=pooler,
            data_dir=Path(os.environ.get("FLOWS_DATA_DIR") or ".flows"),
            env=env,
            host=os.environ.get("FLOWS_HOST") or "127.0.0.1",
            port=_int("FLOWS_PORT", 8000, maximum=65535),
            debug_sql=_flag("FLOWS_DEBUG_SQL"),
            jwt_secret=os.environ.get("FLOWS_JWT_SECRET") or None,
            graphiql=_flag("FLOWS_GRAPHIQL", default=env != "production"),
            default_page_size=default_page,
            max_page_size=max_page,
            statement_timeout_ms=_int("FLOWS_STATEMENT_TIMEOUT_MS", 5000, minimum=0),
            db_pool_size=_int("FLOWS_DB_POOL_SIZE", 10),
            max_input_rows=_int("FLOWS_MAX_INPUT_ROWS", 10_000),
            max_token_lifetime_s=_int("FLOWS_MAX_TOKEN_LIFETIME_S", 24 * 3600),
            lock_timeout_ms=_int("FLOWS_LOCK_TIMEOUT_MS", 0, minimum=0),
            idle_in_transaction_timeout_ms=_int(
                "FLOWS_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000, minimum=0
            ),
            db_connect_timeout_s=_seconds("FLOWS_DB_CONNECT_TIMEOUT_S", 5.0),
            db_command_timeout_s=(
                _seconds("FLOWS_DB_COMMAND_TIMEOUT_S", 0.0)
                if os.environ.get("FLOWS_DB_COMMAND_TIMEOUT_S")
                else None
            ),
            db_pool_timeout_s=_seconds("FLOWS_DB_POOL_TIMEOUT_S", 5.0),
            request_timeout_s=_seconds("FLOWS_REQUEST_TIMEOUT_S", 15.0),
            export_timeout_s=_seconds("FLOWS_EXPORT_TIMEOUT_S", 300.0),
            readyz_timeout_s=_seconds("FLOWS_READYZ_TIMEOUT_S", 2.0),
            shutdown_grace_s=_seconds("FLOWS_SHUTDOWN_GRACE_S", 10.0),
            breadth_first=_flag("FLOWS_BREADTH_FIRST", default=True),
            compiled=_flag("FLOWS_COMPILED", default=True),
            event_retention_days=_int("FLOWS_EVENT_RETENTION_DAYS", 30),
            ws_max_subscriptions=_int("FLOWS_WS_MAX_SUBSCRIPTIONS", 20),
            ws_max_connections=_int("FLOWS_WS_MAX_CONNECTIONS", 10),
            ws_ping_seconds=_int("FLOWS_WS_PING_SECONDS", 15),
            ws_idle_seconds=_int("FLOWS_WS_IDLE_SECONDS", 60),
            ws_recheck_seconds=_int("FLOWS_WS_RECHECK_SECONDS", 30),
            webhooks_allow_loopback=allow_loopback,
            webhooks_retry_schedule=_schedule("FLOWS_WEBHOOKS_RETRY_SCHEDULE", WEBHOOK_RETRIES),
            webhooks_disable_after_s=_seconds("FLOWS_WEBHOOKS_DISABLE_AFTER_S", 5 * 86400.0),
            webhooks_timeout_s=_seconds("FLOWS_WEBHOOKS_TIMEOUT_S", 10.0),
            webhooks_poll_s=_seconds("FLOWS_WEBHOOKS_POLL_S", 5.0),
            webhooks_concurrency=_int("FLOWS_WEBHOOKS_CONCURRENCY", 8, maximum=256),
            webhooks_worker=_flag("FLOWS_WEBHOOKS_WORKER", default=True),
            oidc_issuers=parse_issuers(os.environ.get("FLOWS_OIDC_ISSUERS")),
            oidc_timeout_s=float(os.environ.get("FLOWS_OIDC_TIMEOUT_S") or 5.0),
            cors_origins=(
                parse_origins(os.environ["FLOWS_CORS_ORIGINS"])
                if "FLOWS_CORS_ORIGINS" in os.environ
                else None
            ),
            redis_url=redis_url,
            redis_prefix=os.environ.get("FLOWS_REDIS_PREFIX") or "flows:rl:",
            rate_limits=RateLimits(
                window_s=_int("FLOWS_RATE_LIMIT_WINDOW_S", 60, maximum=86_400),
                customer=_int("FLOWS_RATE_LIMIT_CUSTOMER", 50_000, maximum=MAX_BUDGET),
                operator=_int("FLOWS_RATE_LIMIT_OPERATOR", 250_000, maximum=MAX_BUDGET),
                partner=_int("FLOWS_RATE_LIMIT_PARTNER", 100_000, maximum=MAX_BUDGET),
                admin=_int("FLOWS_RATE_LIMIT_ADMIN", 1_000_000, maximum=MAX_BUDGET),
                keys=_rate_limit_keys("FLOWS_RATE_LIMIT_KEYS"),
                enabled=_flag("FLOWS_RATE_LIMITS", default=True),
            ),
            metrics_token=(os.environ.get("FLOWS_METRICS_TOKEN") or "").strip() or None,
            metrics_port=_optional_int("FLOWS_METRICS_PORT", maximum=65535),
            billing_timeout_s=_positive_seconds("FLOWS_BILLING_TIMEOUT_S", 600.0),
            billing_shutdown_grace_s=_positive_seconds("FLOWS_BILLING_SHUTDOWN_GRACE_S", 15.0),
            trusted_documents=Path(manifest) if manifest is not None else None,
            require_trusted_documents=require_trusted,
            database_replica_url=replica_url,
            replica_max_lag_s=_positive_seconds("FLOWS_REPLICA_MAX_LAG_S", 5.0),
            replica_wait_ms=_int("FLOWS_REPLICA_WAIT_MS", 200, minimum=0, maximum=10_000),
            replica_check_interval_s=_positive_seconds("FLOWS_REPLICA_CHECK_INTERVAL_S", 1.0),
        )

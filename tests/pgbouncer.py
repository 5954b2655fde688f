"""PgBouncer in transaction pooling on a loopback port, in front of a PostgreSQL.

Used by tests/test_pooling.py (a PgBouncer of its own, one server connection for
everyone) and by .ci/run, which runs the whole suite through one:

    python tests/pgbouncer.py run -- pytest -m "not faults"

starts PgBouncer in front of 127.0.0.1:5432 (`* = host=… port=…`: every database of that
server, the suite's scratch databases included), runs the command with DATABASE_URL
pointing at it, FLOWS_DATABASE_POOLER=pgbouncer and FLOWS_DATABASE_DIRECT_URL at the
server itself (LISTEN, docs/pooling.md), and stops PgBouncer when the command ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BINARY = "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ini(
    port: int,
    *,
    upstream_host: str = "127.0.0.1",
    upstream_port: int = 5432,
    pool_size: int = 20,
    user: str = "postgres",
) -> str:
    """The configuration: transaction pooling, no authentication of its own (the
    machine's PostgreSQL trusts loopback; `any` logs every client in as `user`)."""
    return f"""[databases]
* = host={upstream_host} port={upstream_port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
max_db_connections = 0
server_lifetime = 3600
server_idle_timeout = 60
server_login_retry = 1
query_wait_timeout = 60
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
logfile =
pidfile =
admin_users = {user}
"""


def _wait_for(port: int, process: subprocess.Popen[bytes], deadline_s: float = 10) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port}")


@contextlib.contextmanager
def running(
    *, upstream_host: str = "127.0.0.1", upstream_port: int = 5432, pool_size: int = 20
) -> Iterator[int]:
    """A PgBouncer for the block; yields its port. Run as root (CI), it drops to the
    `postgres` user, since PgBouncer refuses to run as root."""
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="flows-pgbouncer-"))
    directory.chmod(0o755)
    config = directory / "pgbouncer.ini"
    config.write_text(
        ini(port, upstream_host=upstream_host, upstream_port=upstream_port, pool_size=pool_size)
    )
    config.chmod(0o644)
    command = [BINARY, str(config)]
    if os.geteuid() == 0:
        # The user it drops to must reach the upstream: a socket directory (the embedded
        # server's) is its owner's alone.
        user = "postgres"
        if upstream_host.startswith("/"):
            user = pwd.getpwuid(Path(upstream_host).stat().st_uid).pw_name
        command[1:1] = ["-u", user]
    log = (directory / "pgbouncer.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a command with the suite's database behind PgBouncer")
    run.add_argument("--upstream-host", default="127.0.0.1")
    run.add_argument("--upstream-port", type=int, default=5432)
    run.add_argument("--database", default="test")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("no command to run")
    with running(upstream_host=args.upstream_host, upstream_port=args.upstream_port) as port:
        env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/{args.database}",
            "FLOWS_DATABASE_POOLER": "pgbouncer",
            # No database named: each URL's own, on the server (the suite's scratch ones).
            "FLOWS_DATABASE_DIRECT_URL": f"postgresql://postgres@{args.upstream_host}:{args.upstream_port}",
        }
        print(f"--- PgBouncer (transaction pooling) on 127.0.0.1:{port}", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main())

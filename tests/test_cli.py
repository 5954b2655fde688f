"""The command line as a person meets it: run as a subprocess, failures are one line
naming what to fix, with a non-zero exit and no traceback (unless --debug)."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import socket
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy.engine import make_url

from flows_graphql.cli import money
from tests.support import ROOT
from tests.support.cli import one_line_failure, run
from tests.support.factories import build_esco


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_database(tmp_path):
    port = closed_port()
    result = run("migrate", env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"})
    line = one_line_failure(result, "DATABASE_URL", f"127.0.0.1:{port}", "connection refused")
    assert result.returncode == 1 and "start it" in line


def test_missing_database(database_url):
    url = make_url(database_url).set(database="no_such_database_i15")
    url = url.render_as_string(hide_password=False)
    result = run("token", "--role", "admin", env={"DATABASE_URL": url, "FLOWS_JWT_SECRET": "x"})
    one_line_failure(result, "no_such_database_i15", "does not exist", "createdb")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root@127.0.0.1:3306/flows", ("DATABASE_URL", "'mysql'", "PostgreSQL only")),
        ("not a url at all", ("DATABASE_URL", "is not a database URL")),
        ("postgresql://postgres@127.0.0.1:5432", ("DATABASE_URL", "names no database")),
    ],
)
def test_malformed_or_foreign_database_url(url, words):
    result = run("migrate", env={"DATABASE_URL": url})
    one_line_failure(result, *words)
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("FLOWS_PORT", "abc", ("FLOWS_PORT must be a whole number", "'abc'")),
        ("FLOWS_PORT", "70000", ("FLOWS_PORT must be from 1 to 65535",)),
        ("FLOWS_DB_POOL_SIZE", "0", ("FLOWS_DB_POOL_SIZE must be at least 1",)),
        ("FLOWS_DEBUG_SQL", "maybe", ("FLOWS_DEBUG_SQL must be 1 or 0",)),
        ("FLOWS_ENV", "staging", ("FLOWS_ENV must be development or production",)),
        ("FLOWS_METRICS_PORT", "x", ("FLOWS_METRICS_PORT must be a whole number",)),
    ],
)
def test_a_bad_setting_names_its_variable(name, value, words):
    result = run("export-schema", env={name: value})
    one_line_failure(result, *words)
    assert result.returncode == 2 and result.stdout == ""


def test_port_in_use_is_refused_before_any_token_is_printed(database_url, engine, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            "serve",
            "--demo",
            "--port",
            str(port),
            env={"DATABASE_URL": database_url, "FLOWS_DATA_DIR": str(tmp_path)},
        )
    one_line_failure(result, f"port {port}", "in use", "--port or FLOWS_PORT")
    assert result.stdout == ""  # no URL, no tokens


def test_debug_shows_the_traceback():
    port = closed_port()
    result = run(
        "--debug", "migrate", env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("flows-graphql: cannot reach")


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"flows-graphql \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


@pytest.mark.parametrize("hours", ["0", "-3", "soon"])
def test_token_hours_must_be_positive(hours):
    result = run("token", "--role", "admin", "--hours", hours, env={"FLOWS_JWT_SECRET": "x"})
    assert result.returncode == 2
    assert "--hours" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_money_is_shown_to_two_decimals_half_up():
    assert money(Decimal("1.005")) == "1.01"
    assert money(Decimal("2.344999")) == "2.34"
    assert money(Decimal("0")) == "0.00"
    assert money(Decimal("-0.125")) == "-0.13"


async def test_billing_run_prints_plain_lines_and_money_to_two_decimals(database_url, raw):
    esco = await build_esco(raw, "clib", customers=3, months=2)
    month = esco.months[0].strftime("%Y-%m")
    result = run(
        "billing", "run", "--esco", "clib", "--month", month, env={"DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stderr
    total = re.search(r"total (-?\d+\.\d+) GBP", result.stdout)
    assert total and re.fullmatch(r"-?\d+\.\d\d", total.group(1)), result.stdout
    stored = await raw.fetchval(
        "SELECT total FROM billing_runs WHERE esco_id = $1 ORDER BY created_at DESC LIMIT 1",
        esco.id,
    )
    assert total.group(1) == money(stored)
    # Not a terminal: plain lines, no carriage returns redrawing a bar.
    assert "\r" not in result.stderr
    assert "billed 3/3 meters" in result.stderr  # the figures of BillingRun.progress


async def test_billing_run_on_a_terminal_draws_a_bar(database_url, raw):
    esco = await build_esco(raw, "clit", customers=2, months=1)
    month = esco.months[0].strftime("%Y-%m")
    # stderr on a pseudo-terminal, as in an interactive shell.
    leader, follower = pty.openpty()
    try:
        command = [sys.executable, "-m", "flows_graphql.cli", "billing", "run"]
        result = await asyncio.to_thread(
            subprocess.run,
            [*command, "--esco", "clit", "--month", month],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed, all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert b"\r[" in drawn and b"#" * 30 in drawn, drawn

"""A PostgreSQL of the test's own, to restart, crash, stop and freeze, and a streaming
standby of it (`standby_of`: pg_basebackup -R).

Never the machine's shared server: initdb into a temporary folder, a free loopback
port, and every signal goes to this cluster's postmaster (and, to freeze it, its
children). Binaries: the system's PostgreSQL 15 when installed, else pgserver's. As
root, the cluster runs as the `postgres` system user (PostgreSQL refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.support.net import free_port

SYSTEM_BIN = Path("/usr/lib/postgresql/15/bin")


def binaries() -> Path | None:
    if (SYSTEM_BIN / "pg_ctl").exists():
        return SYSTEM_BIN
    with contextlib.suppress(ImportError):
        import pgserver

        found = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (found / "pg_ctl").exists():
            return found
    return None


class PrivatePostgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="flows-faults-"))
        self.pgdata = self.root / "data"
        self.port = free_port()
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            self.root.chmod(0o755)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self.user

        def demote() -> None:
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            preexec_fn=demote,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = on\nsynchronous_commit = on\nmax_connections = 100\n"
                "shared_buffers = 16MB\n"
                # Streaming standbys may be made of it (standby_of).
                "wal_level = replica\nmax_wal_senders = 4\n"
            )

    def standby_of(self, primary: PrivatePostgres) -> None:
        """Make this cluster a hot standby streaming from `primary` (instead of init):
        a base backup with the replication settings written (-R), on its own port."""
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast"),
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nunix_socket_directories = '{self.root}'\nhot_standby = on\n"
            )

    def sql(self, statement: str) -> str:
        """One statement through psql as the superuser; its single value, as text."""
        done = self._run(
            "psql",
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"),
            *("-XAtqc", statement),
        )
        return done.stdout.strip()

    def start(self) -> None:
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", log, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def postmaster(self) -> psutil.Process:
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)

    def _family(self) -> list[psutil.Process]:
        master = self.postmaster()
        return [master, *master.children(recursive=True)]

    def crash(self) -> None:
        """kill -9 of the postmaster and its backends: no shutdown, no checkpoint."""
        family = self._family()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)
        # The data folder keeps a stale postmaster.pid; pg_ctl start sees the dead pid.

    def freeze(self) -> list[psutil.Process]:
        """SIGSTOP to every process of the cluster: the sockets stay open, nothing answers."""
        family = self._family()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGSTOP)
        return family

    def thaw(self, family: list[psutil.Process]) -> None:
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            for proc in self._family():
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGCONT)
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _bindir() -> Path:
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (system 15 or pgserver)")
    return bindir


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres(_bindir())
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


@contextlib.contextmanager
def private_standby(primary: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A hot standby of `primary`, streaming, until the block ends."""
    standby = PrivatePostgres(primary.bindir)
    try:
        standby.standby_of(primary)
        standby.start()
        yield standby
    finally:
        standby.destroy()


def wait_until(predicate: object, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False

"""A real PostgreSQL server for tests, from Debian's postgresql package, on a loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flywheel_assets.collector.server import free_port


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    user: str = "flywheel"
    db: str = "dagster"

    @property
    def env(self) -> dict[str, str]:
        """The variables docs/deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": self.db,
        }

    def sql(self, query: str) -> str:
        out = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
            + ["-d", self.db, "-At", "-c", query],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def stop(self) -> None:
        _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"])
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def start_postgres() -> PostgresServer:
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # initdb refuses to run as root: the cluster belongs to the postgres user, outside pytest's
    # private temp folders.
    base = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    base.chmod(0o755)
    datadir = base / "data"
    datadir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(datadir, "postgres")
    server = PostgresServer(bindir, datadir, free_port())
    _as_owner(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", server.user, "--auth=trust"]
        + ["--encoding=UTF8", "--no-sync"]
    )
    options = f"-p {server.port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off"
    _as_owner(
        [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-w", "-t", "60"]
        + ["-l", str(base / "log"), "start"]
    )
    subprocess.run(
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user]
        + [server.db],
        check=True,
        capture_output=True,
    )
    return server


def _as_owner(args: list[str]) -> None:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=True, capture_output=True)

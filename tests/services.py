"""Real PostgreSQL and Redis servers for the shared-deployment tests.

Redis: a private ``redis-server`` on a free port when the binary exists, else the one on
127.0.0.1:6379. PostgreSQL: the server on 127.0.0.1:5432 (this machine kind runs one with trust
auth), started with pg_ctlcluster when it is installed but stopped; each test run gets its own
database, dropped at the end. Where neither can be had the tests are skipped with the reason,
which ``-ra`` prints.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import free_port

POSTGRES_ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/postgres",
                       "postgresql://root@127.0.0.1:5432/postgres",
                       "postgresql://127.0.0.1:5432/postgres")


def _postgres_admin_url() -> str | None:
    import psycopg
    for attempt in range(2):
        for url in POSTGRES_ADMIN_URLS:
            try:
                with psycopg.connect(url, connect_timeout=3):
                    return url
            except psycopg.OperationalError:
                continue
        if attempt == 0 and not _start_local_postgres():
            return None
    return None


def _start_local_postgres() -> bool:
    if not shutil.which("pg_ctlcluster"):
        return False
    versions = [os.path.basename(p) for p in glob.glob("/etc/postgresql/*")]
    started = False
    for version in versions:
        result = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                                 "start"], capture_output=True, timeout=60)
        started = started or result.returncode == 0
    return started


def _new_database():
    """A URL of a new, empty PostgreSQL database, dropped when the generator is closed."""
    admin = _postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 and none could be started")
    import psycopg
    name = f"streamdesk_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url():
    yield from _new_database()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    import redis
    binary = shutil.which("redis-server")
    if binary:
        port = free_port()
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no",
                                    "--dir", str(tmp_path_factory.mktemp("redis"))],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:  # wait for its own word that it is ready
            if "Ready to accept connections" in line:
                break
        url = f"redis://127.0.0.1:{port}/0"
        yield url
        process.terminate()
        process.wait(timeout=10)
        return
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("no redis-server binary and no Redis on 127.0.0.1:6379")
    yield "redis://127.0.0.1:6379/0"


@pytest.fixture
def empty_postgres_database():
    """A new, empty PostgreSQL database for one test (migrations start from nothing)."""
    yield from _new_database()

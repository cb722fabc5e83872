"""The app's PostgreSQL connections, against the real server: their waits on gevent's loop
(streamdesk/store/pg_wait.py, in a process that gevent has patched, as a gunicorn worker is),
pooled connections the server has closed, and connections kept between bursts
(streamdesk/store/engine.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import psycopg
from sqlalchemy import text

from streamdesk.store import Store
from streamdesk.store.engine import make_engines
from tests.conftest import ROOT

_SCRIPT = """
from gevent import monkey
monkey.patch_all()

import json, sys
import gevent, psycopg
from psycopg import waiting
from streamdesk.store import pg_wait
from streamdesk.store.engine import make_engines

url = sys.argv[1]
make_engines(url)
outcome = {"installed": waiting.wait is pg_wait.wait_on_the_loop}

# While one connection waits for the server, the worker's other greenlets run.
order = []
def slow_query():
    with psycopg.connect(url) as connection:
        connection.execute("SELECT pg_sleep(0.2)")
    order.append("query answered")
waiting_query = gevent.spawn(slow_query)
gevent.spawn(order.append, "another greenlet ran").join()
waiting_query.join()
outcome["order"] = order

with psycopg.connect(url, autocommit=True) as connection:
    # An answer larger than the socket's buffers comes whole, over many waits.
    rows = connection.execute("SELECT repeat(chr(65 + n % 26), 100000) "
                              "FROM generate_series(0, 49) AS n").fetchall()
    outcome["big_answer"] = [len(row[0]) for row in rows] == [100000] * 50 \\
        and rows[1][0][0] == "B"
    # Many statements sent together (psycopg's pipeline: it waits to read and write at once).
    connection.execute("CREATE TEMPORARY TABLE pieces (n integer)")
    connection.cursor().executemany("INSERT INTO pieces VALUES (%s)", [(n,) for n in range(3000)])
    outcome["pipelined"] = connection.execute("SELECT count(*), sum(n) FROM pieces").fetchone()
    # A wait with a deadline: none comes in time, then one sent from another connection does.
    connection.execute("LISTEN pg_wait_test")
    outcome["nothing_in_time"] = [n.payload for n in connection.notifies(timeout=0.1)]
    def notify():
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("NOTIFY pg_wait_test, 'hello'")
    gevent.spawn(notify)
    outcome["heard"] = [n.payload for n in connection.notifies(timeout=10, stop_after=1)]
print(json.dumps(outcome))
"""


def test_postgresql_round_trips_wait_on_the_loop_and_come_back_whole(postgres_url):
    result = subprocess.run([sys.executable, "-c", _SCRIPT, postgres_url], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["installed"]
    assert outcome["order"] == ["another greenlet ran", "query answered"]
    assert outcome["big_answer"]
    assert outcome["pipelined"] == [3000, sum(range(3000))]
    assert outcome["nothing_in_time"] == []
    assert outcome["heard"] == ["hello"]


def test_a_pooled_connection_the_server_closed_is_replaced_before_a_transaction_uses_it(
        postgres_url):
    """A PostgreSQL restart, a failover or a proxy's idle timeout closes the pool's idle
    connections; the next request must not fail on one of them."""
    _, engine = make_engines(postgres_url)
    with engine.begin() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        # With a timeout, it answers once the backend has ended (and closed its socket).
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (first,)).fetchone()[0]
    with engine.begin() as connection:
        second = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    assert second != first
    engine.dispose()


def test_a_burst_of_transactions_keeps_its_connections_for_the_next_burst(postgres_url):
    """A worker's burst of new chats opens the PostgreSQL connections it needs once: the next
    burst finds them pooled instead of opening server sessions again (each a process on the
    server, with cold caches)."""
    store = Store(postgres_url, pool_size=8)

    def burst(size: int) -> set[int]:
        """The server sessions of ``size`` transactions open at the same time."""
        all_open = threading.Barrier(size)
        sessions: list[int] = []

        def transaction():
            with store.writer.begin() as connection:
                sessions.append(connection.execute(text("SELECT pg_backend_pid()")).scalar())
                all_open.wait(timeout=10)

        threads = [threading.Thread(target=transaction) for _ in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert len(sessions) == size
        return set(sessions)

    try:
        first = burst(8)
        assert len(first) == 8
        assert burst(8) == first
    finally:
        store.close()

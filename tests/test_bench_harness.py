"""The benchmark's load side split over processes (``bench/run.py --load-processes``): its
figures must be the same streams and chunks a single process would have counted, or the
16-core run's numbers would mean nothing."""
from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import procs  # noqa: E402  (bench/procs.py)


@pytest.fixture
def upstream(tmp_path):
    group, port, _ = procs.start_upstream(tmp_path / "upstream.log", processes=2)
    yield group, port
    group.stop(grace=5)


def test_streams_shared_by_two_clients_and_two_upstreams_are_counted_once_each(upstream):
    group, port = upstream
    result = procs.run_client(port, "direct", streams=40, chunks=5, interval_ms=10, ramp=0.3,
                              slack=10, processes=2)
    assert result["client_processes"] == 2
    assert (result["completed"], result["failed"]) == (40, 0)
    assert result["chunks_received"] == result["chunks_expected"] == 200
    assert result["duplicates"] == result["out_of_order"] == 0
    assert result["latency_ms"]["n"] == 200 and result["ttft_ms"]["n"] == 40
    # Both upstream processes took streams (the kernel spreads connections over the port's
    # sockets), and their counters add up to every stream once.
    per_process = [procs.http_get(f"http://127.0.0.1:{p}/_stats") for p in group.stats_ports]
    assert all(status == 200 and b'"completed": 0' not in body for status, body in per_process)
    assert group.stats()["completed"] == 40


def test_one_process_is_the_default_and_gives_the_same_counts(upstream):
    _, port = upstream
    result = procs.run_client(port, "direct", streams=40, chunks=5, interval_ms=10, ramp=0.3,
                              slack=10)
    assert "client_processes" not in result
    assert (result["completed"], result["chunks_received"], result["latency_ms"]["n"]) \
        == (40, 200, 200)

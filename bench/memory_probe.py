"""What one open reply holds: one worker (the Procfile's server), N streams, looked into while
they stream.

    python bench/memory_probe.py [--app-dir CHECKOUT] [--streams 400] [--trace] [--shared]

The worker is asked (a signal; bench/probe_site/sitecustomize.py answers it, the app is
unchanged) once it is warm and idle, then four times 6-9 s after the streams opened (once, at
9 s, with ``--trace``). Printed per open stream: resident memory (the mean of the looks against
idle), the greenlets' saved C stacks, and the objects the garbage collector tracks; with
``--trace`` (tracemalloc in the worker, which slows it) the allocation lines that grew most.
``--shared``: the app on PostgreSQL and Redis, as ``bench/run.py --shared`` runs it.
Less noisy than the harness's RSS per stream: one process, no peak taken. Compare builds
interleaved (old, new, new, old), as docs/benchmarks.md does.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import procs

PROBE_SITE = procs.BENCH / "probe_site"
SIGNAL = signal.SIGRTMIN + 4  # as probe_site/sitecustomize.py
LOOKS_AT_SECONDS = (6, 7, 8, 9)


def ask(worker: int, folder: Path, timeout: float = 180.0) -> dict:
    # A tracemalloc snapshot of a worker holding hundreds of replies takes tens of seconds.
    """The worker's answer to one signal."""
    before = set(folder.glob("*.json"))
    os.kill(worker, SIGNAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(folder.glob("*.json")) - before
        if new:
            return json.loads(new.pop().read_text())
        time.sleep(0.05)
    raise RuntimeError("the worker did not answer the probe's signal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-dir", type=Path, default=procs.ROOT)
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--trace", action="store_true",
                        help="tracemalloc in the worker: the allocation lines that grew most")
    parser.add_argument("--shared", action="store_true",
                        help="the app on PostgreSQL and Redis (bench/run.py --shared's)")
    parser.add_argument("--postgres-admin-url",
                        default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    procs.raise_fd_limit()
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="streamdesk-probe-"))
        shared = (stack.enter_context(procs.shared_services(args.postgres_admin_url,
                                                            args.redis_url))
                  if args.shared else {})
        work = Path(scratch)
        answers = work / "answers"
        answers.mkdir()
        env = {"WEB_CONCURRENCY": "1", "PYTHONPATH": str(PROBE_SITE),
               "MEMORY_PROBE_DIR": str(answers), **shared}
        if args.trace:
            env["PYTHONTRACEMALLOC"] = "1"
        upstream, port, _ = procs.start_upstream(work / "upstream.log")
        try:
            app, app_port = procs.start_app(args.app_dir.resolve(), port, work / "instance",
                                            work / "app.log", env)
            try:
                (worker,) = [pid for pid in procs.process_tree(app.process.pid)
                             if pid != app.process.pid]
                # Traced, each look takes seconds: one, at the end.
                looks_at = LOOKS_AT_SECONDS[-1:] if args.trace else LOOKS_AT_SECONDS
                measure(app_port, worker, answers, args.streams, looks_at)
            finally:
                app.stop()
        finally:
            upstream.stop()


def measure(port: int, worker: int, answers: Path, streams: int,
            looks_at: tuple[int, ...]) -> None:
    # Warm: code paths, pools and caches the streams would otherwise fill while measured.
    procs.run_client(port, "relay", 100, 2, 1, 0, 60, arrival="sequential")
    procs.run_client(port, "relay", streams // 2, 5, 50, 1, 60)
    idle = ask(worker, answers)
    result: dict = {}
    client = threading.Thread(target=lambda: result.update(
        procs.run_client(port, "relay", streams, 400, 50, 2, 60)))
    started = time.monotonic()
    client.start()
    looks = []
    for at in looks_at:
        time.sleep(max(0.0, started + at - time.monotonic()))
        looks.append(ask(worker, answers))
    client.join()
    if result.get("completed") != streams or result.get("chunks_lost"):
        raise SystemExit(f"the streams did not all complete: {result}")
    last = looks[-1]
    rss = sum(look["rss_kb"] for look in looks) / len(looks)
    print(f"{streams} open streams, one worker, {looks_at[0]}-{looks_at[-1]} s in; "
          "per open stream:")
    print(f"  resident memory {(rss - idle['rss_kb']) / streams:.1f} KB")
    stacks = (last["saved_stack_bytes"] - idle["saved_stack_bytes"]) / streams / 1024
    print(f"  saved C stacks {stacks:.2f} KB ({last['greenlets']} greenlets); where they wait:")
    for where, size in last["saved_stack_by_wait"][:4]:
        print(f"    {size / streams / 1024:6.2f} KB  {where}")
    print(f"  objects {(last['gc_objects'] - idle['gc_objects']) / streams:.0f}; by type:")
    grew = Counter(dict(last["types"]))
    grew.subtract(dict(idle["types"]))
    print("    " + ", ".join(f"{name} {count / streams:.1f}"
                             for name, count in grew.most_common(15)))
    if "allocations" in last:
        print("  allocations that grew (bytes and blocks per stream, where):")
        for size, count, where in last["allocations"][:25]:
            print(f"    {size / streams:7.0f} B {count / streams:6.1f}  {where}")


if __name__ == "__main__":
    main()

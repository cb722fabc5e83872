"""StreamDesk's benchmark: what the relay costs and how many streams one machine holds.

  make bench                                   # all levels, naive relay, rendering;
                                               # writes docs/benchmarks.md
  .venv/bin/python bench/run.py --quick        # 10 and 100 streams only, no rendering
  .venv/bin/python bench/run.py --levels 10,500 --no-naive --no-render --no-write

  .venv/bin/python bench/run.py --unloaded 200 --bursts 200,1000 --levels 1000 --shared

First, when asked (the full run does both): the first token with no load (``--unloaded N``:
N requests one after another, new visitors and one returning user) and in bursts
(``--bursts``: N new chats at the same instant). Then, for each level, one after the other on
the same machine:

  direct  the load client reading the stand-in upstream itself: the limit
  relay   the app under its production command (the Procfile's) relaying that upstream
  naive   bench/naive_relay.py (article 003's design) relaying the same upstream
  litellm with ``--peer litellm``: the LiteLLM proxy relaying the same upstream

Each stream is a distinct user (no cookie: every /chat is a first visit) asking for a new
conversation; each gets ``--chunks`` chunks ``1000/--rate`` ms apart. ``--followers N`` (or a
variant ``LEVEL:followers=N``) has every relayed stream followed by N more connections to
``GET /api/messages/<id>/events`` with its session cookie, tallied apart from the streams.
Streams open evenly over ``--ramp`` seconds, or at random at the same average rate
(``--arrival poisson``), or all at once (``--arrival burst``). The app gets a fresh instance
folder (SQLite store, file sessions; with ``--shared`` a new PostgreSQL database and an emptied
Redis database instead) and a fresh start per level, so memory and CPU are its own.
``--variant 500:WEB_CONCURRENCY=1`` (in the full run) shows the cost per chunk and per reply
against the worker count. Raw results and process logs go to bench/results/<time>/.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402
import report  # noqa: E402

FULL_LEVELS = (10, 100, 500, 1000, 2000)
QUICK_LEVELS = (10, 100)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def summarize(kind: str, result: dict) -> str:
    lat, ttft = result.get("latency_ms", {}), result.get("ttft_ms", {})
    text = (f"{kind:>7}: {result['completed']}/{result['streams']} ok, {result['failed']} failed, "
            f"{result['chunks_lost']} lost; latency p50 {lat.get('p50')} p99 {lat.get('p99')} "
            f"max {lat.get('max')} ms; ttft p50 {ttft.get('p50')} p99 {ttft.get('p99')} ms")
    follow = result.get("followers")
    if follow:
        text += (f"; followers ({result['followers_per_stream']}/stream) {follow['completed']}/"
                 f"{follow['streams']} ok, {follow['failed']} failed, "
                 f"{follow['chunks_lost']} lost, "
                 f"latency p50 {follow['latency_ms'].get('p50')} "
                 f"p99 {follow['latency_ms'].get('p99')} ms")
    return text


def log_counts(text: str) -> dict:
    return {"tracebacks": text.count("Traceback"), "worker_timeouts": text.count("WORKER TIMEOUT"),
            "workers_booted": text.count("Booting worker"),
            "pool_full_warnings": text.count("Connection pool is full"),
            "errors_logged": text.count(" ERROR ") + text.count('"level": "ERROR"'),
            "loop_blocked_reports": text.count("appears to be blocked")}


def blocked_where(text: str) -> dict[str, int]:
    """gevent's blocking reports (``--blocking-monitor``), by the innermost frame of the
    project's own code in the blocked stack (or of any code, when none of ours)."""
    places: dict[str, int] = {}
    for blocked in text.split("appears to be blocked")[1:]:
        stack = blocked.split("Info:", 1)[0]
        frames = [line.strip() for line in stack.splitlines() if line.strip().startswith("File ")]
        ours = [f for f in frames if "site-packages" not in f and "/lib/python" not in f]
        place = (ours or frames or ["?"])[-1]
        place = place.replace(str(procs.ROOT) + "/", "")
        places[place] = places.get(place, 0) + 1
    return dict(sorted(places.items(), key=lambda item: -item[1])[:5])


def measure_server(name: str, proc: procs.Proc, port: int, args, streams: int, mode: str,
                   upstream: procs.Upstream, upstream_port: int, slack: float,
                   followers: int = 0, shape: dict | None = None) -> dict:
    """Warm the server up, then run one level against it, sampling its CPU and memory.
    ``shape`` overrides the client's chunks, interval_ms, arrival or returning."""
    shape = {"chunks": args.chunks, "interval_ms": 1000 / args.rate, "arrival": args.arrival,
             "returning": False, **(shape or {})}
    procs.run_client(port, mode, streams=min(20, streams), chunks=10, interval_ms=10, ramp=0.2,
                     slack=10, followers=followers)
    time.sleep(1.0)
    sampler = procs.TreeSampler(proc.pid)
    idle_kb = sampler.rss_kb()
    sampler.start()
    cpu0, up_cpu0 = sampler.cpu_total(), upstream.cpu_seconds()
    up_before = upstream.stats()
    late_before = procs.loop_lateness(port) if name == "app" else None
    machine0 = procs.machine_busy_seconds()
    result = procs.run_client(port, mode, streams, shape["chunks"], shape["interval_ms"],
                              args.ramp, slack, followers=followers, arrival=shape["arrival"],
                              returning=shape["returning"], bearer=shape.get("bearer", ""),
                              think_ms=args.think_ms, processes=args.load_processes)
    machine1 = procs.machine_busy_seconds()
    cpu1, up_cpu1 = sampler.cpu_total(), upstream.cpu_seconds()
    sampler.stop()
    up_after = upstream.stats()
    if late_before is not None:
        result["loop_late"] = loop_late_during(late_before, procs.loop_lateness(port))
    hwm_kb = sum(procs.memory_kb(pid)[1] for pid in procs.process_tree(proc.pid))
    result.update({
        "server": name, "server_cpu_s": round(cpu1 - cpu0, 2),
        "idle_rss_kb": idle_kb, "peak_rss_kb": sampler.peak_rss_kb, "hwm_sum_kb": hwm_kb,
        # per stream the server held open at once (the peak; all of them unless setup lagged)
        "rss_per_stream_kb": round((sampler.peak_rss_kb - idle_kb)
                                   / max(1, result.get("peak_streaming") or streams), 1),
        "server_processes": len(sampler.pids_seen),
        "upstream_cpu_s": round(up_cpu1 - up_cpu0, 2),
        "other_cpu_s": round(machine1 - machine0 - (cpu1 - cpu0) - (up_cpu1 - up_cpu0)
                             - result["client_cpu_s"], 2),
        "upstream_dropped": up_after.get("dropped", 0) - up_before.get("dropped", 0),
        # set-up included; bench/report.py also shows it net of the unloaded run's per-reply cost
        "cpu_per_chunk_us": round((cpu1 - cpu0) / max(1, result["chunks_received"]) * 1e6, 1),
        "cpu_per_reply_ms": round((cpu1 - cpu0) / max(1, streams) * 1e3, 3),
    })
    return result


def loop_late_during(before: dict, after: dict) -> dict:
    """Late ticks of the workers' loops during the run (``streamdesk/loop_lag.py``): how many
    were 5 ms or more late, how many over 20 ms (a block over 20 ms), and the longest since
    the app started (warm-up included; the app is fresh for each run); and the longest save
    of growing replies (each reply's saved copy is at most the save interval plus that old)."""
    over_20 = ((after["count"] - after["buckets"].get("0.02", 0.0))
               - (before["count"] - before["buckets"].get("0.02", 0.0)))
    longest, longest_save = after.get("longest_s"), after.get("longest_save_s")
    return {"late_ticks": int(after["count"] - before["count"]), "over_20ms": int(over_20),
            "longest_ms": round(longest * 1000, 1) if longest is not None else None,
            "longest_save_ms": round(longest_save * 1000) if longest_save is not None else None}


def run_relay(args, level: int, upstream, upstream_port: int, out: Path, env: dict,
              tag: str = "relay", followers: int | None = None, shape: dict | None = None) -> dict:
    followers = args.followers if followers is None else followers
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(tempfile.TemporaryDirectory(prefix="streamdesk-bench-"))
        shared = (stack.enter_context(procs.shared_services(args.postgres_admin_url,
                                                            args.redis_url))
                  if args.shared else {})
        scheme, app_upstream_port, upstream_env = args.app_upstream
        app, port = procs.start_app(args.app_dir, app_upstream_port, Path(instance),
                                    out / f"app-{tag}-{level}.log",
                                    {"WEB_CONCURRENCY": str(args.workers), **upstream_env,
                                     **shared, **env},
                                    upstream_host=args.upstream_host, scheme=scheme)
        try:
            result = measure_server("app", app, port, args, level, "relay", upstream,
                                    upstream_port, slack=args.slack, followers=followers,
                                    shape=shape)
        finally:
            app.stop(grace=5)
        text = app.log()
        result["app_log"] = log_counts(text)
        if result["app_log"]["loop_blocked_reports"]:
            result["blocked_where"] = blocked_where(text)
        result["env"] = env
        return result


def run_naive(args, level: int, upstream, upstream_port: int, out: Path) -> dict:
    naive, port = procs.start_naive(upstream_port, out / f"naive-{level}.log")
    try:
        result = measure_server("naive", naive, port, args, level, "naive", upstream,
                                upstream_port, slack=args.naive_slack)
    finally:
        naive.stop(grace=3)
    return result


def run_litellm(args, level: int, upstream, upstream_port: int, out: Path) -> dict:
    """The LiteLLM proxy relaying the same upstream, read as an OpenAI client reads it."""
    with tempfile.TemporaryDirectory(prefix="streamdesk-bench-litellm-") as folder:
        peer, port = procs.start_litellm(upstream_port, args.workers, Path(folder),
                                         out / f"litellm-{level}.log")
        try:
            result = measure_server("litellm", peer, port, args, level, "direct", upstream,
                                    upstream_port, slack=args.slack,
                                    shape={"bearer": procs.LITELLM_KEY})
        finally:
            peer.stop(grace=5)
    return result


def run_direct(args, level: int, upstream, upstream_port: int,
               shape: dict | None = None) -> dict:
    shape = {"chunks": args.chunks, "interval_ms": 1000 / args.rate, "arrival": args.arrival,
             **(shape or {})}
    up_cpu0, machine0 = upstream.cpu_seconds(), procs.machine_busy_seconds()
    result = procs.run_client(upstream_port, "direct", level, shape["chunks"],
                              shape["interval_ms"], args.ramp, args.slack,
                              arrival=shape["arrival"], think_ms=args.think_ms,
                              processes=args.load_processes)
    up_cpu = upstream.cpu_seconds() - up_cpu0
    result["upstream_cpu_s"] = round(up_cpu, 2)
    result["other_cpu_s"] = round(procs.machine_busy_seconds() - machine0 - up_cpu
                                  - result["client_cpu_s"], 2)
    return result


def wait_upstream_idle(upstream: procs.Upstream, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.stats().get("active", 0) == 0:
            break
        time.sleep(0.2)
    else:
        log("warning: the upstream still has streams open from the previous step")


def settle(args, upstream) -> float | None:
    """Before each measurement: the upstream idle, and the machine quiet if asked to be."""
    wait_upstream_idle(upstream)
    if args.wait_quiet <= 0:
        return None
    busy = procs.wait_quiet([os.getpid(), *upstream.pids], args.quiet_cores, args.wait_quiet,
                            log)
    return round(busy, 2)


def measured(args, upstream, kind: str, measure, retries: int | None = None) -> dict:
    """Run one measurement after ``settle``; if other processes took more than
    ``--noisy-cores`` during it, measure again (``--retries`` times) and keep the quietest."""
    retries = args.retries if retries is None else retries
    best = None
    for attempt in range(retries + 1):
        quiet = settle(args, upstream)
        result = measure()
        result["others_before"] = quiet
        others = result.get("other_cpu_s", 0) / max(1.0, result.get("wall_s", 1.0))
        result["other_cores"] = round(others, 2)
        extra = (f"; server cpu {result['server_cpu_s']} s, {result['rss_per_stream_kb']} KB/stream"
                 if "server_cpu_s" in result else "")
        log(summarize(kind, result) + extra + f"; other processes {others:.2f} cores")
        if best is None or others < best["other_cores"]:
            best = result
        if others <= args.noisy_cores:
            break
        if attempt < retries:
            log(f"other processes used {others:.2f} cores during that {kind} run: measuring again")
    best["attempts"] = attempt + 1
    return best


# Two chunks 1 ms apart: the reply is over at once, so each request meets an idle server.
UNLOADED_SHAPE = {"chunks": 2, "interval_ms": 1.0, "arrival": "sequential"}


def measure_unloaded(args, n: int, upstream, out: Path, env: dict) -> dict:
    """Time to first token with no other load: ``n`` requests one after another, read
    directly, relayed for new visitors, and relayed for one returning user."""
    port = args.upstream_port
    found = {"direct": measured(args, upstream, "direct, unloaded", functools.partial(
        run_direct, args, n, upstream, port, shape=UNLOADED_SHAPE))}
    for users, returning in (("new", False), ("returning", True)):
        shape = {**UNLOADED_SHAPE, "returning": returning}
        found[users] = measured(args, upstream, f"relay, unloaded, {users} users",
                                functools.partial(run_relay, args, n, upstream, port, out, env,
                                                  tag=f"unloaded-{users}", shape=shape))
    return found


def measure_burst(args, n: int, upstream, out: Path, env: dict) -> dict:
    """``n`` new chats sent at the same instant: how long the last ones wait."""
    shape = {"chunks": args.burst_chunks, "arrival": "burst"}
    port = args.upstream_port
    return {"streams": n,
            "direct": measured(args, upstream, f"direct, burst of {n}", functools.partial(
                run_direct, args, n, upstream, port, shape=shape)),
            "relay": measured(args, upstream, f"relay, burst of {n}", functools.partial(
                run_relay, args, n, upstream, port, out, env, tag=f"burst-{n}", shape=shape))}


# A chunk as the stand-in upstream sends it, and what the relay does to each in Python: written
# out here, not the app's own decoder and encoder, so that the loop stays the same work
# whatever build is being measured.
_REFERENCE_CHUNK = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                               "model": "bench", "choices": [{"index": 0, "delta": {
                                   "content": "a piece of a reply "}, "finish_reason": None}]})


def reference_ms(rounds: int = 3) -> float:
    """This machine's speed, for reading runs made on different machines or hours: the CPU
    milliseconds of a fixed piece of the relay's Python work (decode an upstream chunk, write
    it as an event), the fastest of ``rounds``. The same build's CPU per chunk has moved by a
    fifth within an hour of one VM (docs/benchmarks.md); lower is faster."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for event_id in range(20_000):
            piece = json.loads(_REFERENCE_CHUNK)["choices"][0]["delta"]["content"]
            f"id: {event_id}\nevent: delta\ndata: {json.dumps({'text': piece})}\n\n".encode()
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def machine_facts(app_dir: Path) -> dict:
    def git(*words):
        done = subprocess.run(["git", "-C", str(app_dir), *words], capture_output=True, text=True)
        return done.stdout.rstrip("\n")  # not strip(): a status line starts with a space

    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        memory = f"{int(open('/proc/meminfo').readline().split()[1]) / 1048576:.0f} GiB"
    except (OSError, ValueError):
        pass
    dirty = [line for line in git("status", "--porcelain").splitlines()
             if not line[3:].startswith(("bench/", "docs/benchmarks.md", "node_modules"))]
    versions = {}
    for name in ("gunicorn", "gevent", "greenlet", "flask", "werkzeug", "requests", "urllib3",
                 "sqlalchemy", "uvloop", "playwright"):
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:
            pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory": memory,
            "kernel": platform.release(), "python": platform.python_version(),
            "commit": git("rev-parse", "--short", "HEAD"),
            "commit_subject": git("log", "-1", "--format=%s"),
            "app_dir": str(app_dir), "dirty_files": dirty, "versions": versions,
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "reference_ms": [reference_ms()]}


def main() -> None:
    parser = argparse.ArgumentParser(description="StreamDesk relay and rendering benchmark")
    parser.add_argument("--quick", action="store_true", help="levels 10 and 100, no rendering")
    parser.add_argument("--levels", help="comma-separated concurrent stream counts")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per stream (200)")
    parser.add_argument("--rate", type=float, default=20, help="chunks per second per stream (20)")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds to open all streams (2)")
    parser.add_argument("--slack", type=float, default=30.0,
                        help="seconds a stream may run past its ideal end before it fails (30)")
    parser.add_argument("--naive-slack", type=float, default=10.0,
                        help="the same for the naive relay, which collapses (10)")
    parser.add_argument("--arrival", choices=("ramp", "poisson", "burst"), default="ramp",
                        help="how each level's streams open: evenly over --ramp, at random "
                             "(Poisson) at the same average rate, or all at once (ramp)")
    parser.add_argument("--unloaded", type=int, metavar="N",
                        help="first token with no load: N requests one after another, direct, "
                             "new users and one returning user (full run: 200; 0: none)")
    parser.add_argument("--bursts", metavar="N,N",
                        help="each N new chats sent at the same instant, direct and relayed "
                             "(full run: 200,1000)")
    parser.add_argument("--think-ms", type=float, default=0,
                        help="the stand-in model's wait before each reply's first chunk, as a "
                             "real model thinks (0: at once, so every ms of the relay shows)")
    parser.add_argument("--burst-chunks", type=int, default=20,
                        help="chunks per burst reply, at --rate (20)")
    parser.add_argument("--blocking-monitor", action="store_true",
                        help="run the app with gevent's monitor, reporting each time a worker's "
                             "loop is blocked over 20 ms; it traces every greenlet switch, so "
                             "such a run's figures are not comparable with others")
    parser.add_argument("--shared", action="store_true",
                        help="the app on PostgreSQL and Redis, as docs/deploy.md's shared "
                             "deployment: a new database per app start, dropped after, and "
                             "--redis-url's database emptied before and after")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1/postgres",
                        help="--shared: where databases are created (%(default)s)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="--shared: the Redis database the bench may empty (%(default)s)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")),
                        help="WEB_CONCURRENCY for the app (2)")
    parser.add_argument("--load-processes", type=int, default=1, metavar="N",
                        help="the load client and the stand-in upstream each as N processes "
                             "(1): each is one Python process on one core, and 8,000 streams "
                             "at 20 chunks a second are 160,000 chunks a second to write and "
                             "to read (docs/benchmarks.md)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the app (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="LEVEL:NAME=VALUE",
                        help="an extra relay row at LEVEL with that variable for the app "
                             "(repeatable), or with followers=N that many followers per stream; "
                             "the full run adds 1000:SAVE_INTERVAL_SECONDS=60")
    parser.add_argument("--followers", type=int, default=0, metavar="N",
                        help="every relay run: per stream, N more connections following its "
                             "reply (GET /api/messages/<id>/events), tallied apart (0)")
    parser.add_argument("--wait-quiet", type=float, default=120, metavar="SECONDS",
                        help="before each measurement wait up to this long for other processes "
                             "to use less than --quiet-cores (0: don't wait; default 120)")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="what counts as quiet, in cores busy outside the bench (0.3)")
    parser.add_argument("--retries", type=int, default=1,
                        help="measure a direct or relay run again when other processes were busy "
                             "during it (1)")
    parser.add_argument("--noisy-cores", type=float, default=0.25,
                        help="other processes' average cores that make a run noisy (0.25)")
    parser.add_argument("--peer", action="append", default=[], choices=("litellm",),
                        help="also relay each level through a peer: litellm, the LiteLLM proxy "
                             "(a pinned release installed once into bench/.litellm-venv)")
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--no-direct", action="store_true")
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--upstream-host", default="127.0.0.1",
                        help="the name the app is given for the stand-in upstream: an address "
                             "(127.0.0.1), or a name such as localhost, looked up as a model "
                             "service's name is")
    parser.add_argument("--upstream-tls", action="store_true",
                        help="the app reads the stand-in upstream over HTTPS (a self-signed "
                             "certificate, trusted with certifi's authorities), as it reads a "
                             "model service; direct readings stay plain")
    parser.add_argument("--app-dir", type=Path, default=procs.ROOT,
                        help="the StreamDesk checkout to run (default: this one)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--write", action="store_true",
                        help="rewrite docs/benchmarks.md even after --quick or --levels (whose "
                             "partial tables otherwise only go to bench/results/)")
    parser.add_argument("--output", type=Path, default=procs.ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    args.app_dir = args.app_dir.resolve()
    if args.followers < 0:
        parser.error("--followers takes a count >= 0")
    if args.load_processes < 1:
        parser.error("--load-processes takes a count >= 1")

    if args.levels:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
    elif args.quick:
        levels = list(QUICK_LEVELS)
    else:
        levels = list(FULL_LEVELS)
    variants = list(args.variant)
    full = not args.quick and not args.levels
    if full and not variants:
        variants = ["1000:SAVE_INTERVAL_SECONDS=60", "500:WEB_CONCURRENCY=1"]
    unloaded = args.unloaded if args.unloaded is not None else (200 if full else 0)
    bursts = [int(x) for x in (args.bursts or ("200,1000" if full else "")).split(",")
              if x.strip()]
    if args.render_only:
        levels, variants, unloaded, bursts = [], [], 0, []
    render = not (args.no_render or args.quick)
    base_env = dict(kv.split("=", 1) for kv in args.env)
    if args.blocking_monitor:
        base_env.update(GEVENT_MONITOR_THREAD_ENABLE="1", GEVENT_MAX_BLOCKING_TIME="0.02")

    fds = procs.raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = procs.BENCH / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    facts = machine_facts(args.app_dir)
    facts.update(fd_limit=fds, workers=args.workers, load_processes=args.load_processes,
                 chunks=args.chunks, rate=args.rate,
                 ramp=args.ramp, levels=levels, env=base_env, followers=args.followers,
                 arrival=args.arrival, burst_chunks=args.burst_chunks, think_ms=args.think_ms,
                 store=("PostgreSQL + Redis" if args.shared else "SQLite, file sessions")
                 + ("" if args.upstream_host == "127.0.0.1"
                    else f", model service named {args.upstream_host}")
                 + (", model service over HTTPS" if args.upstream_tls else ""))
    log(f"commit {facts['commit']} in {args.app_dir}; results in {out}; "
        f"reference loop {facts['reference_ms'][0]} ms")
    results = {"facts": facts, "levels": [], "variants": [], "render": None, "unloaded": {},
               "bursts": []}
    started = time.monotonic()

    tls = procs.make_certificate(out, args.upstream_host) if args.upstream_tls else None
    upstream, upstream_port, tls_port = procs.start_upstream(out / "upstream.log",
                                                             tls[:2] if tls else None,
                                                             processes=args.load_processes)
    args.upstream_port = upstream_port  # direct readings and the upstream's counters
    # What the app is given: the same streams over HTTPS with --upstream-tls.
    args.app_upstream = (("https", tls_port, {"REQUESTS_CA_BUNDLE": str(tls[2])}) if tls
                         else ("http", upstream_port, {}))
    try:
        if unloaded:
            results["unloaded"] = measure_unloaded(args, unloaded, upstream, out, base_env)
            (out / "results.json").write_text(json.dumps(results, indent=1))
        for n in bursts:
            results["bursts"].append(measure_burst(args, n, upstream, out, base_env))
            (out / "results.json").write_text(json.dumps(results, indent=1))
        for level in levels:
            row = {"streams": level}
            if not args.no_direct:
                row["direct"] = measured(args, upstream, "direct", functools.partial(
                    run_direct, args, level, upstream, upstream_port))
            row["relay"] = measured(args, upstream, "relay", functools.partial(
                run_relay, args, level, upstream, upstream_port, out, base_env))
            if "litellm" in args.peer:
                row["litellm"] = measured(args, upstream, "litellm", functools.partial(
                    run_litellm, args, level, upstream, upstream_port, out))
            if not args.no_naive:  # it collapses whatever else runs: measured once
                row["naive"] = measured(args, upstream, "naive", functools.partial(
                    run_naive, args, level, upstream, upstream_port, out), retries=0)
            results["levels"].append(row)
            (out / "results.json").write_text(json.dumps(results, indent=1))
        for variant in variants:
            level_text, assignment = variant.split(":", 1)
            name, value = assignment.split("=", 1)
            if name == "followers":  # the client's, not the app's
                env, followers = dict(base_env), int(value)
            else:
                env, followers = {**base_env, name: value}, args.followers
            result = measured(
                args, upstream, f"{name}={value}",
                lambda level_text=level_text, env=env, followers=followers, name=name,
                value=value: run_relay(args, int(level_text), upstream, upstream_port, out, env,
                                       tag=f"{name}-{value}", followers=followers))
            results["variants"].append(result)
            (out / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        upstream.stop(grace=3)

    if render or args.render_only:
        import render as render_bench
        log("rendering benchmark: 20,000 tokens at 200 tokens/s (about 100 s)")
        results["render"] = render_bench.run(args.app_dir, out)
        log(f"render: {json.dumps(results['render'].get('summary'))}")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    facts["reference_ms"].append(reference_ms())
    log(f"reference loop: {facts['reference_ms'][0]} ms at the start, "
        f"{facts['reference_ms'][1]} ms at the end")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = report.render(results)
    (out / "benchmarks-table.md").write_text(text)
    partial = not full
    if args.write or not (args.no_write or partial):
        report.write(args.output, text)
        log(f"wrote {args.output}")
    print(text)


if __name__ == "__main__":
    main()

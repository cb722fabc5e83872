"""The bench's load client: opens N streams (ramped), reads every event, and measures per
chunk how long it took from the upstream's write to this process's read.

  python bench/client.py --port 5000 --mode relay --streams 100 --chunks 200 --interval-ms 50

Modes (what is asked and how the end of a reply is recognised):

  relay   POST /chat to StreamDesk ({"message", "model"}); events ``delta``, ends at ``done``
  direct  POST /v1/chat/completions to the stand-in upstream itself, or to a peer proxy
          (``--bearer`` its key); ends at ``data: [DONE]``
  naive   POST /chat to bench/naive_relay.py; OpenAI-shaped events, ends at ``data: [DONE]``

How streams arrive (``--arrival``):

  ramp        evenly over ``--ramp`` seconds (the default)
  burst       all at the same instant (a room pressing Enter together)
  poisson     independent arrivals, ``--streams`` per ``--ramp`` seconds on average
              (exponential gaps, ``--seed``)
  sequential  one at a time, each when the previous has ended: the unloaded first token

``--returning`` (relay) first asks for a one-chunk reply as a new visitor and sends every
stream with the session cookie it got, as a returning user would; otherwise every stream is
a first visit.

With ``--followers N`` (relay only) each POST /chat stream, once its ``meta`` event has
come, opens N more connections to ``GET /api/messages/<message_id>/events`` with the session
cookie its POST response set, and reads them to the end like the stream itself. Followers are
tallied apart (``followers`` in the output): the main figures stay those of the POST streams.

Each chunk's text carries ``~<seq>@<send ns>~`` (bench/upstream.py). The receive time is
``time.monotonic_ns()`` when the bytes are handed to this process, for every chunk in that
read. A stream *completes* when its end event arrived, no error event came, the HTTP body
ended properly and every sequence number was seen; chunks *lost* are those never seen.

Plain asyncio protocols (uvloop when installed): an HTTP/1.1 parser just big enough for
chunked and close-delimited bodies, a regex over whole events for the stamps. It prints one
JSON object (summary, percentiles, its own CPU time and event-loop lag) on stdout.

One process reads at most ~100,000 chunks a second, on one core (3,000 streams at 20 a second
took ~0.55 of a core of the 2-core VM in docs/benchmarks.md). For more, ``--shard I/N`` makes
this process open only the streams whose number is I modulo N, at their times in the
schedule of all ``--streams``, counted from ``--start-at`` (a moment of CLOCK_MONOTONIC that
N such processes share); it then also prints its raw measurements, and ``combined`` makes
the N outputs one, as a single process would have printed it (bench/procs.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import sys
import time

_STAMP = re.compile(rb"~(\d+)@(\d+)~")
_RELAY_DONE = re.compile(rb'event: done\r?\ndata: \{"finish_reason":"([a-z_]*)"')
_RELAY_ERROR = re.compile(rb"event: error\r?\ndata: (.*)")
_RELAY_META = re.compile(rb"event: meta\r?\ndata: (\{.*\})")


class Tally:
    """What one kind of stream (the POST streams, or their followers) added up to."""

    def __init__(self, steady_from: int):
        self.latencies: list[int] = []
        # Chunks written once every stream has been open for a second: the relay's steady
        # cost, without the burst of stream set-ups during the ramp.
        self.steady: list[int] = []
        self.steady_from = steady_from
        self.ttft: list[int] = []
        self.durations: list[int] = []
        self.opened = 0
        self.completed = 0
        self.failed = 0
        self.received = 0
        self.dupes = 0
        self.disorder = 0
        self.errors: dict[str, int] = {}
        self.connect_failures = 0
        self.streaming = 0  # answered 200 and not finished: what the server holds open
        self.peak_streaming = 0

    def raw(self) -> dict:
        """Every measurement and count, for ``combined``."""
        return {name: getattr(self, name) for name in _RAW}

    def fail(self, error: str, n: int = 1) -> None:
        self.failed += n
        key = re.sub(r"\d+", "N", error)[:120]
        self.errors[key] = self.errors.get(key, 0) + n

    def record(self, stream: Stream) -> None:
        self.received += stream.count
        self.dupes += stream.dupes
        self.disorder += stream.disorder
        if stream.t_first:
            self.ttft.append(stream.t_first - stream.t_start)
        if stream.error is None:
            self.completed += 1
            self.durations.append(time.monotonic_ns() - stream.t_start)
        else:
            self.fail(stream.error)


_RAW = ("latencies", "steady", "ttft", "durations", "opened", "completed", "failed", "received",
        "dupes", "disorder", "errors", "connect_failures", "peak_streaming")


class Stream(asyncio.Protocol):
    __slots__ = ("run", "index", "t_start", "t_first", "status", "head", "raw", "sse", "chunked",
                 "length", "seen", "count", "dupes", "last_seq", "disorder", "ended", "terminal",
                 "error", "transport", "body_done", "finished", "lat", "tally", "request",
                 "follower", "cookie", "followed")

    def __init__(self, run: Run, index: int, follower: bool = False, request: bytes = b""):
        self.run = run
        self.index = index
        self.follower = follower
        self.tally = run.follow if follower else run.main
        self.request = request or run.request_bytes
        self.cookie = ""  # name=value pairs of the response's Set-Cookie headers
        self.followed = False  # followers opened (after the meta event)
        self.t_start = time.monotonic_ns()
        self.t_first = 0
        self.status = 0
        self.head = bytearray()
        self.raw = bytearray()  # body bytes not yet de-chunked
        self.sse = bytearray()  # de-chunked bytes not yet cut into events
        self.chunked = False
        self.length = -1
        self.seen = bytearray(run.chunks)
        self.count = 0
        self.dupes = 0
        self.last_seq = -1
        self.disorder = 0
        self.terminal = None  # "done:<reason>" or "[DONE]"
        self.error = None
        self.transport = None
        self.body_done = False
        self.finished = False
        self.lat = self.tally.latencies

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.monotonic_ns()
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end]).decode("latin-1")
            data = bytes(self.head[end + 4:])
            self.head = None
            if self.run.followers and not self.follower:
                # values keep their case: only the header names are case-insensitive
                self.cookie = "; ".join(
                    line.split(":", 1)[1].strip().split(";", 1)[0]
                    for line in head.split("\r\n") if line[:11].lower() == "set-cookie:")
            head = head.lower()
            try:
                self.status = int(head.split(" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            self.chunked = "transfer-encoding: chunked" in head
            match = re.search(r"content-length: *(\d+)", head)
            self.length = int(match.group(1)) if match else -1
            if self.status != 200:
                self.error = f"HTTP {self.status}"
                self.transport.close()
                return
            tally = self.tally
            tally.streaming += 1
            if tally.streaming > tally.peak_streaming:
                tally.peak_streaming = tally.streaming
        if self.chunked:
            raw = self.raw
            raw += data
            pos = 0
            while True:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(raw[pos:eol].split(b";", 1)[0], 16)
                if size == 0:
                    self.body_done = True
                    pos = len(raw)
                    break
                if len(raw) < eol + 2 + size + 2:
                    break
                self.sse += raw[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
            del raw[:pos]
        else:
            self.sse += data
            if self.length >= 0 and len(self.sse) >= self.length:
                self.body_done = True
        self._events(now)
        if self.body_done:
            self._finish()

    def _events(self, now: int):
        sse = self.sse
        end = sse.rfind(b"\n\n")
        if end < 0:
            return
        block = bytes(sse[:end + 2])
        del sse[:end + 2]
        seen, lat = self.seen, self.lat
        steady, steady_from = self.tally.steady, self.tally.steady_from
        for match in _STAMP.finditer(block):
            seq = int(match.group(1))
            if seq >= len(seen):
                continue
            if seen[seq]:
                self.dupes += 1
                continue
            seen[seq] = 1
            self.count += 1
            if seq < self.last_seq:
                self.disorder += 1
            self.last_seq = seq
            sent = int(match.group(2))
            lat.append(now - sent)
            if sent >= steady_from:
                steady.append(now - sent)
            if not self.t_first:
                self.t_first = now
        if self.run.mode == "relay":
            if not self.followed and self.run.followers and not self.follower \
                    and b"event: meta" in block:
                self.followed = True
                match = _RELAY_META.search(block)
                try:
                    message_id = json.loads(match.group(1))["message_id"]
                except (AttributeError, ValueError, KeyError, TypeError):
                    message_id = None
                self.run.open_followers(self, message_id)
            if b"event: error" in block:
                match = _RELAY_ERROR.search(block)
                self.error = "error event: " + (match.group(1)[:200].decode("utf-8", "replace")
                                                if match else "?")
            if b"event: done" in block:
                match = _RELAY_DONE.search(block)
                self.terminal = "done:" + (match.group(1).decode() if match else "?")
        elif b"data: [DONE]" in block:
            self.terminal = "[DONE]"

    def eof_received(self):
        if not self.chunked and self.length < 0:
            self.body_done = True  # a close-delimited body ends here
        return False

    def connection_lost(self, exc):
        if self.sse:
            self.sse += b"\n\n"
            self._events(time.monotonic_ns())
        if not self.finished:
            if self.error is None:
                self.error = ("connection lost: " + repr(exc)) if exc else \
                    ("closed before the end" if not self.body_done else None)
            self._finish()

    def _finish(self):
        if self.finished:
            return
        self.finished = True
        run = self.run
        if self.status == 200:
            self.tally.streaming -= 1
        expected_end = "done:stop" if run.mode == "relay" else "[DONE]"
        if self.error is None and self.terminal != expected_end:
            self.error = f"ended with {self.terminal or 'no end event'}"
        if self.error is None and self.count != run.chunks:
            self.error = f"{run.chunks - self.count} chunks missing"
        if run.followers and not self.follower and not self.followed:
            self.followed = True  # its followers could not open: they count as failed
            run.open_followers(self, None)
        run.record(self)
        if self.transport is not None:
            self.transport.close()


class Run:
    def __init__(self, args, streams: int, start_ns: int):
        self.args = args
        self.mode = args.mode
        self.chunks = args.chunks
        self.followers = args.followers if self.mode == "relay" else 0
        spread = args.ramp if args.arrival in ("ramp", "poisson") else 0.0
        steady_from = start_ns + int((spread + 1.0) * 1e9)
        self.main = Tally(steady_from)  # the streams the client asked for
        self.follow = Tally(steady_from)  # GET /api/messages/<id>/events, --followers per stream
        self.pending = streams
        self.streams: list[Stream] = []
        self.tasks: list[asyncio.Future] = []
        self.all_done = asyncio.Event()
        self.one_done = asyncio.Event()  # set as each stream ends (for sequential arrivals)
        self.cookie = ""  # --returning: the session every POST stream carries
        message = json.dumps({"bench": "ticks", "chunks": args.chunks,
                              "interval_ms": args.interval_ms, "pad": args.pad,
                              "think_ms": args.think_ms})
        if self.mode == "direct":
            path = "/v1/chat/completions"
            body = {"model": "bench", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": message}]}
        else:
            path = "/chat"
            body = {"message": message}
            if self.mode == "relay":
                body["model"] = args.model
        self.path, self.body = path, body
        self.request_bytes = self.request(body)

    def request(self, body: dict) -> bytes:
        payload = json.dumps(body).encode()
        cookie = f"Cookie: {self.cookie}\r\n" if self.cookie else ""
        if self.args.bearer:
            cookie += f"Authorization: Bearer {self.args.bearer}\r\n"
        return (f"POST {self.path} HTTP/1.1\r\nHost: {self.args.host}:{self.args.port}\r\n"
                f"Content-Type: application/json\r\nAccept: text/event-stream\r\n{cookie}"
                f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload

    async def become_returning(self) -> None:
        """One first visit with a one-chunk reply, read to its end; its session cookie then
        goes on every stream."""
        message = json.dumps({"bench": "ticks", "chunks": 1, "interval_ms": 1})
        reader, writer = await asyncio.open_connection(self.args.host, self.args.port)
        writer.write(self.request({**self.body, "message": message}))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        await asyncio.wait_for(reader.readuntil(b"event: done"), 30)
        writer.close()
        self.cookie = "; ".join(line.split(":", 1)[1].strip().split(";", 1)[0]
                                for line in head.split("\r\n")
                                if line[:11].lower() == "set-cookie:")
        if not self.cookie:
            raise SystemExit(f"--returning: the first visit set no cookie:\n{head}")
        self.request_bytes = self.request(self.body)

    def open(self, stream: Stream) -> None:
        """Connect ``stream`` (in a task of its own)."""
        self.streams.append(stream)
        self.tasks.append(asyncio.ensure_future(self._connect(stream)))

    async def _connect(self, stream: Stream) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: stream, self.args.host, self.args.port)
        except OSError as error:
            stream.tally.connect_failures += 1
            stream.error = f"connect: {error.__class__.__name__}"
            stream._finish()

    def open_followers(self, stream: Stream, message_id: str | None) -> None:
        """``--followers`` connections following ``stream``'s reply, with its session cookie;
        when it never told its message id, they count as failed without a connection."""
        n = self.followers
        if not message_id:
            self.follow.fail("not opened: " + ("no message_id in the meta event" if stream.followed
                                               and not stream.finished else "no meta event"), n)
            return
        request = (f"GET /api/messages/{message_id}/events HTTP/1.1\r\n"
                   f"Host: {self.args.host}:{self.args.port}\r\nAccept: text/event-stream\r\n"
                   + (f"Cookie: {stream.cookie}\r\n" if stream.cookie else "")
                   + "\r\n").encode()
        self.pending += n
        self.follow.opened += n
        for _ in range(n):
            self.open(Stream(self, stream.index, follower=True, request=request))

    def record(self, stream: Stream):
        stream.tally.record(stream)
        self.pending -= 1
        self.one_done.set()
        if self.pending == 0:
            self.all_done.set()


def percentiles(values: list[int], scale: float = 1e-6) -> dict:
    """p50/p90/p99/p99.9/max of integer nanoseconds, in milliseconds."""
    if not values:
        return {}
    values = sorted(values)
    n = len(values)

    def at(q):
        return round(values[min(n - 1, int(q * n))] * scale, 3)

    return {"n": n, "min": round(values[0] * scale, 3), "p50": at(0.50), "p90": at(0.90),
            "p99": at(0.99), "p999": at(0.999), "max": round(values[-1] * scale, 3),
            "mean": round(sum(values) / n * scale, 3)}


async def lag_monitor(samples: list[float], stop: asyncio.Event, period: float = 0.01):
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(period)
        samples.append((time.monotonic() - t - period) * 1000)


def figures(raw: dict, streams: int, chunks: int) -> dict:
    """The summary of a tally's raw measurements (``Tally.raw``)."""
    expected = streams * chunks
    return {
        "completed": raw["completed"], "failed": raw["failed"],
        "chunks_expected": expected, "chunks_received": raw["received"],
        "chunks_lost": expected - raw["received"], "duplicates": raw["dupes"],
        "out_of_order": raw["disorder"], "errors": raw["errors"],
        "connect_failures": raw["connect_failures"], "peak_streaming": raw["peak_streaming"],
        "latency_ms": percentiles(raw["latencies"]), "ttft_ms": percentiles(raw["ttft"]),
        "steady_latency_ms": percentiles(raw["steady"]),
        "stream_duration_ms": percentiles(raw["durations"]),
    }


def _merged(raws: list[dict]) -> dict:
    """Several processes' raw tallies as one. Their peaks of open streams are summed: they
    need not have come at the same moment, so the sum is an upper bound."""
    total: dict = {}
    for raw in raws:
        for name, value in raw.items():
            if isinstance(value, list):
                total.setdefault(name, []).extend(value)
            elif isinstance(value, dict):
                counts = total.setdefault(name, {})
                for key, n in value.items():
                    counts[key] = counts.get(key, 0) + n
            else:
                total[name] = total.get(name, 0) + value
    return total


def combined(outputs: list[dict]) -> dict:
    """The outputs of the N ``--shard`` processes of one run, as one process's output."""
    first = outputs[0]
    streams, chunks = first["streams"], first["chunks_per_stream"]
    result = {key: first[key] for key in ("mode", "arrival", "returning", "streams",
                                          "chunks_per_stream", "interval_ms", "ramp_s")}
    result.update(figures(_merged([o["raw"]["main"] for o in outputs]), streams, chunks))
    result["followers_per_stream"] = first["followers_per_stream"]
    result["wall_s"] = max(o["wall_s"] for o in outputs)
    result["client_cpu_s"] = round(sum(o["client_cpu_s"] for o in outputs), 3)
    result["client_loop_lag_ms"] = percentiles([lag for o in outputs for lag in o["raw"]["lags"]])
    result["client_processes"] = len(outputs)
    if first["followers_per_stream"]:
        follow = _merged([o["raw"]["follow"] for o in outputs])
        result["followers"] = {"streams": streams * first["followers_per_stream"],
                               "opened": follow["opened"],
                               **figures(follow, streams * first["followers_per_stream"],
                                         chunks)}
    return result


def arrival_times(args) -> list[tuple[int, float]]:
    """(stream number, seconds after the start at which it opens), for this process's share
    of the streams (``--shard``)."""
    return [(i, at) for i, at in enumerate(_schedule(args)) if i % args.shards == args.shard]


def _schedule(args) -> list[float]:
    n = args.streams
    if args.arrival == "burst":
        return [0.0] * n
    if args.arrival == "poisson":
        rng, at, times = random.Random(args.seed), 0.0, []
        for _ in range(n):
            times.append(at)
            at += rng.expovariate(n / args.ramp) if args.ramp > 0 else 0.0
        return times
    return [args.ramp * i / n for i in range(n)]


async def main_async(args) -> dict:
    loop = asyncio.get_running_loop()
    arrivals = arrival_times(args)
    if args.start_at:
        await asyncio.sleep(max(0.0, args.start_at - time.monotonic()))
    run = Run(args, len(arrivals), time.monotonic_ns())
    stop = asyncio.Event()
    lags: list[float] = []
    monitor = asyncio.ensure_future(lag_monitor(lags, stop))
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    if args.returning:
        await run.become_returning()
    t0 = loop.time()
    deadline = t0 + args.ramp + args.chunks * args.interval_ms / 1000 + args.slack
    if args.arrival == "sequential":
        for i in range(args.streams):
            run.one_done.clear()
            run.open(Stream(run, i))
            try:
                await asyncio.wait_for(run.one_done.wait(),
                                       args.chunks * args.interval_ms / 1000 + args.slack)
            except TimeoutError:  # this one is failed below; the rest are never sent
                unsent = args.streams - i - 1
                run.main.fail("not opened: the stream before it did not end", unsent)
                run.pending -= unsent
                break
            deadline = loop.time() + args.slack
    else:
        for i, at in arrivals:
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            run.open(Stream(run, i))
    try:
        await asyncio.wait_for(run.all_done.wait(), max(0.1, deadline - loop.time()))
    except TimeoutError:
        for stream in list(run.streams):  # a POST stream failing now may still add followers
            if not stream.finished:
                stream.error = stream.error or f"timeout ({stream.count} chunks read)"
                stream._finish()
        for task in run.tasks:
            task.cancel()
    wall = loop.time() - t0
    stop.set()
    await monitor
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "mode": args.mode, "arrival": args.arrival, "returning": args.returning,
        "streams": args.streams, "chunks_per_stream": args.chunks,
        "interval_ms": args.interval_ms, "ramp_s": args.ramp,
        **figures(run.main.raw(), len(arrivals), args.chunks),
        "followers_per_stream": run.followers,
        "wall_s": round(wall, 3),
        "client_cpu_s": round(usage1.ru_utime + usage1.ru_stime
                              - usage0.ru_utime - usage0.ru_stime, 3),
        "client_loop_lag_ms": percentiles([int(x * 1e6) for x in lags]),
    }
    if run.followers:
        streams = len(arrivals) * run.followers
        result["followers"] = {"streams": streams, "opened": run.follow.opened,
                               **figures(run.follow.raw(), streams, args.chunks)}
    if args.shards > 1:
        result["raw"] = {"main": run.main.raw(), "follow": run.follow.raw(),
                         "lags": [int(x * 1e6) for x in lags]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="StreamDesk bench load client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("relay", "direct", "naive"), required=True)
    parser.add_argument("--model", default="openai/bench")
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=50)
    parser.add_argument("--pad", type=int, default=0, help="extra bytes of text per chunk")
    parser.add_argument("--think-ms", type=float, default=0,
                        help="the upstream's wait before each reply's first chunk")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which to connect")
    parser.add_argument("--arrival", choices=("ramp", "burst", "poisson", "sequential"),
                        default="ramp", help="how the streams open (ramp)")
    parser.add_argument("--seed", type=int, default=1, help="--arrival poisson's seed (1)")
    parser.add_argument("--bearer", default="",
                        help="direct: an Authorization bearer token (an OpenAI-compatible peer "
                             "such as the LiteLLM proxy)")
    parser.add_argument("--returning", action="store_true",
                        help="relay: every stream carries one returning user's session cookie")
    parser.add_argument("--slack", type=float, default=20.0,
                        help="seconds past the ideal end before unfinished streams fail")
    parser.add_argument("--followers", type=int, default=0,
                        help="relay only: per stream, connections that follow its reply with "
                             "GET /api/messages/<id>/events once its meta event came (0)")
    parser.add_argument("--shard", default="0/1", metavar="I/N",
                        help="open only the streams whose number is I modulo N (0/1: all)")
    parser.add_argument("--start-at", type=float, default=0.0,
                        help="the moment of CLOCK_MONOTONIC (s) the schedule counts from "
                             "(0: now)")
    args = parser.parse_args()
    try:
        args.shard, args.shards = (int(x) for x in args.shard.split("/"))
    except ValueError:
        parser.error("--shard takes I/N, as 1/4")
    if not 0 <= args.shard < args.shards or (args.shards > 1 and args.arrival == "sequential"):
        parser.error("--shard I/N needs 0 <= I < N, and no --arrival sequential")
    if args.followers < 0 or (args.followers and args.mode != "relay"):
        parser.error("--followers takes a count >= 0, and only with --mode relay")
    if args.returning and args.mode != "relay":
        parser.error("--returning is for --mode relay")
    try:
        import uvloop
        runner = uvloop.run
    except (ImportError, AttributeError):
        runner = asyncio.run
    result = runner(main_async(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Two checkouts measured in turns, on a machine whose speed drifts.

  .venv/bin/python bench/ab.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 2] -- RUN_ARGS...

runs ``bench/run.py --app-dir OLD ... --no-write RUN_ARGS`` and the same for NEW in the order
old, new, new, old (each round once more), then prints each relayed figure of every run, old
and new side by side, with their medians. A shared 2-core VM changed by up to 25 % within
minutes (docs/benchmarks.md, tenth round): runs of one build taken apart in time differ more
than two builds often do, and only interleaved runs tell them apart. Example:

  .venv/bin/python bench/ab.py /tmp/old . -- --unloaded 200 --bursts 200,1000 --levels 500 \\
      --no-naive --no-direct --no-render
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_RESULTS = re.compile(r"results in (\S+);")


def figures(results: dict) -> dict[str, float]:
    """The figures a change to the relay moves, by name, from one run's results.json."""
    found: dict[str, float] = {}
    direct = results.get("unloaded", {}).get("direct", {}).get("ttft_ms", {}).get("p50")
    for users in ("new", "returning"):
        row = results.get("unloaded", {}).get(users)
        if row:
            found[f"unloaded {users}: TTFT p50 (ms)"] = row["ttft_ms"]["p50"]
            if direct is not None:
                found[f"unloaded {users}: added p50 (ms)"] = round(row["ttft_ms"]["p50"] - direct,
                                                                   3)
            found[f"unloaded {users}: CPU per reply (ms)"] = row["cpu_per_reply_ms"]
    for burst in results.get("bursts", []):
        row, n = burst["relay"], burst["relay"]["streams"]
        found[f"burst of {n}: TTFT p50 (ms)"] = row["ttft_ms"]["p50"]
        found[f"burst of {n}: TTFT p99 (ms)"] = row["ttft_ms"]["p99"]
        found[f"burst of {n}: server CPU (s)"] = row["server_cpu_s"]
        # Everything else on the machine: with --shared, mostly PostgreSQL and Redis.
        found[f"burst of {n}: other processes' CPU (s)"] = row["other_cpu_s"]
    for level in results.get("levels", []):
        row, n = level["relay"], level["streams"]
        found[f"{n} streams: chunk latency p99 (ms)"] = row["latency_ms"]["p99"]
        found[f"{n} streams: TTFT p99 (ms)"] = row["ttft_ms"]["p99"]
        found[f"{n} streams: CPU per chunk (µs)"] = row["cpu_per_chunk_us"]
        found[f"{n} streams: other processes' CPU (s)"] = row["other_cpu_s"]
        found[f"{n} streams: RSS per stream (KB)"] = row["rss_per_stream_kb"]
    return found


def measure(checkout: Path, run_args: list[str]) -> dict[str, float]:
    command = [sys.executable, str(BENCH / "run.py"), "--app-dir", str(checkout), "--no-write",
               *run_args]
    print("$", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    match = _RESULTS.search(done.stdout + done.stderr)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"bench/run.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return figures(json.loads((Path(match.group(1)) / "results.json").read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=2,
                        help="old, new, new, old counts as two rounds (2)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: bench/run.py's arguments
    args, run_args = parser.parse_args(argv[:cut]), argv[cut + 1:]
    if args.rounds < 1:
        parser.error("--rounds takes a count >= 1")
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for round_ in range(args.rounds):  # old, new; new, old; old, new; ...
        for which in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            runs[which].append(measure(getattr(args, which).resolve(), run_args))
    names = list(dict.fromkeys(name for run in runs["old"] + runs["new"] for name in run))
    print(f"| figure | old ({args.old}) | new ({args.new}) | median old | median new |")
    print("|---|---|---|---:|---:|")
    for name in names:
        old = [run[name] for run in runs["old"] if name in run]
        new = [run[name] for run in runs["new"] if name in run]
        print(f"| {name} | {', '.join(f'{v:g}' for v in old)} | "
              f"{', '.join(f'{v:g}' for v in new)} | {statistics.median(old):.4g} | "
              f"{statistics.median(new):.4g} |")


if __name__ == "__main__":
    main()

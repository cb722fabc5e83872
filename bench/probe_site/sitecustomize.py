"""Loaded by every Python process started with this folder on PYTHONPATH (bench/memory_probe.py
starts the app so): on ``SIGNAL`` the process writes what it holds to a JSON file in
``$MEMORY_PROBE_DIR``, so the app itself is measured unchanged.

Written: resident memory, each greenlet's saved C stack (grouped by the three innermost frames
it waits in), the objects the garbage collector tracks (by type), and, when tracemalloc is
tracing (PYTHONTRACEMALLOC=1), the allocation lines compared with the first snapshot taken.
"""
import os
import signal

SIGNAL = signal.SIGRTMIN + 4
_first_snapshot = []


def _dump(*_):
    import collections
    import gc
    import json
    import time
    import tracemalloc

    import greenlet

    objects = gc.get_objects()
    greenlets = [o for o in objects if isinstance(o, greenlet.greenlet)]
    saved = collections.Counter()
    for each in greenlets:
        names, frame = [], each.gr_frame
        while frame is not None and len(names) < 3:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        saved[" < ".join(names)] += each._stack_saved
    found = {
        "rss_kb": int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        // 1024,
        "greenlets": len(greenlets),
        "saved_stack_bytes": sum(each._stack_saved for each in greenlets),
        "saved_stack_by_wait": saved.most_common(10),
        "gc_objects": len(objects),
        "types": collections.Counter(type(o).__name__ for o in objects).most_common(60),
    }
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        if _first_snapshot:
            found["allocations"] = [(s.size_diff, s.count_diff, str(s.traceback)) for s in
                                    snapshot.compare_to(_first_snapshot[0], "lineno")[:40]]
        else:
            _first_snapshot.append(snapshot)
    name = f"{os.getpid()}.{time.monotonic_ns()}.json"
    folder = os.environ["MEMORY_PROBE_DIR"]
    with open(os.path.join(folder, name + ".part"), "w") as file:
        json.dump(found, file)
    os.rename(os.path.join(folder, name + ".part"), os.path.join(folder, name))


if os.environ.get("MEMORY_PROBE_DIR"):
    signal.signal(SIGNAL, _dump)

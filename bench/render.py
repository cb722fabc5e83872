"""The rendering benchmark: a 20,000-token markdown reply streamed at 200 tokens/s through the
app into the real page in headless Chromium; how long does the page's main thread stay busy?

  .venv/bin/python bench/render.py [--app-dir DIR] [--tokens 20000] [--rate 200]

It uses only the page's public behaviour, so it works whatever renders the markdown: type
into ``#input``, press Enter, wait until ``#send`` shows again (the reply has finished).

Measured three ways, all on the page's main thread:

* a ``PerformanceObserver`` for ``longtask`` entries (tasks over 50 ms), installed before
  any page script runs (``add_init_script``);
* with ``--trace``, a trace of the ``toplevel`` category (every task the renderer's main
  thread ran, however short), which gives the longest task even when it is under 50 ms
  (off by default: tracing costs the renderer a little per task, and 100 s of it is ~200 MB);
* CDP ``Performance.getMetrics`` before and after: ScriptDuration (total scripting time),
  TaskDuration, LayoutDuration, RecalcStyleDuration.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402
from markdown_doc import markdown_tokens  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

LONGTASK_OBSERVER = """
window.__benchLongTasks = [];
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__benchLongTasks.push({start: entry.startTime, duration: entry.duration});
    }
  }).observe({type: "longtask", buffered: true});
} catch (error) {
  window.__benchLongTasks = null;  // not supported: reported as such
}
"""


def _main_thread_tasks(trace: dict) -> list[float]:
    """Durations (ms) of the top-level tasks of the page's renderer main thread."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    main = set()
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name" and \
                e.get("args", {}).get("name") == "CrRendererMain":
            main.add((e["pid"], e["tid"]))
    durations = []
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in main and "dur" in e and \
                e.get("name") in ("ThreadControllerImpl::RunTask", "RunTask"):
            durations.append(e["dur"] / 1000.0)
    return durations


def _page_version(app_dir: Path) -> tuple[list[str], bool, str]:
    def git(*words):
        return subprocess.run(["git", "-C", str(app_dir), *words], capture_output=True,
                              text=True).stdout.strip()

    scripts = sorted(p.name for p in (app_dir / "static").rglob("*")
                     if p.is_file() and p.suffix in (".js", ".mjs"))
    dirty = bool(git("status", "--porcelain", "--", "static", "templates"))
    return scripts, dirty, git("rev-parse", "--short", "HEAD")


def run(app_dir: Path, out: Path, tokens: int = 20000, rate: float = 200,
        trace: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    procs.raise_fd_limit()
    if (app_dir / "package.json").exists() and not (app_dir / "node_modules").exists():
        return {"error": f"{app_dir} has package.json but no node_modules: run `npm ci` there "
                         "(make install does) so the page's libraries can be served"}
    scripts, dirty, commit = _page_version(app_dir)
    doc = "".join(markdown_tokens(tokens))
    result = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": commit,
              "page_scripts": scripts, "page_dirty": dirty, "notes": []}
    upstream, upstream_port, _ = procs.start_upstream(out / "render-upstream.log")
    try:
        with tempfile.TemporaryDirectory(prefix="streamdesk-render-") as instance:
            app, port = procs.start_app(app_dir, upstream_port, Path(instance),
                                        out / "render-app.log", {})
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                         args=CHROMIUM_ARGS)
                    try:
                        result.update(_measure(browser, f"http://127.0.0.1:{port}/", tokens,
                                               rate, doc, out, trace))
                    finally:
                        browser.close()
            finally:
                app.stop(grace=5)
    except Exception as error:  # reported in the table rather than losing the relay results
        result["error"] = f"{error.__class__.__name__}: {str(error)[:500]}"
    finally:
        upstream.stop(grace=3)
    return result


def _measure(browser, url: str, tokens: int, rate: float, doc: str, out: Path,
             trace: bool) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(LONGTASK_OBSERVER)
    page.goto(url)
    page.wait_for_selector("#input")
    # The model list arrives by fetch; the bench model is the app's default. (Not
    # wait_for_function: once it has to poll, it compiles its predicate with eval, which the
    # page's Content-Security-Policy refuses.)
    page.locator("#model option").first.wait_for(state="attached", timeout=15000)
    time.sleep(1.0)  # let the page settle: its own start-up tasks are not the reply's
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    page.evaluate("window.__benchLongTasks && (window.__benchLongTasks.length = 0)")
    if trace:
        browser.start_tracing(page=page, categories=["toplevel"])
    tracing = trace
    try:
        page.fill("#input", json.dumps({"bench": "markdown", "tokens": tokens, "rate": rate}))
        started = time.monotonic()
        page.press("#input", "Enter")
        try:
            page.wait_for_selector("#send", state="hidden", timeout=10000)
        except Exception:
            pass  # a very fast reply may already be over
        page.wait_for_selector("#send", state="visible", timeout=int((tokens / rate + 120) * 1000))
        duration = time.monotonic() - started
        time.sleep(0.5)  # the tasks that finish the reply
        task_durations = []
        if trace:
            tracing = False
            task_durations = _main_thread_tasks(json.loads(browser.stop_tracing()))
    finally:
        if tracing:
            try:
                browser.stop_tracing()
            except Exception:
                pass
    after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    long_tasks = page.evaluate("window.__benchLongTasks")
    rendered = page.evaluate("document.querySelector('#messages')?.textContent.length || 0")
    page.screenshot(path=str(out / "render-final.png"))
    context.close()
    task_durations.sort()
    notes = []
    if long_tasks is None:
        notes.append("This Chromium does not report `longtask` entries; the longest task comes "
                     "from the trace alone.")
        long_tasks = []
    if errors:
        notes.append(f"JavaScript errors on the page: {errors[:3]}")
    longest_observed = max((t["duration"] for t in long_tasks), default=0.0)
    longest_traced = task_durations[-1] if task_durations else 0.0
    n = len(task_durations)
    return {
        "summary": {
            "tokens": tokens, "rate": rate, "characters": len(doc),
            "tables": doc.count("|---|"), "code_blocks": doc.count("```") // 2,
            "duration_s": duration,
            "longest_task_ms": max(longest_observed, longest_traced),
            "longest_longtask_entry_ms": longest_observed,
            "longest_traced_task_ms": longest_traced,
            "long_tasks": len(long_tasks),
            "long_task_total_ms": sum(t["duration"] for t in long_tasks),
            "traced_tasks": n,
            "traced_task_p99_ms": task_durations[min(n - 1, int(0.99 * n))] if n else 0.0,
            "script_s": after.get("ScriptDuration", 0) - before.get("ScriptDuration", 0),
            "task_s": after.get("TaskDuration", 0) - before.get("TaskDuration", 0),
            "layout_s": after.get("LayoutDuration", 0) - before.get("LayoutDuration", 0),
            "recalc_style_s": (after.get("RecalcStyleDuration", 0)
                               - before.get("RecalcStyleDuration", 0)),
            "rendered_chars": rendered,
        },
        "browser_version": browser.version,
        "long_tasks_sample": sorted(long_tasks, key=lambda t: -t["duration"])[:20],
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="StreamDesk rendering benchmark")
    parser.add_argument("--app-dir", type=Path, default=procs.ROOT)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--trace", action="store_true",
                        help="also trace every main-thread task (adds a little overhead; "
                             "gives the longest task even under 50 ms)")
    args = parser.parse_args()
    out = procs.BENCH / "results" / ("render-" + time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    result = run(args.app_dir.resolve(), out, args.tokens, args.rate, args.trace)
    (out / "render.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

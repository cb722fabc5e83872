"""Starting, watching and stopping the processes of a bench run.

Everything here runs on loopback only. Every process started is stopped in a ``finally`` by
its own pid (SIGTERM, then SIGKILL after a grace period); nothing is left running.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The machine's own configuration must not leak into the app under test (as tests/conftest.py).
_PROVIDER_PREFIXES = ("OPENAI_", "ERNIE_", "SPARK_")
_APP_VARIABLES = {"STREAMDESK_CONFIG", "DATABASE_URL", "REDIS_URL", "DEFAULT_MODEL", "SECRET_KEY",
                  "SYSTEM_PROMPT", "LOCK_SYSTEM_PROMPT", "ACCESS_CODE", "RATE_LIMIT",
                  "WEB_CONCURRENCY", "WORKER_CONNECTIONS", "SAVE_INTERVAL_SECONDS",
                  "HEARTBEAT_SECONDS", "INSTANCE_PATH", "LOG_LEVEL", "PORT", "HOST",
                  "IP_RATE_LIMIT", "MAX_STREAMS_PER_USER", "TRUSTED_USER_HEADER", "TRUSTED_PROXIES",
                  "LOG_CONTENT", "PROMETHEUS_MULTIPROC_DIR", "GRACEFUL_TIMEOUT"}


def raise_fd_limit(wanted: int = 65536) -> int:
    """2,000 streams need ~6,000 descriptors across the processes; the default may be 1,024.
    Children inherit the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(app_dir: Path, port: int) -> list[str]:
    """The Procfile's web command, word for word, with $PORT filled in (as tests/conftest.py)."""
    lines = (app_dir / "Procfile").read_text().splitlines()
    (line,) = [text for text in lines if text.startswith("web:")]
    words = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    words[0] = str(BIN / words[0])  # the gunicorn of this virtual environment
    return words


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(_PROVIDER_PREFIXES) or k in _APP_VARIABLES)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""


class Proc:
    """A child process whose output goes to a log file (never a pipe that could fill)."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env, cwd=cwd, start_new_session=True)
        self.pid = self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{log[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not say {text!r} in {timeout} s:\n{self.log()[-3000:]}")

    def stop(self, grace: float = 15.0) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # A gunicorn worker outliving its master would be orphaned: end our own group's
        # survivors by pid (the group was made by start_new_session for this child alone).
        for pid in _group_members(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return members


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn: the master and its workers)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as f:
                todo += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    except (OSError, IndexError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def others_busy_cores(ours: list[int], window: float = 1.0) -> float:
    """Cores kept busy by processes other than ``ours`` (and their children) over ``window``."""
    def our_cpu():
        return sum(cpu_seconds(p) for root in ours for p in process_tree(root))

    machine0, mine0 = machine_busy_seconds(), our_cpu()
    time.sleep(window)
    return max(0.0, (machine_busy_seconds() - machine0) - (our_cpu() - mine0)) / window


def wait_quiet(ours: list[int], threshold: float, timeout: float, say=print) -> float:
    """Wait (at most ``timeout`` s) until other processes use less than ``threshold`` cores:
    the machine may be shared, and their load would be measured as the relay's latency."""
    deadline = time.monotonic() + timeout
    busy = others_busy_cores(ours)
    if busy >= threshold:
        say(f"other processes keep {busy:.1f} cores busy; waiting up to {timeout:.0f} s for quiet")
    while busy >= threshold and time.monotonic() < deadline:
        busy = others_busy_cores(ours)
    return busy


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeSampler:
    """Samples a process tree every ``period`` seconds: summed RSS (and its peak) and CPU
    seconds per pid (kept for pids that have exited, so a worker that died still counts)."""

    def __init__(self, root_pid: int, period: float = 0.2):
        self.root_pid = root_pid
        self.period = period
        self.cpu: dict[int, float] = {}
        self.peak_rss_kb = 0
        self.pids_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> int:
        total = 0
        for pid in process_tree(self.root_pid):
            self.pids_seen.add(pid)
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
            total += memory_kb(pid)[0]
        self.peak_rss_kb = max(self.peak_rss_kb, total)
        return total

    def rss_kb(self) -> int:
        return sum(memory_kb(pid)[0] for pid in process_tree(self.root_pid))

    def cpu_total(self) -> float:
        self.sample()
        return sum(self.cpu.values())

    def start(self) -> TreeSampler:
        self.sample()
        self.peak_rss_kb = 0
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Upstream:
    """The stand-in upstream: one process, or several sharing its ports (``--load-processes``),
    counted together."""

    def __init__(self, processes: list[Proc], stats_ports: list[int]):
        self.processes, self.stats_ports = processes, stats_ports
        self.pids = [proc.pid for proc in processes]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def stats(self) -> dict:
        """Requests, active, completed and dropped streams, summed over the processes."""
        total: dict = {}
        for port in self.stats_ports:
            status, body = http_get(f"http://127.0.0.1:{port}/_stats")
            for name, value in (json.loads(body) if status == 200 else {}).items():
                total[name] = total.get(name, 0) + value
        return total

    def stop(self, grace: float = 15.0) -> None:
        for proc in self.processes:
            proc.stop(grace)


def start_upstream(log: Path, tls: tuple[Path, Path] | None = None, processes: int = 1
                   ) -> tuple[Upstream, int, int | None]:
    """The stand-in upstream in ``processes`` processes sharing its ports: its plain port,
    and with ``tls`` (certificate, key) its HTTPS port too."""
    started: list[Proc] = []
    stats_ports: list[int] = []
    port, tls_port = 0, None
    try:
        for n in range(processes):
            command = [PYTHON, str(BENCH / "upstream.py"), "--port", str(port)]
            if processes > 1:
                command.append("--reuse-port")
            if tls:
                command += ["--tls", str(tls[0]), str(tls[1]), "--tls-port", str(tls_port or 0)]
            name = log if n == 0 else log.with_name(f"{log.stem}-{n}{log.suffix}")
            proc = Proc("upstream", command, name)
            started.append(proc)
            text = proc.wait_for_log("stats ", timeout=20)
            port = int(text.split("listening ", 1)[1].split()[0])
            if tls:
                tls_port = int(text.split("listening-tls ", 1)[1].split()[0])
            stats_ports.append(int(text.split("stats ", 1)[1].split()[0]))
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    return Upstream(started, stats_ports), port, tls_port


def make_certificate(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A self-signed certificate for ``name`` (and 127.0.0.1) and its key, for the HTTPS
    upstream, and the bundle the app trusts (REQUESTS_CA_BUNDLE): certifi's authorities and
    this certificate, as a deployment's trust store holds ~150 authorities, not one."""
    import certifi

    cert, key = folder / "upstream-cert.pem", folder / "upstream-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
                   check=True, capture_output=True)
    bundle = folder / "upstream-trusted.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + cert.read_bytes())
    return cert, key, bundle


def loop_lateness(port: int) -> dict:
    """The app's event-loop lateness (streamdesk/loop_lag.py) from its /metrics, summed over
    its workers: late ticks counted per histogram bucket, and the longest since start; and
    the longest save of growing replies since start (streamdesk/chat/progress.py)."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    found: dict = {"buckets": {}, "count": 0.0, "longest_s": None, "longest_save_s": None}
    if status != 200:
        return found
    for line in body.decode().splitlines():
        if line.startswith("streamdesk_event_loop_late_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found["buckets"][bound] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("streamdesk_event_loop_late_seconds_count"):
            found["count"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("streamdesk_event_loop_late_max_seconds"):
            value = float(line.rsplit(" ", 1)[1])
            found["longest_s"] = max(found["longest_s"] or 0.0, value)
        elif line.startswith("streamdesk_progress_save_max_seconds"):
            value = float(line.rsplit(" ", 1)[1])
            found["longest_save_s"] = max(found["longest_save_s"] or 0.0, value)
    return found


def start_app(app_dir: Path, upstream_port: int, instance: Path, log: Path,
              env: dict[str, str], upstream_host: str = "127.0.0.1",
              scheme: str = "http") -> tuple[Proc, int]:
    """The app as the Procfile starts it, relaying the bench upstream as model openai/bench;
    ``upstream_host`` is the address or name it is given for the upstream."""
    port = free_port()
    app_env = clean_env({
        "OPENAI_BASE_URL": f"{scheme}://{upstream_host}:{upstream_port}/v1",
        "OPENAI_MODELS": "bench",
        "DEFAULT_MODEL": "openai/bench",
        "INSTANCE_PATH": str(instance),
        "WEB_CONCURRENCY": "2",
        **env,
    })
    proc = Proc("gunicorn", procfile_command(app_dir, port), log, env=app_env, cwd=app_dir)
    try:
        proc.wait_for_log("Listening at:", timeout=30)
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def start_naive(upstream_port: int, log: Path) -> tuple[Proc, int]:
    port = free_port()
    env = clean_env({"NAIVE_UPSTREAM": f"http://127.0.0.1:{upstream_port}/v1",
                     "NAIVE_PORT": str(port)})
    proc = Proc("naive relay", [PYTHON, str(BENCH / "naive_relay.py")], log, env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    except BaseException:
        proc.stop()
        raise
    return proc, port


# The LiteLLM proxy as a peer row (--peer litellm): a release pinned here, installed into a
# virtual environment of its own under bench/ (never the app's), configured after its
# "Production Best Practices" page: a master key, verbose logging off, one worker per app
# worker, no database (no spend logs to write).
LITELLM_RELEASE = "litellm[proxy]==1.74.9"
LITELLM_VENV = BENCH / ".litellm-venv"
LITELLM_KEY = "sk-bench-peer-master-key"


def ensure_litellm(say=print) -> Path:
    executable = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / ".release"
    if executable.exists() and marker.exists() and marker.read_text() == LITELLM_RELEASE:
        return executable
    say(f"installing {LITELLM_RELEASE} into {LITELLM_VENV} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", LITELLM_RELEASE],
                   check=True)
    marker.write_text(LITELLM_RELEASE)
    return executable


def start_litellm(upstream_port: int, workers: int, folder: Path,
                  log: Path) -> tuple[Proc, int]:
    executable = ensure_litellm()
    port = free_port()
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/bench\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: bench-upstream-key\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  request_timeout: 600\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n")
    env = clean_env({"LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION"})
    proc = Proc("litellm", [str(executable), "--config", str(config), "--host", "127.0.0.1",
                            "--port", str(port), "--num_workers", str(workers)], log, env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=120)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def wait_healthy(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(url, timeout=1.0)[0] == 200:
            return
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} never answered {url}:\n{proc.log()[-3000:]}")


# Client processes that share a run start their schedule this long after being launched, so
# that each has started and imported what it needs by then.
CLIENT_START_SECONDS = 2.0


def run_client(port: int, mode: str, streams: int, chunks: int, interval_ms: float, ramp: float,
               slack: float, pad: int = 0, followers: int = 0, arrival: str = "ramp",
               returning: bool = False, bearer: str = "", think_ms: float = 0,
               processes: int = 1) -> dict:
    """bench/client.py's figures for one run; with ``processes`` > 1 the streams are shared
    among that many client processes on one schedule, and their figures combined."""
    command = [PYTHON, str(BENCH / "client.py"), "--port", str(port), "--mode", mode,
               "--streams", str(streams), "--chunks", str(chunks),
               "--interval-ms", str(interval_ms), "--ramp", str(ramp), "--slack", str(slack),
               "--pad", str(pad), "--arrival", arrival, "--think-ms", str(think_ms)]
    if followers:
        command += ["--followers", str(followers)]
    if returning:
        command.append("--returning")
    if bearer:
        command += ["--bearer", bearer]
    limit = ramp + (think_ms + chunks * interval_ms) / 1000 + slack + 60
    if arrival == "sequential":
        limit += streams * ((think_ms + chunks * interval_ms) / 1000 + 1)
    processes = 1 if arrival == "sequential" else max(1, min(processes, streams))
    if processes == 1:
        return json.loads(_client_output(subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), limit))
    import client
    start_at = time.monotonic() + CLIENT_START_SECONDS
    shards = [subprocess.Popen(command + ["--shard", f"{n}/{processes}", "--start-at",
                                          f"{start_at:.6f}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for n in range(processes)]
    try:
        return client.combined([json.loads(_client_output(shard, limit)) for shard in shards])
    finally:
        for shard in shards:
            if shard.poll() is None:
                shard.kill()
                shard.wait()


def _client_output(process: subprocess.Popen, limit: float) -> str:
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"client failed ({process.returncode}): {stderr[-3000:]}")
    return stdout


@contextlib.contextmanager
def shared_services(admin_url: str, redis_url: str):
    """The shared deployment of docs/deploy.md for one app start: a new PostgreSQL database
    (dropped afterwards) and ``redis_url``'s database emptied first, so no run inherits
    another's rows, sessions or counters. Yields the app's DATABASE_URL and REDIS_URL."""
    import psycopg
    import redis

    name = f"streamdesk_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield {"DATABASE_URL": admin_url.rsplit("/", 1)[0] + "/" + name, "REDIS_URL": redis_url}
    finally:
        client.flushdb()
        client.close()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

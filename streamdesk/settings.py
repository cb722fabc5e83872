"""All of StreamDesk's own configuration, read from the environment once, at start-up.

Provider variables (OPENAI_*, ERNIE_*, SPARK_*, DEMO_DELAY_MS, DEFAULT_MODEL, STREAMDESK_CONFIG)
are read by ``providers.registry``, also at start-up; gunicorn's own (WEB_CONCURRENCY,
WORKER_CONNECTIONS, GRACEFUL_TIMEOUT) by ``gunicorn.conf.py``. Everything else is here, and
nothing reads the environment later. A bad value stops start-up with a message naming the
variable.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many

from providers.config import MAX_STARTER, MAX_STARTERS, parse_flag

# ./instance beside app.py, as Flask would choose it.
DEFAULT_INSTANCE_PATH = str(Path(__file__).resolve().parent.parent / "instance")
# Connections each worker keeps to a database server (DATABASE_POOL_SIZE): as many at once as
# SQLAlchemy's default pool allowed (5 kept and 10 more), now all kept once made.
DEFAULT_POOL_SIZE = 15
# MAX_REPLY_SECONDS: the longest a reply may be written; the stream cap looks no further back.
DEFAULT_MAX_REPLY_SECONDS = 600.0


class SettingsError(ValueError):
    pass


BUDGET_PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Budget:
    """A user may spend ``tokens`` per calendar ``period`` (UTC): TOKEN_BUDGET's notation,
    ``200000/day;2000000/month``."""
    tokens: int
    period: str


@dataclass(frozen=True)
class BudgetOverrides:
    """TOKEN_BUDGET_OVERRIDES: other budgets for named users (their SSO names) and groups;
    an empty tuple is no budget at all."""
    users: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)
    groups: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    instance_path: str
    secret_key: str
    database_url: str
    database_pool_size: int  # connections each worker keeps to a database server
    redis_url: str | None
    max_message_chars: int
    max_body_bytes: int
    body_timeout_seconds: float  # a request body must arrive whole within this
    heartbeat_seconds: float
    save_interval_seconds: float
    max_reply_seconds: float  # a reply still running after this long is ended (interrupted)
    max_reply_chars: int  # a reply is ended ("length") once it has this many characters
    cancel_on_disconnect: bool  # a reply stops when the connection that asked for it closes
    cookie_secure: bool
    # Identity (docs/helpdesk.md)
    access_code: str | None
    trusted_user_header: str | None
    trusted_proxies: tuple  # ipaddress networks
    # The operator-locked assistant
    system_prompt: str | None
    lock_system_prompt: bool
    # Limits
    rate_limit: str | None
    access_code_attempts: str  # wrong access codes per address before a lockout
    ip_rate_limit: str | None
    max_streams_per_user: int
    max_followers_per_user: int  # replies one user may follow at once, per worker process
    stop_rate_limit: str  # stop requests per user
    token_budget: tuple[Budget, ...]  # TOKEN_BUDGET; () for none
    budget_overrides: BudgetOverrides
    trusted_groups_header: str | None  # the SSO proxy's header listing the user's groups
    # The operator page (/admin): SSO names, or a code for an access-code set-up
    admin_users: tuple[str, ...]
    admin_code: str | None
    # An empty chat: the words and questions of models that have none of their own
    greeting: str | None
    starters: tuple[str, ...]
    # The OpenAI-compatible API on /v1 and the personal keys it is used with (API_KEYS=off)
    api_keys: bool
    # The embeddable widget (docs/helpdesk.md): the portals' origins that may show it, and
    # whether any of them is another site (then the session cookie is SameSite=None, Partitioned)
    widget_origins: tuple[str, ...]
    widget_cross_site: bool
    # Hardening
    frame_ancestors: str
    cors_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]  # host names the app answers for, lowercase; () any
    metrics_allowed_from: tuple  # ipaddress networks that may read /metrics and /readyz; () all
    # Logs
    log_level: str
    log_content: bool  # message and reply text in the reply log lines


def load_settings(env: Mapping[str, str]) -> Settings:
    instance_path = env.get("INSTANCE_PATH") or DEFAULT_INSTANCE_PATH
    os.makedirs(instance_path, exist_ok=True)
    max_streams = _integer(env, "MAX_STREAMS_PER_USER", 3, 1)
    settings = Settings(
        instance_path=instance_path,
        secret_key=env.get("SECRET_KEY") or _instance_secret(instance_path),
        database_url=env.get("DATABASE_URL")
        or "sqlite:///" + os.path.join(instance_path, "streamdesk.sqlite3"),
        database_pool_size=_integer(env, "DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE, 1),
        redis_url=env.get("REDIS_URL") or None,
        max_message_chars=_integer(env, "MAX_MESSAGE_CHARS", 32_000, 1),
        max_body_bytes=_integer(env, "MAX_BODY_BYTES", 1_048_576, 1024),
        body_timeout_seconds=_number(env, "BODY_TIMEOUT_SECONDS", 30.0, 0.1, 3600.0),
        heartbeat_seconds=_number(env, "HEARTBEAT_SECONDS", 10.0, 0.05, 15.0),
        save_interval_seconds=_number(env, "SAVE_INTERVAL_SECONDS", 1.0, 0.0, 60.0),
        max_reply_seconds=_number(env, "MAX_REPLY_SECONDS", DEFAULT_MAX_REPLY_SECONDS, 1.0,
                                  86_400.0),
        max_reply_chars=_integer(env, "MAX_REPLY_CHARS", 1_000_000, 1),
        cancel_on_disconnect=_flag(env, "CANCEL_ON_DISCONNECT"),
        cookie_secure=_flag(env, "SESSION_COOKIE_SECURE"),
        access_code=env.get("ACCESS_CODE") or None,
        trusted_user_header=env.get("TRUSTED_USER_HEADER") or None,
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        system_prompt=env.get("SYSTEM_PROMPT") or None,
        lock_system_prompt=_flag(env, "LOCK_SYSTEM_PROMPT"),
        rate_limit=_rate_limit(env, "RATE_LIMIT"),
        access_code_attempts=_rate_limit(env, "ACCESS_CODE_ATTEMPTS") or "5 per 15 minutes",
        ip_rate_limit=_rate_limit(env, "IP_RATE_LIMIT"),
        max_streams_per_user=max_streams,
        # A few tabs per reply being written, each following it, and room to reload them.
        max_followers_per_user=_integer(env, "MAX_FOLLOWERS_PER_USER", 4 * max_streams, 1),
        stop_rate_limit=_rate_limit(env, "STOP_RATE_LIMIT") or "30/minute",
        token_budget=_budgets(env.get("TOKEN_BUDGET", ""), "environment variable TOKEN_BUDGET"),
        budget_overrides=_budget_overrides(env.get("STREAMDESK_CONFIG")),
        trusted_groups_header=env.get("TRUSTED_GROUPS_HEADER") or None,
        admin_users=tuple(n.strip() for n in env.get("ADMIN_USERS", "").split(",") if n.strip()),
        admin_code=env.get("ADMIN_CODE") or None,
        api_keys=_flag(env, "API_KEYS", default=True),
        greeting=env.get("GREETING", "").strip() or None,
        starters=_starters(env, "STARTERS"),
        widget_origins=_origins(env, "WIDGET_ORIGINS"),
        widget_cross_site=_flag(env, "WIDGET_CROSS_SITE"),
        frame_ancestors=env.get("FRAME_ANCESTORS", "").strip() or "'none'",
        cors_origins=tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",")
                           if o.strip()),
        allowed_hosts=tuple(h.strip().lower() for h in env.get("ALLOWED_HOSTS", "").split(",")
                            if h.strip()),
        metrics_allowed_from=_networks(env, "METRICS_ALLOWED_FROM"),
        log_level=_log_level(env, "LOG_LEVEL"),
        log_content=_flag(env, "LOG_CONTENT"),
    )
    if settings.widget_cross_site and not (settings.cookie_secure and settings.widget_origins):
        raise SettingsError("environment variable WIDGET_CROSS_SITE: needs WIDGET_ORIGINS and "
                            "SESSION_COOKIE_SECURE=1 (browsers keep cross-site cookies only "
                            "over HTTPS)")
    if settings.admin_code and settings.admin_code == settings.access_code:
        raise SettingsError("environment variable ADMIN_CODE: must differ from ACCESS_CODE")
    if settings.trusted_user_header and not settings.trusted_proxies:
        raise SettingsError("environment variable TRUSTED_PROXIES: required with "
                            "TRUSTED_USER_HEADER (the addresses of the proxies that set it)")
    return settings


def _instance_secret(instance_path: str) -> str:
    """A development secret generated once and kept in the instance folder, so sessions
    survive restarts without a constant in the code. Several workers may start at once:
    the file appears atomically (link) and whoever loses the race reads the winner's."""
    path = os.path.join(instance_path, "secret_key")
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    with open(path) as f:
        return f.read().strip()


def _integer(env, name, default, minimum):
    value = _number(env, name, default, minimum, float("inf"))
    if value != int(value):
        raise SettingsError(f"environment variable {name}: must be a whole number")
    return int(value)


def _number(env, name, default, minimum, maximum):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name}: must be a number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"environment variable {name}: must be between {minimum} and {maximum}")
    return value


def _networks(env, name) -> tuple:
    networks = []
    for part in env.get(name, "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingsError(f"environment variable {name}: {part.strip()!r} is not an "
                                    "IP address or network") from None
    return tuple(networks)


def _rate_limit(env, name) -> str | None:
    """The limits library's notation: '20/minute;300/day'."""
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(f"environment variable {name}: {value!r} is not a rate limit like "
                            "'20/minute;300/day'") from None
    return value


def _budgets(text: str, where: str) -> tuple[Budget, ...]:
    """``200000/day;2000000/month``; empty or ``none``: no budget."""
    if text.strip().lower() in ("", "none"):
        return ()
    budgets = []
    for part in text.split(";"):
        tokens, _, period = part.strip().partition("/")
        tokens = tokens.strip().replace("_", "").replace(",", "")
        if not tokens.isdigit() or int(tokens) < 1 or period.strip() not in BUDGET_PERIODS:
            raise SettingsError(f"{where}: {text!r} is not a token budget like "
                                "'200000/day;2000000/month' (periods: day, week, month)")
        budgets.append(Budget(int(tokens), period.strip()))
    return tuple(budgets)


def _budget_overrides(config_path: str | None) -> BudgetOverrides:
    """The ``[token_budget_overrides]`` table of the STREAMDESK_CONFIG file:
    ``users = {"alice" = "1000000/day"}``, ``groups = {"it-staff" = "none"}``."""
    if not config_path:
        return BudgetOverrides()
    try:
        with open(config_path, "rb") as f:
            table = tomllib.load(f).get("token_budget_overrides", {})
    except (OSError, tomllib.TOMLDecodeError):
        return BudgetOverrides()  # the providers' loading says what is wrong with the file
    where = f"{config_path}: [token_budget_overrides]"
    if not isinstance(table, dict) or set(table) - {"users", "groups"}:
        raise SettingsError(f"{where}: holds only 'users' and 'groups' tables")
    parsed = {}
    for kind in ("users", "groups"):
        names = table.get(kind, {})
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise SettingsError(f"{where}: {kind} must map names to budgets like "
                                "'1000000/day' (or 'none')")
        parsed[kind] = {name: _budgets(value, f"{where} {kind}.{name}")
                        for name, value in names.items()}
    return BudgetOverrides(parsed["users"], parsed["groups"])


def _origins(env, name) -> tuple[str, ...]:
    """Web origins (``https://portal.example.com``, a port allowed), as browsers write them."""
    origins = []
    for part in env.get(name, "").split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path \
                or parts.query or parts.fragment or parts.username:
            raise SettingsError(f"environment variable {name}: {origin!r} is not an origin "
                                "like https://portal.example.com")
        origins.append(origin.lower())
    return tuple(origins)


def _starters(env, name) -> tuple[str, ...]:
    """Questions separated by "|" (they may hold commas)."""
    starters = tuple(q.strip() for q in env.get(name, "").split("|") if q.strip())
    if len(starters) > MAX_STARTERS or any(len(q) > MAX_STARTER for q in starters):
        raise SettingsError(f"environment variable {name}: at most {MAX_STARTERS} questions "
                            f"of at most {MAX_STARTER} characters, separated by '|'")
    return starters


def _flag(env, name, default: bool = False) -> bool:
    if not env.get(name, "").strip():
        return default
    value = parse_flag(env[name])
    if value is None:
        raise SettingsError(f"environment variable {name}: must be 1 or 0 (or true/false, "
                            f"yes/no, on/off), not {env[name]!r}")
    return value


def _log_level(env, name) -> str:
    level = env.get(name, "").strip().upper() or "INFO"
    if not isinstance(logging.getLevelName(level), int):
        raise SettingsError(f"environment variable {name}: {level!r} is not a log level "
                            "(DEBUG, INFO, WARNING, ERROR)")
    return level

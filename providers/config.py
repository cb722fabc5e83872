"""Reading operator configuration for providers: environment variables and the TOML file.

Every provider module reads its options through ``Options``, so a bad value always produces
the same kind of message: it names the file (or environment), the table and the field.
Base URLs come only from here, never from a request (see NextChat CVE-2023-49785).
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from urllib.parse import urlsplit

from .base import ModelEntry, ProviderSettings
from .errors import ConfigurationError

# An empty chat's greeting and starter questions (per model, or per table for its models).
MAX_GREETING = 2000
MAX_STARTERS = 6
MAX_STARTER = 200


def parse_flag(text: str) -> bool | None:
    """The one reading of an on/off setting, in the TOML file and the environment alike:
    1/true/yes/on, 0/false/no/off or empty; None for anything else."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    return None


class Options:
    """Typed access to one provider table, with errors that point at the offending field."""

    def __init__(self, settings: ProviderSettings, env: Mapping[str, str] | None = None,
                 env_names: Mapping[str, str] | None = None):
        self.settings = settings
        self.env = os.environ if env is None else env
        self._env_names = env_names or {}

    def where(self, field: str) -> str:
        if field in self._env_names:
            return f"environment variable {self._env_names[field]}"
        return f"{self.settings.source}: [providers.{self.settings.name}] field '{field}'"

    def fail(self, field: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.where(field)}: {problem}")

    def string(self, field: str, default: str | None = None) -> str:
        value = self.settings.options.get(field, default)
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, str):
            raise self.fail(field, "must be a string")
        return value

    def number(self, field: str, default: float, minimum: float = 0.0) -> float:
        value = self.settings.options.get(field, default)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.fail(field, f"must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise self.fail(field, f"must be a number of at least {minimum}")
        return float(value)

    def boolean(self, field: str, default: bool) -> bool:
        value = self.settings.options.get(field, default)
        if isinstance(value, str):
            value = parse_flag(value)
        if not isinstance(value, bool):
            raise self.fail(field, "must be true or false")
        return value

    def url(self, field: str, default: str | None = None, schemes=("http", "https")) -> str:
        value = self.string(field, default).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise self.fail(field, f"must be a {' or '.join(schemes)} URL, not {value!r}")
        return value

    def secret(self, field: str, required: bool = True) -> str:
        """A key given directly (``api_key``) or by the name of the variable that holds it
        (``api_key_env``), so the TOML file itself need not contain secrets."""
        value = self.settings.options.get(field)
        env_name = self.settings.options.get(f"{field}_env")
        if value is None and env_name is not None:
            if not isinstance(env_name, str):
                raise self.fail(f"{field}_env", "must be the name of an environment variable")
            value = self.env.get(env_name)
            if not value:  # naming an unset variable is a mistake even for optional keys
                raise self.fail(f"{field}_env", f"names {env_name}, which is not set")
        if value is None or value == "":
            if required:
                raise self.fail(field, f"is required (or {field}_env naming a variable)")
            return ""
        if not isinstance(value, str):
            raise self.fail(field, "must be a string")
        return value

    def headers(self, field: str = "headers") -> dict[str, str]:
        value = self.settings.options.get(field, {})
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self.fail(field, "must be a table of strings")
        return dict(value)

    def models(self, field: str = "models", default: list[str] | None = None,
               labels: Mapping[str, str] | None = None,
               context_tokens: Mapping[str, int] | None = None) -> list[ModelEntry]:
        """Either a comma-separated string, or a list of names or {name, label, context_tokens}."""
        value = self.settings.options.get(field, default)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not value:
            raise self.fail(field, "must list at least one model")
        labels = labels or {}
        context_tokens = context_tokens or {}
        table_prompt = self.settings.options.get("system_prompt")
        if table_prompt is not None and not isinstance(table_prompt, str):
            raise self.fail("system_prompt", "must be text")
        table_greeting = self._greeting(self.settings.options, "greeting")
        table_starters = self._starters(self.settings.options, "starters")
        entries = []
        for item in value:
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) \
                    or not item["name"]:
                raise self.fail(field, "each model must be a name or a table with a 'name'")
            name = item["name"]
            label = item.get("label", labels.get(name, name))
            tokens = item.get("context_tokens", context_tokens.get(name, 8192))
            prompt = item.get("system_prompt", table_prompt)
            tokens_ok = isinstance(tokens, int) and not isinstance(tokens, bool)
            if not isinstance(label, str) or not tokens_ok \
                    or (prompt is not None and not isinstance(prompt, str)):
                raise self.fail(field, f"model {name!r}: label and system_prompt must be text, "
                                       "context_tokens a whole number")
            greeting = self._greeting(item, field, f"model {name!r}: ")
            starters = self._starters(item, field, f"model {name!r}: ")
            entries.append(ModelEntry(
                name, label, tokens, prompt or None,
                greeting if "greeting" in item else table_greeting,
                starters if "starters" in item else table_starters))
        return entries

    def _greeting(self, table: Mapping, field: str, model: str = "") -> str | None:
        value = table.get("greeting")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_GREETING):
            raise self.fail(field, f"{model}greeting must be text of at most {MAX_GREETING} "
                                   "characters")
        return value or None

    def _starters(self, table: Mapping, field: str, model: str = "") -> tuple[str, ...]:
        value = table.get("starters", [])
        if not isinstance(value, list) or len(value) > MAX_STARTERS or not all(
                isinstance(s, str) and s.strip() and len(s) <= MAX_STARTER for s in value):
            raise self.fail(field, f"{model}starters must be a list of at most {MAX_STARTERS} "
                                   f"questions of 1 to {MAX_STARTER} characters")
        return tuple(value)


def load_config_file(path: str) -> dict[str, ProviderSettings]:
    """The ``[providers.<name>]`` tables of the STREAMDESK_CONFIG file, in file order."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigurationError(f"STREAMDESK_CONFIG: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{path}: not valid TOML: {e}") from None
    tables = document.get("providers", {})
    if not isinstance(tables, dict):
        raise ConfigurationError(
            f"{path}: 'providers' must be a table of [providers.<name>] tables")
    settings = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: [providers.{name}] must be a table")
        if not name or "/" in name or name == "demo":
            raise ConfigurationError(f"{path}: [providers.{name}]: the name may not contain '/' "
                                     "or be 'demo'")
        if not isinstance(table.get("type"), str):
            raise ConfigurationError(f"{path}: [providers.{name}] field 'type' is required")
        settings[name] = ProviderSettings(name, table, source=path)
    return settings

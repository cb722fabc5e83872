"""Builds the enabled providers from the operator's configuration.

Sources, in order: the tables of the STREAMDESK_CONFIG TOML file, then each provider type's
own environment variables, then the offline demo, which is always there.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from . import demo, ernie, openai_compat, spark
from .base import ModelInfo, Provider
from .config import load_config_file
from .errors import ConfigurationError

# type name -> provider module. Each module has TYPE, from_settings(settings, env) for a
# STREAMDESK_CONFIG table, and from_env(env), which returns None when its variables are unset.
PROVIDER_TYPES = {module.TYPE: module for module in (openai_compat, ernie, spark)}


class UnknownModelError(LookupError):
    pass


class Registry:
    def __init__(self, providers: list[Provider], default_model: str | None = None):
        self.providers = {p.name: p for p in providers}
        models = self.models()
        if default_model is None:
            default_model = models[0].id
        elif not any(m.id == default_model for m in models):
            raise ConfigurationError(f"environment variable DEFAULT_MODEL: {default_model!r} is "
                                     f"not one of the configured models: "
                                     f"{', '.join(m.id for m in models)}")
        self.default_model = default_model

    def models(self) -> list[ModelInfo]:
        return [info for provider in self.providers.values() for info in provider.models()]

    def resolve(self, model_id: str) -> tuple[Provider, str]:
        """``"glm/glm-4/flash"`` -> (the glm provider, ``"glm-4/flash"``)."""
        name, _, model = model_id.partition("/")
        provider = self.providers.get(name)
        if provider is None or not provider.has_model(model):
            raise UnknownModelError(model_id)
        return provider, model

    def operator_system_prompt(self, model_id: str, default: str | None) -> str | None:
        """The operator's system prompt for a model: its own from the config file, else the
        SYSTEM_PROMPT given for all."""
        provider, model = self.resolve(model_id)
        return provider.operator_system_prompt(model) or default

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()


def build_registry(env: Mapping[str, str] | None = None) -> Registry:
    env = os.environ if env is None else env
    providers: list[Provider] = []
    config_path = env.get("STREAMDESK_CONFIG")
    if config_path:
        for name, settings in load_config_file(config_path).items():
            module = PROVIDER_TYPES.get(settings.options["type"])
            if module is None:
                raise ConfigurationError(
                    f"{config_path}: [providers.{name}] field 'type': unknown type "
                    f"{settings.options['type']!r}; known: {', '.join(sorted(PROVIDER_TYPES))}")
            providers.append(module.from_settings(settings, env))
    taken = {p.name for p in providers}
    for module in PROVIDER_TYPES.values():
        provider = module.from_env(env)
        if provider is not None and provider.name not in taken:
            providers.append(provider)
    providers.append(demo.from_env(env))
    return Registry(providers, env.get("DEFAULT_MODEL") or None)

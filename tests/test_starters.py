"""An empty chat's greeting and starter questions: per model or per table in STREAMDESK_CONFIG,
GREETING and STARTERS for the models without their own, carried by GET /api/models.
(Shown and clicked in the page: test_page_starters_feedback.py.)"""
from __future__ import annotations

import pytest

from providers import openai_compat
from providers.base import ProviderSettings
from providers.errors import ConfigurationError
from streamdesk.settings import SettingsError, load_settings


def helpdesk(**table) -> openai_compat.OpenAICompatProvider:
    return openai_compat.from_settings(ProviderSettings("help", {
        "type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-unused",
        **table}, source="streamdesk.toml"), {})


def test_models_carry_their_own_greeting_and_starters_else_the_tables_else_the_defaults(
        make_app):
    provider = helpdesk(greeting="你好！I am the IT helpdesk.", starters=["VPN?", "Password?"],
                        models=[{"name": "it"}, {"name": "hr", "greeting": "HR here.",
                                                 "starters": []}])
    app = make_app(provider, GREETING="Ask me anything.", STARTERS="What can you do? | Hi")
    models = {m["id"]: m for m in app.test_client().get("/api/models").get_json()["models"]}
    assert (models["help/it"]["greeting"], models["help/it"]["starters"]) == (
        "你好！I am the IT helpdesk.", ["VPN?", "Password?"])
    assert (models["help/hr"]["greeting"], models["help/hr"]["starters"]) == ("HR here.", [])
    assert (models["demo/offline"]["greeting"], models["demo/offline"]["starters"]) == (
        "Ask me anything.", ["What can you do?", "Hi"])


def test_without_any_greeting_models_carry_none(make_app):
    models = make_app().test_client().get("/api/models").get_json()["models"]
    assert all(m["greeting"] is None and m["starters"] == [] for m in models)


@pytest.mark.parametrize("table, said", [
    ({"greeting": 5}, "greeting must be text"),
    ({"starters": "one question"}, "starters must be a list"),
    ({"starters": ["ok", ""]}, "starters must be a list"),
    ({"starters": [f"q{n}" for n in range(7)]}, "at most 6"),
    ({"models": [{"name": "it", "starters": ["x" * 201]}]}, "model 'it': starters"),
])
def test_a_bad_greeting_or_starter_names_the_file_table_and_field(table, said):
    with pytest.raises(ConfigurationError) as raised:
        helpdesk(**{"models": "it", **table})
    assert "streamdesk.toml: [providers.help]" in raised.value.message
    assert said in raised.value.message


def test_starters_from_the_environment_are_checked_too(tmp_path):
    with pytest.raises(SettingsError, match="STARTERS"):
        load_settings({"INSTANCE_PATH": str(tmp_path), "STARTERS": "|".join(["q"] * 7)})

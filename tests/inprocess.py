"""The in-process layer: ``create_app(...).test_client()`` with a ``FakeProvider``.

For what needs no real server (input checks, identity, the locked prompt, limits, the JSON
API): each app boots in milliseconds. What depends on the real server (streaming over a
socket, cancellation, heartbeats, shutdown, several workers) is tested under gunicorn.
"""
from __future__ import annotations

import pytest

from providers import Registry
from providers.demo import DemoProvider
from providers.sse import SSEDecoder
from streamdesk.web import create_app
from tests.fakes import FakeProvider


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def make_app(tmp_path_factory, fake, caplog):
    """``make_app(**variables)``: an app on its own SQLite file, with the fake provider (ids
    ``fake/model``) and the demo, configured by nothing but ``variables``. A test that made
    the app answer with a bug of ours (a 500, logged with its traceback) fails."""
    def make(*providers, **variables):
        instance = tmp_path_factory.mktemp("instance")
        registry = Registry([*(providers or (fake,)), DemoProvider(0)],
                            variables.pop("DEFAULT_MODEL", None))
        app = create_app({"INSTANCE_PATH": str(instance), "SECRET_KEY": "in-process-secret",
                          **variables}, registry=registry, environ={})
        return app
    yield make
    bugs = [r for r in caplog.records if r.name == "streamdesk.web.errors"]
    assert not bugs, bugs[0].getMessage() + "\n" + (bugs[0].exc_text or "")


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def events_of(response) -> list[tuple[str, dict]]:
    """The events of a whole ``text/event-stream`` answer of the test client."""
    decoder = SSEDecoder()
    return [(event.event, event.json()) for event in decoder.feed(response.get_data())]

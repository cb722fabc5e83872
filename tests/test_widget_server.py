"""The widget's server side, in process: the loader and the panel exist only with
WIDGET_ORIGINS, only those portals may frame the panel (the rest of the app keeps
FRAME_ANCESTORS), and a cross-site widget's session cookie is SameSite=None, Secure and
Partitioned. (The widget in a portal page, in Chromium: test_page_widget.py.)"""
from __future__ import annotations

import pytest

from streamdesk.settings import SettingsError, load_settings

PORTALS = "https://portal.example.com, http://127.0.0.1:8080"


def test_without_widget_origins_there_is_no_widget(make_app):
    client = make_app().test_client()
    assert client.get("/widget.js").status_code == 404
    assert client.get("/widget").status_code == 404


def test_only_the_configured_portals_may_frame_the_panel(make_app):
    client = make_app(WIDGET_ORIGINS=PORTALS).test_client()
    loader = client.get("/widget.js")
    assert loader.status_code == 200 and loader.mimetype == "text/javascript"
    assert b"attachShadow" in loader.data
    panel = client.get("/widget?model=fake/model&lang=zh")
    assert panel.status_code == 200
    assert "frame-ancestors 'self' https://portal.example.com http://127.0.0.1:8080" \
        in panel.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in panel.headers
    page = client.get("/")  # the full page is framed as FRAME_ANCESTORS says: by nobody
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def first_message_cookie(client) -> str:
    answer = client.post("/chat", json={"message": "hi", "model": "fake/model"})
    return answer.headers["Set-Cookie"]


def test_a_same_site_portal_keeps_the_lax_cookie(make_app, fake):
    fake.enqueue(["ok"])
    cookie = first_message_cookie(make_app(WIDGET_ORIGINS=PORTALS).test_client())
    assert "SameSite=Lax" in cookie and "Partitioned" not in cookie


def test_a_cross_site_portal_gets_a_partitioned_cookie(make_app, fake):
    fake.enqueue(["ok"])
    app = make_app(WIDGET_ORIGINS=PORTALS, WIDGET_CROSS_SITE="1", SESSION_COOKIE_SECURE="1")
    cookie = first_message_cookie(app.test_client())
    assert "SameSite=None" in cookie and "Secure" in cookie and "; Partitioned" in cookie
    assert "HttpOnly" in cookie


@pytest.mark.parametrize("variables, named", [
    ({"WIDGET_ORIGINS": "portal.example.com"}, "WIDGET_ORIGINS"),
    ({"WIDGET_ORIGINS": "https://portal.example.com/path"}, "WIDGET_ORIGINS"),
    ({"WIDGET_ORIGINS": "javascript:alert(1)"}, "WIDGET_ORIGINS"),
    ({"WIDGET_ORIGINS": "https://p.example", "WIDGET_CROSS_SITE": "1"}, "WIDGET_CROSS_SITE"),
])
def test_a_bad_widget_setting_stops_start_up_naming_it(tmp_path, variables, named):
    with pytest.raises(SettingsError, match=named):
        load_settings({"INSTANCE_PATH": str(tmp_path), **variables})


def test_behind_the_sso_proxy_the_widget_knows_the_user(make_app, fake):
    app = make_app(WIDGET_ORIGINS=PORTALS, TRUSTED_USER_HEADER="X-Forwarded-User",
                   TRUSTED_PROXIES="127.0.0.1")
    client = app.test_client()
    alice = {"X-Forwarded-User": "alice"}
    assert client.get("/widget", headers=alice).status_code == 200
    fake.enqueue(["ok"])
    client.post("/chat", json={"message": "from the portal", "model": "fake/model"},
                headers=alice).get_data()
    session = client.get("/api/session", headers=alice).get_json()
    assert session["user"] == {"kind": "sso", "name": "alice"}
    # The full page, opened anywhere behind the same proxy, lists the widget's conversation.
    titles = [c["title"] for c in app.test_client().get(
        "/api/conversations", headers=alice).get_json()["conversations"]]
    assert titles == ["from the portal"]

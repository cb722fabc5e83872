"""Feedback on replies (👍/👎 and a comment): set, changed, cleared, shown again with the
conversation, owner-checked, counted in Prometheus, and exported for the operator (JSON and
CSV). In process, with the fake provider. (The page's buttons: test_page_starters_feedback.py.)"""
from __future__ import annotations

import csv
import io
import json

import pytest
from prometheus_client import REGISTRY

from streamdesk.logs import hash_user
from tests.inprocess import events_of


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def ask(client, fake, question: str, *pieces: str) -> dict:
    fake.enqueue(list(pieces) or ["An answer."])
    events = events_of(client.post("/chat", json={"message": question, "model": "fake/model"}))
    return events[0][1]  # meta: conversation_id, user_message_id, message_id


def rate(client, message_id: str, **body):
    return client.put(f"/api/messages/{message_id}/feedback", json=body)


def saved_feedback(client, meta: dict):
    conversation = client.get(f"/api/conversations/{meta['conversation_id']}").get_json()
    return conversation["messages"][-1]["feedback"]


def counted(rating: str) -> float:
    return REGISTRY.get_sample_value("streamdesk_feedback_total", {
        "provider": "fake", "model": "fake/model", "rating": rating}) or 0.0


def test_a_rating_is_set_changed_cleared_and_shown_with_the_conversation(client, fake):
    meta = ask(client, fake, "How do I reset my password?")
    assert saved_feedback(client, meta) is None
    ups, downs = counted("up"), counted("down")
    assert rate(client, meta["message_id"], rating="up").get_json() == {"rating": "up",
                                                                        "comment": None}
    assert saved_feedback(client, meta) == {"rating": "up", "comment": None}
    comment = "Wrong portal.\nThe VPN one is at vpn.example.com."
    changed = rate(client, meta["message_id"], rating="down", comment=f"  {comment}\n")
    assert changed.get_json() == {"rating": "down", "comment": comment}
    assert saved_feedback(client, meta) == {"rating": "down", "comment": comment}
    assert (counted("up") - ups, counted("down") - downs) == (1, 1)
    cleared = rate(client, meta["message_id"], rating=None)
    assert cleared.get_json() == {"rating": None, "comment": None}
    assert saved_feedback(client, meta) is None


def test_only_the_owner_can_rate_and_only_replies(make_app, client, app, fake):
    meta = ask(client, fake, "hi")
    stranger = app.test_client()
    ask(stranger, fake, "me too")  # a user of their own, with a session
    for who in (stranger, app.test_client()):
        answer = rate(who, meta["message_id"], rating="up")
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "message_not_found"
    question = rate(client, meta["user_message_id"], rating="up")
    assert question.status_code == 400 and question.get_json()["error"]["code"] == "not_a_reply"
    assert saved_feedback(client, meta) is None


@pytest.mark.parametrize("body, code", [
    ({"rating": "meh"}, "invalid_rating"), ({"rating": 1}, "invalid_rating"),
    ({"rating": "down", "comment": 5}, "invalid_comment"),
    ({"rating": "down", "comment": "x" * 1001}, "invalid_comment"),
    ({"rating": "down", "comment": "a\u0000b"}, "invalid_comment"),
])
def test_a_bad_rating_is_a_clear_400(client, fake, body, code):
    meta = ask(client, fake, "hi")
    answer = rate(client, meta["message_id"], **body)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == code


def test_a_reply_being_written_cannot_be_rated_yet(client, fake, app):
    meta = ask(client, fake, "hi")
    store = app.extensions["streamdesk"].store
    with store.writer.begin() as connection:  # as while another worker still writes it
        connection.exec_driver_sql("UPDATE messages SET status = 'streaming' WHERE id = ?",
                                   (meta["message_id"],))
    answer = rate(client, meta["message_id"], rating="up")
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "reply_in_progress"


def test_the_operator_exports_every_rating_with_question_reply_and_hashed_user(client, fake,
                                                                               app):
    first = ask(client, fake, "=HYPERLINK(\"http://evil.example\")", "Use the ", "portal.")
    second = ask(client, fake, "VPN?", "Restart it.")
    ask(client, fake, "unrated")
    rate(client, first["message_id"], rating="down", comment="-1 not helpful")
    rate(client, second["message_id"], rating="up")
    runner = app.test_cli_runner()
    as_json = runner.invoke(args=["feedback", "export", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    user = hash_user(_user_id(app, first), "in-process-secret")
    assert [(r["rating"], r["comment"], r["question"], r["reply"], r["model"], r["user"])
            for r in rows] == [
        ("down", "-1 not helpful", "=HYPERLINK(\"http://evil.example\")", "Use the portal.",
         "fake/model", user),
        ("up", "", "VPN?", "Restart it.", "fake/model", user)]
    assert all(r["time"].endswith("Z") for r in rows)
    as_csv = runner.invoke(args=["feedback", "export"])
    table = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert list(table[0]) == ["time", "model", "rating", "comment", "question", "reply", "user"]
    # What users and models wrote never runs as a spreadsheet formula.
    assert table[0]["question"] == "'=HYPERLINK(\"http://evil.example\")"
    assert table[0]["comment"] == "'-1 not helpful"
    assert [row["rating"] for row in table] == ["down", "up"]
    later = runner.invoke(args=["feedback", "export", "--format", "json", "--since",
                                "2999-01-01"])
    assert json.loads(later.output) == []


def _user_id(app, meta: dict) -> str:
    store = app.extensions["streamdesk"].store
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(
            "SELECT user_id FROM conversations WHERE id = ?",
            (meta["conversation_id"],)).scalar_one()

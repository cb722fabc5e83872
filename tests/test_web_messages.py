"""The reply routes in process: following a reply and stopping it, their checks and errors.
(Following live across workers, instances and dropped connections is in test_resumable.py
and test_shared_deployment.py, under gunicorn.)"""
from __future__ import annotations

import pytest

from tests.inprocess import events_of


@pytest.fixture
def reply(client, fake):
    fake.enqueue(["Hello, ", "world."])
    events = events_of(client.post("/chat", json={"message": "hi", "model": "fake/model"}))
    return events[0][1]


def test_an_ended_reply_is_replayed_whole_and_after_any_event_id(client, reply):
    url = f"/api/messages/{reply['message_id']}/events"
    whole = events_of(client.get(url))
    assert [name for name, _ in whole] == ["meta", "delta", "usage", "done"]
    assert whole[1][1] == {"text": "Hello, world."}
    assert events_of(client.get(url, headers={"Last-Event-ID": "8"}))[0][1] == {
        "text": "world."}
    assert events_of(client.get(f"{url}?after=14"))[0][0] == "usage"


@pytest.mark.parametrize("last_event_id", ["x", "-1", "1.5", "²", str(2**60)])
def test_an_event_id_that_is_not_one_of_ours_is_a_clear_400(client, reply, last_event_id):
    response = client.get(f"/api/messages/{reply['message_id']}/events",
                          headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_event_id"


def test_stop_needs_json_like_every_state_change(client, reply):
    url = f"/api/messages/{reply['message_id']}/stop"
    form = client.post(url, data={"x": "1"})
    assert form.status_code == 415
    stopped = client.post(url, json={})
    assert stopped.status_code == 200
    assert stopped.get_json() == {"id": reply["message_id"], "status": "complete"}


def test_someone_elses_reply_or_a_users_own_question_is_not_found(make_app, fake):
    app = make_app()
    alice, mallory = app.test_client(), app.test_client()
    fake.enqueue(["secret"])
    meta = events_of(alice.post("/chat", json={"message": "hi", "model": "fake/model"}))[0][1]
    for client, message_id in ((mallory, meta["message_id"]),
                               (alice, meta["user_message_id"]), (alice, "0" * 32)):
        followed = client.get(f"/api/messages/{message_id}/events")
        stopped = client.post(f"/api/messages/{message_id}/stop", json={})
        assert followed.status_code == stopped.status_code == 404
        assert followed.get_json()["error"]["code"] == "message_not_found"


def test_stop_is_rate_limited_per_user_counting_every_stop(make_app, fake):
    app = make_app(STOP_RATE_LIMIT="2/minute")
    alice, bob = app.test_client(), app.test_client()
    mine, theirs = (events_of(user.post("/chat", json={"message": "hi", "model": "fake/model"}))
                    [0][1]["message_id"] for user in (alice, bob))
    assert alice.post(f"/api/messages/{mine}/stop", json={}).status_code == 200
    assert alice.post(f"/api/messages/{'0' * 32}/stop", json={}).status_code == 404  # counts too
    refused = alice.post(f"/api/messages/{mine}/stop", json={})
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and "Try again in" in error["message"]
    # Another user's stops are their own.
    assert bob.post(f"/api/messages/{theirs}/stop", json={}).status_code == 200

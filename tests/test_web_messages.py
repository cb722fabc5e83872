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

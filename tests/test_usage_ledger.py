"""The usage ledger, token budgets and the operators' JSON (#18).

Ledger rows for page and API replies (complete, cancelled, failed), kept when the conversation
is deleted; budgets refusing at the limit and turning with their period (an injected clock,
not sleeps), across two instances sharing PostgreSQL; /api/admin refused to everyone but the
operators; the CSV. (The operator page in Chromium: test_page_admin.py.)
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from gevent.event import Event as Gate

from providers import ChatRequest, Chunk, Message
from providers.errors import UpstreamUnavailableError
from streamdesk.chat.budgets import BudgetExceeded, Budgets, period_bounds
from streamdesk.chat.bus import DatabaseBus
from streamdesk.chat.events import Meta
from streamdesk.chat.observer import ReplyObserver
from streamdesk.chat.replies import Replies, ReplyPolicy
from streamdesk.chat.turn import PreparedTurn
from streamdesk.settings import Budget, BudgetOverrides, SettingsError, load_settings
from streamdesk.store import Store, UsageEntry
from tests.fakes import FakeProvider, start_turn
from tests.inprocess import events_of

SSO = {"TRUSTED_USER_HEADER": "X-Forwarded-User", "TRUSTED_PROXIES": "127.0.0.1"}


def ledger(store: Store) -> list[dict]:
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT user_id, provider, model, via, prompt_tokens, completion_tokens, "
            "total_tokens, estimated, status, ttft_ms, duration_ms FROM usage ORDER BY id")
        return [dict(row._mapping) for row in rows]


def store_of(app) -> Store:
    return app.extensions["streamdesk"].store


# The ledger ----------------------------------------------------------------------------------

def test_page_replies_leave_a_row_each_that_outlives_their_conversation(make_app, fake):
    app = make_app()
    client = app.test_client()
    fake.enqueue(["Hello ", "there."])  # the vendor's counts: 3 prompt, 12 completion
    meta = events_of(client.post("/chat", json={"message": "hi", "model": "fake/model"}))[0][1]
    fake.enqueue([Chunk(text="Half "), UpstreamUnavailableError("down")])  # no counts at all
    client.post("/chat", json={"message": "again", "model": "fake/model",
                               "conversation_id": meta["conversation_id"]}).get_data()
    assert client.delete(f"/api/conversations/{meta['conversation_id']}").status_code == 204
    complete, failed = ledger(store_of(app))
    assert complete["user_id"].startswith("anon:") and complete["via"] == "page"
    assert (complete["provider"], complete["model"], complete["status"]) == (
        "fake", "fake/model", "complete")
    assert (complete["prompt_tokens"], complete["completion_tokens"], complete["total_tokens"],
            bool(complete["estimated"])) == (3, 12, 15, False)
    assert complete["ttft_ms"] is not None and complete["duration_ms"] >= complete["ttft_ms"]
    assert failed["status"] == "error" and bool(failed["estimated"])
    assert failed["completion_tokens"] > 0 and failed["prompt_tokens"] > 0  # our estimate


def test_a_stopped_reply_is_in_the_ledger_as_cancelled(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    store.migrate()
    fake, gate = FakeProvider(), Gate()
    fake.enqueue(["Started ", gate, "never sent"])
    replies = Replies(store, DatabaseBus(store, 10.0), ReplyPolicy(save_interval_seconds=0))
    conversation = store.create_conversation("alice", "t", "fake/model")
    question_id, message_id = start_turn(store, "alice", conversation.id, "q", "fake/model")
    live = replies.start(PreparedTurn(fake, ChatRequest("model", (Message("user", "q"),)), Meta(
        conversation.id, question_id, message_id, "fake/model", 0)), ReplyObserver(
        provider="fake", model_id="fake/model", request_id="r", user="u",
        message_id=message_id, user_id="alice"))
    for _ in replies.follow_live("alice", live):
        if live.so_far():  # the first piece is out
            break
    replies.stop("alice", message_id)
    (row,) = ledger(store)
    assert (row["user_id"], row["status"], bool(row["estimated"])) == ("alice", "cancelled",
                                                                      True)


def test_api_replies_leave_a_row_marked_api(make_app, fake):
    app = make_app()
    client = app.test_client()
    key = client.post("/api/keys", json={"name": "ci"}).get_json()["key"]
    answer = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "fake/model", "messages": [{"role": "user",
                                                                    "content": "hi"}]})
    assert answer.status_code == 200
    (row,) = ledger(store_of(app))
    assert (row["via"], row["status"], row["total_tokens"]) == ("api", "complete", 5)


# Budgets -------------------------------------------------------------------------------------

def test_a_user_over_budget_is_refused_on_the_page_and_the_api_saying_when_it_resets(
        make_app, fake):
    app = make_app(TOKEN_BUDGET="20/day;1000/month")
    client = app.test_client()
    key = client.post("/api/keys", json={"name": "ci"}).get_json()["key"]
    fake.enqueue(["x" * 30])  # 3 + 30 tokens: the reply that crosses the budget is finished
    done = events_of(client.post("/chat", json={"message": "hi", "model": "fake/model"}))
    assert done[-1] == ("done", {"finish_reason": "stop", "status": "complete"})
    refused = client.post("/chat", json={"message": "more", "model": "fake/model"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    error = refused.get_json()["error"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert error["code"] == "budget_exceeded"
    assert "day's budget of 20 tokens" in error["message"]
    assert f"resets at {tomorrow} 00:00 UTC" in error["message"]
    api = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "fake/model", "messages": [{"role": "user",
                                                                 "content": "hi"}]})
    assert api.status_code == 429 and api.get_json()["error"]["code"] == "budget_exceeded"
    assert api.get_json()["error"]["type"] == "rate_limit_error"
    usage = client.get("/api/usage").get_json()
    assert usage["spent"] == {"day": 33, "month": 33}
    assert usage["budgets"] == [
        {"period": "day", "tokens": 20, "spent": 33, "remaining": 0,
         "resets_at": f"{tomorrow}T00:00:00Z"},
        {"period": "month", "tokens": 1000, "spent": 33, "remaining": 967,
         "resets_at": usage["budgets"][1]["resets_at"]}]


def spend(store: Store, user_id: str, at: datetime, tokens: int) -> None:
    store.start_api_reply(user_id, f"r{at.timestamp()}{tokens}", max_streams=100)
    store.end_api_reply(f"r{at.timestamp()}{tokens}", UsageEntry(
        at=at, user_id=user_id, provider="fake", model="fake/model", via="api",
        prompt_tokens=tokens, completion_tokens=0, estimated=False, status="complete",
        ttft_ms=10, duration_ms=20))


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'budgets.sqlite3'}")
    store.migrate()
    return store


class Clock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@pytest.mark.parametrize("period, spent_at, before_turn, after_turn", [
    ("day", datetime(2026, 11, 27, 23, 0, tzinfo=UTC), datetime(2026, 11, 27, 23, 59, 59,
                                                               tzinfo=UTC),
     datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
    ("week", datetime(2026, 11, 23, 0, 0, tzinfo=UTC), datetime(2026, 11, 29, 23, 59,
                                                               tzinfo=UTC),
     datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),  # 30 November 2026 is a Monday
    ("month", datetime(2026, 12, 1, 0, 0, tzinfo=UTC), datetime(2026, 12, 31, 23, 59,
                                                               tzinfo=UTC),
     datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
])
def test_a_budget_refuses_at_its_limit_and_turns_with_its_period(store, period, spent_at,
                                                                 before_turn, after_turn):
    clock = Clock(spent_at)
    budgets = Budgets((Budget(100, period),), BudgetOverrides(), clock)
    spend(store, "alice", spent_at, 99)
    budgets.check(store, "alice")  # 99 of 100: one more reply may go
    spend(store, "alice", spent_at, 1)
    clock.moment = before_turn
    with pytest.raises(BudgetExceeded) as refused:
        budgets.check(store, "alice")
    assert refused.value.state.resets_at == after_turn
    budgets.check(store, "bob")  # each user has their own
    clock.moment = after_turn
    budgets.check(store, "alice")  # a new period: nothing spent yet
    assert period_bounds(period, after_turn)[0] == after_turn


def test_named_users_and_groups_get_their_own_budgets():
    budgets = Budgets((Budget(10, "day"),), BudgetOverrides(
        users={"alice": (Budget(1000, "day"),), "root": ()},
        groups={"it": (Budget(500, "day"), Budget(5000, "month")), "ops": (Budget(800, "day"),),
                "free": ()}))
    assert budgets.of("sso:alice", ["it"]) == (Budget(1000, "day"),)  # the user's own wins
    assert budgets.of("sso:root") == ()
    assert budgets.of("sso:bob") == (Budget(10, "day"),)
    assert budgets.of("sso:bob", ["it"]) == (Budget(500, "day"), Budget(5000, "month"))
    # The most generous per period; a period only one group limits is not limited.
    assert budgets.of("sso:bob", ["it", "ops"]) == (Budget(800, "day"),)
    assert budgets.of("sso:bob", ["it", "free"]) == ()
    assert budgets.of("code:xyz", ["it"]) == (Budget(500, "day"), Budget(5000, "month"))


def test_groups_come_only_from_the_trusted_proxy_and_the_overrides_from_the_config(
        make_app, fake, tmp_path):
    config = tmp_path / "streamdesk.toml"
    config.write_text('[token_budget_overrides]\nusers = {"alice" = "none"}\n'
                      'groups = {"it" = "1/day"}\n')
    app = make_app(TOKEN_BUDGET="1000/day", STREAMDESK_CONFIG=str(config),
                   TRUSTED_GROUPS_HEADER="X-Forwarded-Groups", **SSO)
    client = app.test_client()
    spend(store_of(app), "sso:bob", datetime.now(UTC), 5)
    spend(store_of(app), "sso:alice", datetime.now(UTC), 5000)
    as_bob = {"X-Forwarded-User": "bob"}
    budgets = client.get("/api/usage", headers=as_bob).get_json()["budgets"]
    assert [(b["tokens"], b["remaining"]) for b in budgets] == [(1000, 995)]
    in_it = client.get("/api/usage", headers={**as_bob, "X-Forwarded-Groups": "staff, it"})
    assert [(b["tokens"], b["remaining"]) for b in in_it.get_json()["budgets"]] == [(1, 0)]
    fake.enqueue(["ok"])
    assert client.post("/chat", json={"message": "hi", "model": "fake/model"},
                       headers={"X-Forwarded-User": "alice"}).status_code == 200
    refused = client.post("/chat", json={"message": "hi", "model": "fake/model"},
                          headers={**as_bob, "X-Forwarded-Groups": "it"})
    assert refused.get_json()["error"]["code"] == "budget_exceeded"


def test_budgets_hold_across_two_instances_sharing_postgresql(make_app, fake,
                                                              empty_postgres_database):
    first = make_app(DATABASE_URL=empty_postgres_database, TOKEN_BUDGET="10/day", **SSO)
    second = make_app(DATABASE_URL=empty_postgres_database, TOKEN_BUDGET="10/day", **SSO)
    alice = {"X-Forwarded-User": "alice"}
    fake.enqueue(["spent on the first instance"])
    first.test_client().post("/chat", json={"message": "hi", "model": "fake/model"},
                             headers=alice).get_data()
    refused = second.test_client().post("/chat", json={"message": "hi", "model": "fake/model"},
                                        headers=alice)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "budget_exceeded"
    other = second.test_client().post("/chat", json={"message": "hi", "model": "fake/model"},
                                      headers={"X-Forwarded-User": "bob"})
    assert other.status_code == 200


@pytest.mark.parametrize("variables, named", [
    ({"TOKEN_BUDGET": "lots"}, "TOKEN_BUDGET"),
    ({"TOKEN_BUDGET": "100/fortnight"}, "TOKEN_BUDGET"),
    ({"TOKEN_BUDGET": "0/day"}, "TOKEN_BUDGET"),
    ({"ACCESS_CODE": "same", "ADMIN_CODE": "same"}, "ADMIN_CODE"),
])
def test_a_bad_budget_or_admin_setting_names_itself(tmp_path, variables, named):
    with pytest.raises(SettingsError, match=named):
        load_settings({"INSTANCE_PATH": str(tmp_path), **variables})


def test_a_bad_overrides_table_names_the_file_and_table(tmp_path):
    config = tmp_path / "streamdesk.toml"
    config.write_text('[token_budget_overrides]\nusers = {"alice" = "plenty"}\n')
    with pytest.raises(SettingsError, match=r"\[token_budget_overrides\] users.alice"):
        load_settings({"INSTANCE_PATH": str(tmp_path), "STREAMDESK_CONFIG": str(config)})


# The operators' JSON ------------------------------------------------------------------------

def test_the_operator_json_is_refused_to_everyone_but_the_operators(make_app, fake):
    app = make_app(ADMIN_USERS="olga", **SSO)
    client = app.test_client()
    fake.enqueue(["An answer."])
    client.post("/chat", json={"message": "hi", "model": "fake/model"},
                headers={"X-Forwarded-User": "bob"}).get_data()
    for route in ("usage", "models", "feedback"):
        for who in ({"X-Forwarded-User": "bob"}, {}):
            answer = client.get(f"/api/admin/{route}", headers=who)
            assert answer.status_code in (401, 403), (route, who)
        assert client.get(f"/api/admin/{route}", headers={"X-Forwarded-User": "bob"}
                          ).get_json()["error"]["code"] == "admins_only"
        assert client.get(f"/api/admin/{route}", headers={"X-Forwarded-User": "olga"}
                          ).status_code == 200
    key = client.post("/api/keys", json={"name": "k"},
                      headers={"X-Forwarded-User": "olga"}).get_json()["key"]
    # An operator's API key opens no operator route: it is nobody outside /v1.
    assert client.get("/api/admin/usage",
                      headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_the_operator_code_opens_the_usage_tables_and_their_csv(make_app, fake):
    app = make_app(ADMIN_CODE="operators-only")
    users = [app.test_client() for _ in range(2)]
    for user, pieces in zip(users, (["a" * 10], ["b" * 20, "c" * 20]), strict=True):
        fake.enqueue(pieces)
        user.post("/chat", json={"message": "hi", "model": "fake/model"}).get_data()
    operator = app.test_client()
    assert operator.get("/api/admin/usage").status_code == 403
    assert operator.post("/api/access", json={"code": "wrong"}).status_code == 401
    assert operator.post("/api/access", json={"code": "operators-only"}).status_code == 204
    assert operator.get("/api/session").get_json()["admin"] is True
    by_user = operator.get("/api/admin/usage?by=user").get_json()
    assert [(r["replies"], r["total_tokens"]) for r in by_user["rows"]] == [(1, 43), (1, 13)]
    assert by_user["totals"]["total_tokens"] == 56 and by_user["by"] == "user"
    today = datetime.now(UTC).date().isoformat()
    by_day = operator.get(f"/api/admin/usage?by=day&from={today}&to={today}&format=csv")
    assert by_day.mimetype == "text/csv"
    assert "attachment" in by_day.headers["Content-Disposition"]
    assert list(csv.DictReader(io.StringIO(by_day.get_data(as_text=True)))) == [
        {"key": today, "replies": "2", "prompt_tokens": "6", "completion_tokens": "50",
         "total_tokens": "56", "estimated_replies": "0", "failed_replies": "0"}]
    models = operator.get("/api/admin/models").get_json()["rows"]
    assert [(m["model"], m["replies"], m["error_rate"]) for m in models] == [
        ("fake/model", 2, 0.0)]
    for bad in ("from=yesterday", "from=2026-12-01&to=2026-11-01", "from=2020-01-01",
                "by=weekday"):
        answer = operator.get(f"/api/admin/usage?{bad}")
        assert answer.status_code == 400, bad

"""The JSON API against any JSON at all (Hypothesis): every route, every field, any value,
strings with NUL and lone surrogates included. Whatever comes in, no answer is a 500, every
error has the API's shape, and the app logs no bug (``make_app`` fails the test if it did).

In process, one app for all examples (the examples reuse its users and conversations, as a
careless or hostile client would); a bounded number of examples, so it runs in ``make test``.
"""
from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inprocess import events_of

# Any character, and often what no database keeps: NUL and half surrogate pairs (JSON
# carries them as \u0000 and \uD800 escapes; Hypothesis's own text() has no surrogates).
TEXT = st.lists(st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d"]),
               max_size=40).map("".join)
NUMBERS = (st.integers() | st.integers(min_value=10**309) | st.integers(max_value=-10**309)
           | st.floats())
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)
SETTINGS = st.fixed_dictionaries({}, optional={
    "system": JSON | TEXT, "temperature": NUMBERS | JSON, "max_tokens": NUMBERS | JSON})
# A valid message a third of the time: the other fields are read only after it passes.
CHAT = st.fixed_dictionaries({"message": st.just("hi") | TEXT | JSON}, optional={
    "conversation_id": TEXT | JSON, "edit_message_id": TEXT | JSON, "model": TEXT | JSON,
    "system": TEXT | JSON, "temperature": NUMBERS | JSON, "max_tokens": NUMBERS | JSON})
# Ids as a client might put them in a URL: known ones, made-up ones, percent-escapes.
URL_ID = st.sampled_from(["known", "0" * 32, "%00", "a%00b", "%ED%A0%80", "..", "x" * 300]) \
    | st.text(st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1,
              max_size=40)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def assert_answered_well(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        error = response.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


def one_app(make_app, **variables):
    """The test client of one app for all of a test's examples: the fixture is made once per
    test, the body runs once per example."""
    if not hasattr(make_app, "fuzzed"):
        make_app.fuzzed = make_app(**variables).test_client()
    return make_app.fuzzed


def body(value) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: lone surrogates travel as escapes


@FUZZ
@given(request=CHAT | JSON)
def test_chat_answers_any_json_without_a_500(make_app, request):
    client = one_app(make_app)
    response = client.post("/chat", data=body(request), content_type="application/json")
    assert_answered_well(response)
    if response.status_code == 200:
        assert events_of(response)[-1][0] == "done"


@FUZZ
@given(conversation=URL_ID, change=st.fixed_dictionaries(
    {}, optional={"title": TEXT | JSON, "settings": SETTINGS | JSON}) | JSON)
def test_conversation_routes_answer_anything_without_a_500(make_app, conversation, change):
    client = one_app(make_app)
    if conversation == "known":
        started = events_of(client.post("/chat", json={"message": "hi"}))
        conversation = started[0][1]["conversation_id"]
    url = f"/api/conversations/{conversation}"
    assert_answered_well(client.patch(url, data=body(change), content_type="application/json"))
    assert_answered_well(client.get(url))
    assert_answered_well(client.delete(url))


FEEDBACK = st.fixed_dictionaries({"rating": st.sampled_from(["up", "down", None]) | JSON},
                                 optional={"comment": TEXT | JSON}) | JSON


@FUZZ
@given(message=URL_ID, last_event_id=TEXT, after=TEXT, stop=JSON, feedback=FEEDBACK)
def test_message_routes_answer_anything_without_a_500(make_app, message, last_event_id, after,
                                                      stop, feedback):
    # Every example stops with one user's session: a higher STOP_RATE_LIMIT keeps the body's
    # checks reached after the first 30.
    client = one_app(make_app, STOP_RATE_LIMIT="100000/minute")
    if message == "known":
        message = events_of(client.post("/chat", json={"message": "hi"}))[0][1]["message_id"]
    # As HTTP carries it: bytes read as Latin-1, and no line break (that would end it).
    header = last_event_id.encode("utf-8", "surrogatepass").decode("latin-1")
    header = header.replace("\r", "").replace("\n", "")
    after = quote(after.encode("utf-8", "surrogatepass"))  # as a URL carries any bytes
    followed = client.get(f"/api/messages/{message}/events?after={after}",
                          headers={"Last-Event-ID": header})
    assert_answered_well(followed)
    assert_answered_well(client.post(f"/api/messages/{message}/stop", data=body(stop),
                                     content_type="application/json"))
    assert_answered_well(client.put(f"/api/messages/{message}/feedback", data=body(feedback),
                                    content_type="application/json"))


@FUZZ
@given(attempt=st.fixed_dictionaries({}, optional={"code": TEXT | JSON}) | JSON)
def test_the_access_code_route_answers_anything_without_a_500(make_app, attempt):
    client = one_app(make_app, ACCESS_CODE="fuzz-code",
                     ACCESS_CODE_ATTEMPTS="100000 per minute")
    assert_answered_well(client.post("/api/access", data=body(attempt),
                                     content_type="application/json"))


TEXT_PART = st.fixed_dictionaries({"type": st.just("text") | TEXT, "text": TEXT | JSON})
API_MESSAGE = st.fixed_dictionaries({
    "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]) | JSON,
    "content": st.just("hi") | TEXT | JSON | st.lists(TEXT_PART, max_size=3)})
COMPLETION = st.fixed_dictionaries({
    "model": st.just("fake/model") | TEXT | JSON,
    "messages": st.lists(API_MESSAGE, min_size=1, max_size=4) | JSON}, optional={
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | JSON}) | JSON,
    "temperature": NUMBERS | JSON, "max_tokens": NUMBERS | JSON,
    "max_completion_tokens": NUMBERS | JSON, "n": NUMBERS | JSON, "tools": JSON,
    "tool_choice": JSON, "response_format": JSON, "user": TEXT | JSON})


@FUZZ
@given(request=COMPLETION | JSON)
def test_the_openai_compatible_api_answers_any_json_without_a_500(make_app, request):
    client = one_app(make_app)
    if not hasattr(client, "api_key"):
        client.api_key = client.post("/api/keys", json={"name": "fuzz"}).json["key"]
    response = client.post("/v1/chat/completions", data=body(request),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {client.api_key}"})
    assert_answered_well(response)
    if response.status_code >= 400:
        assert isinstance(response.json["error"]["type"], str)
    elif request.get("stream") is True:
        assert response.get_data(as_text=True).rstrip().endswith("data: [DONE]")


@FUZZ
@given(key=URL_ID, made=st.fixed_dictionaries({}, optional={"name": TEXT | JSON}) | JSON)
def test_the_key_routes_answer_anything_without_a_500(make_app, key, made):
    client = one_app(make_app)
    assert_answered_well(client.post("/api/keys", data=body(made),
                                     content_type="application/json"))
    assert_answered_well(client.get("/api/keys"))
    assert_answered_well(client.delete(f"/api/keys/{quote(key, safe='%')}"))


QUERY_VALUE = TEXT.map(lambda text: quote(text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(route=st.sampled_from(["usage", "models", "feedback"]), first=QUERY_VALUE,
       last=QUERY_VALUE, by=QUERY_VALUE | st.sampled_from(["user", "model", "day"]),
       form=st.sampled_from(["json", "csv"]) | QUERY_VALUE)
def test_the_operator_routes_answer_any_query_without_a_500(make_app, route, first, last, by,
                                                            form):
    client = one_app(make_app, ADMIN_CODE="fuzz-admin")
    if not hasattr(client, "admitted"):
        client.admitted = client.post("/api/access", json={"code": "fuzz-admin"})
    answer = client.get(f"/api/admin/{route}?from={first}&to={last}&by={by}&format={form}")
    assert_answered_well(answer)
    assert_answered_well(client.get("/api/usage"))

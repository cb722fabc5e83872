"""The SSE decoder against the WHATWG examples and the framings that break naive parsers."""
import json

import pytest

from providers.sse import MAX_EVENT_BYTES, Event, EventTooLarge, SSEDecoder
from streamdesk.chat.events import HEARTBEAT, Delta
from streamdesk.web.disconnect import end_when_gone, stop_when_gone
from streamdesk.web.sse import PING, EventStream, encode, encode_delta


def decode_all(*reads: bytes) -> list[Event]:
    decoder = SSEDecoder()
    return [event for data in reads for event in decoder.feed(data)]


def test_whatwg_example_stock_ticker_multiline_data_joined_with_newline():
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert [e.data for e in decode_all(stream)] == ["YHOO\n+2\n10"]


def test_whatwg_example_comment_ids_and_trailing_event_without_blank_line():
    stream = (b": test stream\n\ndata: first event\nid: 1\n\n"
              b"data:second event\nid\n\ndata:  third event")
    events = decode_all(stream)
    assert [(e.data, e.id) for e in events] == [("first event", "1"), ("second event", "")]


def test_whatwg_example_empty_data_lines():
    stream = b"data\n\ndata\ndata\n\ndata:"
    assert [e.data for e in decode_all(stream)] == ["", "\n"]


def test_whatwg_example_space_after_colon_is_optional():
    assert [e.data for e in decode_all(b"data:test\n\ndata: test\n\n")] == ["test", "test"]


def test_named_events_and_retry():
    events = decode_all(b"event: delta\nretry: 3000\ndata: {}\n\nretry: x\ndata: 1\n\n")
    assert [(e.event, e.retry) for e in events] == [("delta", 3000), ("message", 3000)]


def test_comments_and_blank_lines_dispatch_nothing():
    assert decode_all(b": keep-alive\n\n\n\n: ping\n\n") == []


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_each_line_ending(ending):
    stream = b"data: a" + ending + b"data: b" + ending + ending
    assert [e.data for e in decode_all(stream)] == ["a\nb"]


def test_crlf_split_across_reads_is_one_line_break():
    events = decode_all(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert [e.data for e in events] == ["a\nb"]


def test_an_empty_read_between_cr_and_lf_changes_nothing():
    events = decode_all(b"event: delta\r", b"", b"\ndata: {}\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("delta", "{}")]


def test_multibyte_character_split_across_reads_stays_whole():
    payload = "data: 流式输出\n\n".encode()
    cut = payload.index("式".encode()) + 1  # inside the three bytes of 式
    assert [e.data for e in decode_all(payload[:cut], payload[cut:])] == ["流式输出"]


def test_u2028_inside_json_does_not_split_the_line():
    text = "line\u2028separator\u2029paragraph\x85next"
    stream = f"data: {json.dumps({'t': text}, ensure_ascii=False)}\n\n".encode()
    (event,) = decode_all(stream)
    assert event.json() == {"t": text}


def test_json_split_mid_object_across_many_reads():
    stream = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    decoder = SSEDecoder()
    events = [e for i in range(len(stream)) for e in decoder.feed(stream[i:i + 1])]
    assert [e.json()["choices"][0]["delta"]["content"] for e in events] == ["hi"]


def test_leading_bom_is_stripped_once():
    assert [e.data for e in decode_all(b"\xef\xbb\xbfdata: x\n\n")] == ["x"]


def test_every_cut_of_a_stream_into_two_reads_gives_the_same_events():
    stream = (b"\xef\xbb\xbfdata: one\r\n\r\n: comment\nevent: named\ndata: two\rdata: 2\r\r"
              + "data: 流式\n\n".encode() + b"id: 7\ndata: three\r\n\r\n")
    whole = [(e.event, e.data, e.id) for e in decode_all(stream)]
    assert whole == [("message", "one", ""), ("named", "two\n2", ""),
                     ("message", "流式", ""), ("message", "three", "7")]
    for cut in range(1, len(stream)):
        assert [(e.event, e.data, e.id) for e in decode_all(stream[:cut], stream[cut:])] == whole


def test_a_line_longer_than_the_limit_ends_the_stream_at_the_limit():
    decoder = SSEDecoder()
    read = b"data: " + b"x" * 65_530
    with pytest.raises(EventTooLarge):
        for _ in range(MAX_EVENT_BYTES // 65_530 + 2):
            assert decoder.feed(read) == []


def test_data_lines_that_never_reach_a_blank_line_end_the_stream_at_the_limit():
    decoder = SSEDecoder()
    read = b"data: " + b"x" * 65_530 + b"\n"
    with pytest.raises(EventTooLarge) as refused:
        for _ in range(MAX_EVENT_BYTES // 65_530 + 2):
            assert decoder.feed(read) == []
    assert refused.value.code == "upstream_error"
    assert "larger than 1 MiB" in refused.value.message


def test_events_of_any_total_size_pass_when_each_is_under_the_limit():
    decoder = SSEDecoder()
    event = b"data: " + b"x" * 65_530 + b"\n\n"
    count = MAX_EVENT_BYTES // len(event) * 2
    assert sum(len(decoder.feed(event)) for _ in range(count)) == count
    # a line just under the limit, in many reads
    line = b"data: " + b"y" * (MAX_EVENT_BYTES - 6)
    pieces = [line[i:i + 1000] for i in range(0, len(line), 1000)] + [b"\n\n"]
    events = [event for piece in pieces for event in decoder.feed(piece)]
    assert [len(event.data) for event in events] == [MAX_EVENT_BYTES - 6]


def test_feed_line_accepts_lines_from_iter_lines():
    decoder = SSEDecoder()
    lines = [b"event: error", b"data:{\"a\":1}", b""]
    events = [decoder.feed_line(line) for line in lines]
    assert events[:2] == [None, None] and events[2].event == "error"


def test_encoder_round_trips_through_decoder():
    data = {"text": "多行\n文本\r\u2028 and \"quotes\""}
    (event,) = decode_all(encode("delta", data, 42) + PING)
    assert event.event == "delta" and event.json() == data and event.id == "42"


def test_encoder_writes_one_data_line_per_event():
    frame = encode("delta", {"text": "a\nb\rc"}, 7)
    assert frame.count(b"\n") == 4 and frame.endswith(b"\n\n")


@pytest.mark.parametrize("text", ["plain", "多行\n文本", 'quote " and \\ back', "\u2028\u2029\x85",
                                  "nul \x00 bell \x07", "emoji 🙂 and é", ""])
def test_the_fast_delta_encoder_writes_exactly_what_the_general_one_does(text):
    from streamdesk.web.sse import encode_delta
    for field in ("text", "reasoning"):
        assert encode_delta(field, text, 9) == encode("delta", {field: text}, 9)


def followed_reply(closed: list[str]):
    """A followed reply's events, noting when it is closed (a follower leaving)."""
    try:
        yield 1, Delta("text", "Hi")
        yield HEARTBEAT
        yield 3, Delta("text", " there")
    finally:
        closed.append("events closed")


@pytest.mark.parametrize("wrap", ["none", "end_when_gone", "stop_when_gone"])
def test_closing_the_body_closes_the_followed_events_at_once(wrap):
    closed: list[str] = []
    events = followed_reply(closed)
    body = EventStream(events)
    if wrap == "end_when_gone":
        body = end_when_gone(body, None)
    elif wrap == "stop_when_gone":
        body = stop_when_gone(body, None, lambda: None)
    served = iter(body)
    assert next(served) == encode_delta("text", "Hi", 1)
    assert next(served) == PING
    body.close()  # what the server does when the client left
    assert closed == ["events closed"]  # not when the garbage collector gets to it

"""The page's reader of event streams (static/sse.js), the mirror of providers/sse.py, on
reads cut where networks and decoders cut them."""
from __future__ import annotations

pytest_plugins = ["tests.browser"]  # browser, open_page: shared by all page tests

PARSE = """async (reads) => {
    const { SSEParser } = await import('/static/sse.js');
    const parser = new SSEParser();
    return reads.flatMap(text => parser.feed(text)).map(e => [e.event, e.data]);
}"""


def test_an_empty_read_between_cr_and_lf_keeps_the_event_whole(open_page):
    # An empty read: a network read of nothing, or of only the first byte of a character
    # (TextDecoder's stream mode gives "" for it).
    events = open_page().evaluate(PARSE, ["event: delta\r", "", '\ndata: {"text":"a"}\r\n\r\n'])
    assert events == [["delta", '{"text":"a"}']]


def test_crlf_split_across_reads_is_one_line_break(open_page):
    events = open_page().evaluate(PARSE, ["data: a\r", "\ndata: b\r", "\n\r", "\n"])
    assert events == [["message", "a\nb"]]

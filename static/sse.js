// Reading a text/event-stream body, the browser's mirror of providers/sse.py.
//
// Network reads split the stream anywhere: inside a UTF-8 character, inside a line, between
// the CR and LF of one line break. So bytes are decoded with {stream: true} (a partial
// character waits for the next read), the unfinished last line is carried over, and an event
// is dispatched only on a blank line. Lines end at CRLF, LF or CR; nothing else.
//
// Each event carries the last event id seen so far (`id:` lines; as in the spec it is kept
// from one event to the next until another `id:` changes it): the page resumes a broken
// stream after it with Last-Event-ID.

export class SSEParser {
  constructor() {
    this.pending = "";
    this.afterCR = false;
    this.lastId = ""; // the last event id buffer: not reset between events
    this.reset();
  }

  reset() {
    this.type = "";
    this.data = [];
  }

  /** Feed decoded text; returns the events completed by it as {event, data, id}. */
  feed(text) {
    // An empty read (or bytes that were only the start of a character) between the CR and the
    // LF of one line break must not forget the CR.
    if (!text) return [];
    if (this.afterCR && text.startsWith("\n")) text = text.slice(1);
    this.afterCR = text.endsWith("\r");
    const lines = (this.pending + text).split(/\r\n|\r|\n/);
    this.pending = lines.pop();
    const events = [];
    for (const line of lines) {
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === "") {
      const event = this.data.length
        ? { event: this.type || "message", data: this.data.join("\n"), id: this.lastId }
        : null;
      this.reset();
      return event;
    }
    if (line.startsWith(":")) return null; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    return null;
  }
}

/** Yield {event, data, id} from a fetch Response body until the stream ends. */
export async function* readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode()); // flush; an event left open at the end is dropped
  } finally {
    reader.releaseLock();
  }
}

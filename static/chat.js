// One reply: POST /chat (or follow a reply already being written), apply its events to the
// reply's view, resume the stream when it breaks, and time it.
//
// Every event has an id, the reply's position after it. When the stream breaks before `done`
// (a network error, or the body ends early), the page follows the reply again with
// `GET /api/messages/<id>/events` and `Last-Event-ID` set to the last id it received: the
// server sends exactly what came after, so nothing is repeated or missing. It tries again
// after 0.5, 1, 2 and 4 s (the count starts over whenever a try brought something), then
// gives up and shows the reply as interrupted. A reply followed from its start (opened while
// being written, in this tab after a reload or in another one) replaces the text shown with
// what arrives, since the server sends the text so far first. A follow refused because the
// user follows too many replies at once (429 `too_many_followers`, other tabs) is not tried
// again: the reply goes on at the server, and is shown as still being written, with the
// reason, until a reload follows it.
//
// Time to first token runs from sending to the first delta (reasoning counts: the model has
// started). Tokens per second divide the completion tokens (from usage, else estimated from the
// text) by the time between the first and the last delta. A followed reply was not sent from
// here, so it shows its tokens only.
//
// The final status is the one the server saved, sent in `done`. Only a stream that could not be
// resumed is judged here: aborted (Stop when the server could not be asked) is cancelled,
// anything else interrupted.

import { ApiError, followReply, streamChat } from "./api.js";
import { estimateTokens } from "./messages.js";
import { STATUS } from "./status.js";

export const RESUME_DELAYS_MS = [500, 1000, 2000, 4000];

/** Wait `ms`, or less when `signal` aborts. */
const pause = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(done, ms);
  function done() {
    clearTimeout(timer);
    signal.removeEventListener("abort", done);
    resolve();
  }
  signal.addEventListener("abort", done);
});

const TOO_MANY_FOLLOWERS = "too_many_followers";

/** Worth trying again: a network error, a body that ended early, a server busy or restarting
 * (not the user's other tabs, which trying again would not close). */
const resumable = (failure) => failure === null || failure instanceof TypeError
  || (failure instanceof ApiError && failure.code !== TOO_MANY_FOLLOWERS
      && (failure.status >= 500 || failure.status === 429));

/**
 * Stream one reply into `reply` (an AssistantMessage): the answer to `payload` (POST /chat), or
 * with `messageId` a reply already being written, followed from its start. Resolves with the
 * final status once the stream ends, or `streaming` when the server would not let this page
 * follow the reply (too many followers). Throws ApiError when the server refused `payload` before
 * streaming: nothing was saved then. `onMeta(meta)` runs once, when the ids are known;
 * `onResuming(delayMs)` before each try to resume, `onResumed()` when one brings something.
 */
export async function streamReply({ payload = null, messageId = null, reply, signal, onMeta = () => {},
                                    onResuming = () => {}, onResumed = () => {} }) {
  const sent = performance.now();
  let first = null;
  let last = null;
  let usage = null;
  let error = null;
  let finishReason = null;
  let meta = null;
  let done = null;
  let broke = null;
  let id = messageId; // the reply's message id, once known
  let lastId = ""; // the id of the last event received
  let tries = 0; // tries to resume since the last one that brought something
  let fromStart = !payload; // the stream replays the reply from its beginning
  let resumed = false;
  let events = payload ? streamChat(payload, signal) : followReply(id, "", signal);
  for (;;) {
    let failure = null;
    let brought = false;
    try {
      for await (const { event, data, id: eventId } of events) {
        if (!brought && resumed) onResumed();
        brought = true;
        if (eventId) lastId = eventId;
        if (event === "meta") {
          if (fromStart) {
            // The text so far comes next: it replaces what the page showed.
            reply.restart();
            first = last = usage = error = null;
          }
          fromStart = false;
          id = data.message_id || id;
          if (!meta) {
            meta = data;
            onMeta(data);
          }
        } else if (event === "delta") {
          last = performance.now();
          first ??= last;
          if (data.reasoning) reply.appendReasoning(data.reasoning);
          if (data.text) reply.appendText(data.text);
        } else if (event === "usage") {
          usage = data;
        } else if (event === "error") {
          error = data;
        } else if (event === "done") {
          done = data;
          finishReason = data.finish_reason;
          break;
        }
      }
    } catch (caught) {
      failure = caught;
    }
    if (done) break;
    // Refused before streaming: nothing was saved, there is nothing to resume.
    if (failure instanceof ApiError && payload && !resumed) throw failure;
    if (signal.aborted) {
      broke = failure?.name === "AbortError" ? failure : new DOMException("Aborted", "AbortError");
      break;
    }
    if (brought) tries = 0;
    if (!id || !resumable(failure) || tries >= RESUME_DELAYS_MS.length) {
      broke = failure;
      break;
    }
    onResuming(RESUME_DELAYS_MS[tries]);
    await pause(RESUME_DELAYS_MS[tries], signal);
    tries += 1;
    resumed = true;
    // Without an id (a server that sends none) the reply is replayed from its start.
    fromStart = !lastId;
    events = followReply(id, lastId, signal);
  }
  let status;
  if (done) {
    // Exactly as the server saved it (a server from before `status` only said whether it failed).
    status = done.status ?? (error ? STATUS.ERROR : STATUS.COMPLETE);
  } else if (broke?.name === "AbortError") {
    status = STATUS.CANCELLED;
  } else if (broke instanceof ApiError && broke.code === TOO_MANY_FOLLOWERS) {
    reply.notFollowed({ code: broke.code }); // it goes on at the server; the note says why
    return STATUS.STREAMING;
  } else {
    status = STATUS.INTERRUPTED; // the stream broke and could not be resumed
    if (broke) error = { code: broke instanceof ApiError ? broke.code : "network", message: broke.message };
  }
  reply.setStatus(status, { error, finishReason });
  const tokens = usage?.completion_tokens || estimateTokens(reply.text + reply.reasoningText);
  const timed = !messageId;
  const seconds = timed && first !== null && last > first ? (last - first) / 1000 : null;
  reply.setStats({
    tokens: first !== null ? tokens : 0,
    estimated: !usage?.completion_tokens,
    firstTokenSeconds: timed && first !== null ? (first - sent) / 1000 : null,
    tokensPerSecond: seconds ? tokens / seconds : null,
    omitted: meta?.omitted_messages || 0,
  });
  return status;
}

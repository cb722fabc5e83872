// One reply: POST /chat, apply its events to the reply's view, and time it.
//
// Time to first token runs from sending to the first delta (reasoning counts: the model has
// started). Tokens per second divide the completion tokens (from usage, else estimated from the
// text) by the time between the first and the last delta.
//
// The final status is the one the server saved, sent in `done`. Only a stream that broke before
// `done` is judged here: Stop is cancelled, a network failure an error, an end without `done`
// an interruption.

import { ApiError, streamChat } from "./api.js";
import { estimateTokens } from "./messages.js";
import { STATUS } from "./status.js";

/**
 * Stream one reply into `reply` (an AssistantMessage). Resolves with the final status once the
 * stream ends. Throws ApiError when the server refused the request before streaming: nothing
 * was saved then.
 */
export async function streamReply({ payload, reply, signal, onMeta }) {
  const sent = performance.now();
  let first = null;
  let last = null;
  let usage = null;
  let error = null;
  let finishReason = null;
  let meta = null;
  let done = null;
  let broke = null;
  try {
    for await (const { event, data } of streamChat(payload, signal)) {
      if (event === "meta") {
        meta = data;
        onMeta(data);
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
      }
    }
  } catch (failure) {
    if (failure instanceof ApiError && !meta) throw failure;
    broke = failure;
  }
  let status;
  if (done) {
    // Exactly as the server saved it (a server from before `status` only said whether it failed).
    status = done.status ?? (error ? STATUS.ERROR : STATUS.COMPLETE);
  } else if (broke?.name === "AbortError") {
    status = STATUS.CANCELLED;
  } else if (broke) {
    status = STATUS.ERROR;
    error = { code: "network", message: broke.message };
  } else {
    status = STATUS.INTERRUPTED; // the stream ended without done
  }
  reply.setStatus(status, { error, finishReason });
  const tokens = usage?.completion_tokens || estimateTokens(reply.text + reply.reasoningText);
  const seconds = first !== null && last > first ? (last - first) / 1000 : null;
  reply.setStats({
    tokens: first !== null ? tokens : 0,
    estimated: !usage?.completion_tokens,
    firstTokenSeconds: first !== null ? (first - sent) / 1000 : null,
    tokensPerSecond: seconds ? tokens / seconds : null,
    omitted: meta?.omitted_messages || 0,
  });
  return status;
}
